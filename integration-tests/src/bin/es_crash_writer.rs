//! A writer process for the event-store crash test: appends batches to a
//! few streams of an embedded store as fast as it can and prints
//! `ok <stream> <last-version> <last-position> .` after each append returns,
//! until it is killed.
//!
//! Usage: es-crash-writer <dir> <seed>

use std::io::Write;

use domain_core::{Envelope, EventType};
use event_store::{EmbeddedEventStore, EventStore, ExpectedVersion, StreamId};

/// A small deterministic generator (no dependency needed for a test driver).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, seed] = args.as_slice() else { return Err("usage: es-crash-writer <dir> <seed>".into()) };
    let mut rng = Lcg(seed.parse().map_err(|_| "seed must be an integer")?);
    let store = EmbeddedEventStore::open(dir).map_err(|e| e.to_string())?;
    let ty: EventType = "accounts.MoneyDeposited.v1".parse().map_err(|e: domain_core::Error| e.to_string())?;
    let streams: Vec<StreamId> =
        (0..4).map(|i| StreamId::new(format!("acct-{i}"))).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    loop {
        let s = &streams[rng.next(4) as usize];
        let version = store.stream_version(s).await.map_err(|e| e.to_string())?;
        let batch: Vec<Envelope> = (0..1 + rng.next(4))
            .map(|i| {
                let pad = "x".repeat(rng.next(2000) as usize);
                Envelope::raw("accounts", ty.clone(), s.as_str(), 0, serde_json::json!({ "n": i, "pad": pad }))
            })
            .collect();
        let r = store.append(s, ExpectedVersion::Exact(version), &batch).await.map_err(|e| e.to_string())?;
        writeln!(out, "ok {s} {} {} .", r.last_version, r.last_position).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
}
