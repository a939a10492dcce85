//! A consumer process for crash tests: it applies each event of a topic to a
//! state file together with the event's id (the inbox) in one atomic write,
//! then commits the offset only while `offset < commit-below`. It prints
//! `handled <offset>` per record and `idle` when nothing more arrives, then
//! waits to be killed.
//!
//! Usage: inbox-consumer <bootstrap> <topic> <group> <state-file> <commit-below>

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use domain_core::bus::EventBus;
use kafka_bus::{KafkaBus, KafkaConfig};
use serde::{Deserialize, Serialize};

/// The consumer's whole state: what it applied and which events it saw.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    seen: BTreeSet<String>,
    total: i64,
    deliveries: u64,
}

fn load(path: &Path) -> Result<State, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("corrupt state {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// Write-to-temp, fsync, rename: the state and the inbox change together.
fn save(path: &Path, state: &State) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(state).map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, group, state_file, commit_below] = args.as_slice() else {
        return Err("usage: inbox-consumer <bootstrap> <topic> <group> <state-file> <commit-below>".into());
    };
    let commit_below: i64 = commit_below.parse().map_err(|_| "commit-below must be an integer")?;
    let state_file = PathBuf::from(state_file);
    let mut config = KafkaConfig::new(bootstrap.as_str());
    config.session_timeout = Duration::from_secs(6);
    let bus = KafkaBus::connect(config).map_err(|e| e.to_string())?;
    let mut sub = bus.subscribe(group, &[topic.as_str()]).await.map_err(|e| e.to_string())?;
    let mut state = load(&state_file)?;
    let mut out = std::io::stdout();
    loop {
        let Some(d) = sub.next(Duration::from_secs(3)).await.map_err(|e| e.to_string())? else {
            writeln!(out, "idle").and_then(|()| out.flush()).map_err(|e| e.to_string())?;
            continue;
        };
        let env = d.envelope(bus.max_record_bytes()).map_err(|e| e.to_string())?;
        state.deliveries += 1;
        if state.seen.insert(env.id.to_string()) {
            state.total += env.data["n"].as_i64().unwrap_or_default();
        }
        save(&state_file, &state)?;
        if d.offset < commit_below {
            sub.commit(&d).await.map_err(|e| e.to_string())?;
        }
        writeln!(out, "handled {}", d.offset).and_then(|()| out.flush()).map_err(|e| e.to_string())?;
    }
}
