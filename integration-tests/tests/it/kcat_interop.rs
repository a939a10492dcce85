//! Interoperability with an independent Kafka client (Debian's `kcat`):
//! what kafka-bus writes is plain CloudEvents binary mode, and what kcat
//! writes in that format kafka-bus reads.

use std::process::Stdio;
use std::time::Duration;

use domain_core::bus::{EventBus, TopicSpec};
use domain_core::codec::headers;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::support::{bootstrap, bus, counted, unique};

async fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    kcat_on(&bootstrap(), args, stdin).await
}

/// Runs kcat against the brokers at `bootstrap` (the shared one above, or
/// a test's private broker), feeding it `stdin`; its output.
pub async fn kcat_on(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .args(["-b", bootstrap])
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kcat is needed for this test (apt-get install kcat): {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.expect("write to kcat");
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kcat finished in time")
        .expect("kcat ran");
    assert!(out.status.success(), "kcat failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_reads_what_kafka_bus_publishes() {
    let bus = bus();
    let topic = unique("to-kcat");
    bus.create_topics(&[TopicSpec::new(&topic, 3)]).await.expect("create topic");
    let env = counted("acct-001", 1, 42);
    bus.publish(&topic, std::slice::from_ref(&env)).await.expect("publish");

    let out = kcat(&["-C", "-t", &topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%h\t%s\n"], None).await;
    let line = out.lines().next().expect("one record");
    let mut parts = line.splitn(3, '\t');
    let (key, hdrs, payload) =
        (parts.next().expect("key"), parts.next().expect("headers"), parts.next().expect("value"));
    assert_eq!(key, "acct-001", "record key = aggregate id");
    let has = |name: &str, value: &str| hdrs.split(',').any(|h| h == format!("{name}={value}"));
    assert!(has(headers::SPEC_VERSION, "1.0"), "{hdrs}");
    assert!(has(headers::ID, &env.id.to_string()), "{hdrs}");
    assert!(has(headers::TYPE, "accounts.MoneyDeposited.v1"), "{hdrs}");
    assert!(has(headers::SOURCE, "accounts"), "{hdrs}");
    assert!(has(headers::SUBJECT, "acct-001"), "{hdrs}");
    assert!(has(headers::AGGREGATE_VERSION, "1"), "{hdrs}");
    assert!(has(headers::CONTENT_TYPE, "application/json"), "{hdrs}");
    let json: serde_json::Value = serde_json::from_str(payload).expect("JSON payload");
    assert_eq!(json, env.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_reads_what_kcat_produces() {
    let bus = bus();
    let topic = unique("from-kcat");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    let id = uuid::Uuid::now_v7().to_string();
    let corr = uuid::Uuid::now_v7().to_string();
    let h = |k: &str, v: &str| format!("{k}={v}");
    let header_args = [
        h(headers::SPEC_VERSION, "1.0"),
        h(headers::ID, &id),
        h(headers::SOURCE, "orders"),
        h(headers::TYPE, "orders.OrderConfirmed.v1"),
        h(headers::SUBJECT, "order_001"),
        h(headers::TIME, "2026-11-25T08:00:00.000001Z"),
        h(headers::AGGREGATE_VERSION, "4"),
        h(headers::CORRELATION_ID, &corr),
        h(headers::CONTENT_TYPE, "application/json"),
    ];
    let mut args = vec!["-P".to_owned(), "-t".to_owned(), topic.clone(), "-k".to_owned(), "order_001".to_owned()];
    for a in &header_args {
        args.extend(["-H".to_owned(), a.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kcat(&args, Some("{\"total_amount\":\"399.97\"}\n")).await;

    let mut sub = bus.subscribe(&unique("g"), &[&topic]).await.expect("subscribe");
    let d = sub.next(Duration::from_secs(30)).await.expect("next").expect("a record");
    let env = d.envelope(bus.max_record_bytes()).expect("decodes");
    assert_eq!(env.id.to_string(), id);
    assert_eq!(env.event_type.to_string(), "orders.OrderConfirmed.v1");
    assert_eq!(env.subject, "order_001");
    assert_eq!(env.aggregate_version, 4);
    assert_eq!(env.correlation_id.to_string(), corr);
    assert_eq!(env.causation_id, None);
    assert_eq!(env.time.to_rfc3339(), "2026-11-25T08:00:00.000001+00:00");
    assert_eq!(env.data, serde_json::json!({ "total_amount": "399.97" }));
    sub.close().await.expect("close");
}
