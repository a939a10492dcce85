//! Redelivery after a crash: a consumer process handles every record but is
//! killed with SIGKILL before committing the last ones; a new process in the
//! same group gets those records again and, thanks to its inbox, applies
//! each event exactly once.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use domain_core::bus::{EventBus, TopicSpec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{bootstrap, bus, counted, unique};

fn spawn(topic: &str, group: &str, state: &Path, commit_below: i64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_inbox-consumer"))
        .args([&bootstrap(), topic, group, &state.display().to_string(), &commit_below.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn inbox-consumer")
}

/// Reads the child's lines until it reports idle; returns handled offsets.
async fn handled_until_idle(child: &mut Child, expected: usize) -> Vec<i64> {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut offsets = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        if let Some(o) = line.strip_prefix("handled ") {
            offsets.push(o.parse().expect("offset"));
        } else if line == "idle" && offsets.len() >= expected {
            break;
        }
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_consumer_gets_uncommitted_records_again_and_applies_them_once() {
    let bus = bus();
    let topic = unique("kill9");
    let group = unique("g");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    let events: Vec<_> = (1..=10).map(|i| counted("acct-001", i as u64, i)).collect();
    bus.publish(&topic, &events).await.expect("publish");
    let dir = std::env::temp_dir().join(unique("inbox"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state = dir.join("state.json");

    let mut first = spawn(&topic, &group, &state, 4);
    assert_eq!(handled_until_idle(&mut first, 10).await, (0..10).collect::<Vec<_>>());
    first.kill().await.expect("SIGKILL the first consumer");

    let mut second = spawn(&topic, &group, &state, i64::MAX);
    let again = handled_until_idle(&mut second, 6).await;
    second.kill().await.expect("SIGKILL the second consumer");
    assert_eq!(again, (4..10).collect::<Vec<_>>(), "exactly the uncommitted records come back");

    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(saved["deliveries"], 16, "10 first deliveries + 6 redeliveries");
    assert_eq!(saved["total"], 55, "every event applied exactly once");
    assert_eq!(saved["seen"].as_array().map(Vec::len), Some(10));
    std::fs::remove_dir_all(&dir).ok();
}
