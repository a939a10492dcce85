//! The contract every [`EventStore`] adapter must pass, as plain async
//! functions, and [`crate::event_store_contract_tests!`] to run them all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use domain_core::{Envelope, EventType};
use serde_json::json;

use crate::{Error, EventStore, ExpectedVersion, RecordedEvent, Snapshot, StreamId};

/// A stream name no other run uses (PostgreSQL and disk stores persist).
pub fn stream(prefix: &str) -> StreamId {
    StreamId::new(format!("{prefix}-{}", uuid::Uuid::now_v7().simple())).unwrap_or_else(|e| panic!("{e}"))
}

/// A deposit event of `n` for account `subject`.
pub fn event(subject: &str, n: i64) -> Envelope {
    let ty: EventType = "accounts.MoneyDeposited.v1".parse().unwrap_or_else(|e| panic!("{e}"));
    Envelope::raw("accounts", ty, subject, 0, json!({ "amount": n.to_string(), "holder": "张三" }))
}

/// `envelope` as a read model's tests feed it: recorded in `stream` at
/// global `position`, at its own version and time, its payload as text.
pub fn recorded_text(stream: StreamId, position: u64, envelope: Envelope) -> crate::RecordedText {
    RecordedEvent {
        stream,
        version: envelope.aggregate_version,
        position,
        recorded_at: envelope.time,
        envelope: envelope.into_json_text(),
    }
}

fn events(subject: &str, n: usize) -> Vec<Envelope> {
    (1..=n).map(|i| event(subject, i as i64)).collect()
}

pub async fn append_and_read_back(store: &dyn EventStore) {
    let s = stream("acct");
    let head = store.head_position().await.expect("head");
    let cause = event("other", 0);
    let batch: Vec<_> = events(s.as_str(), 3).into_iter().map(|e| e.caused_by(&cause)).collect();
    let r = store.append(&s, ExpectedVersion::NoStream, &batch.clone()).await.expect("append");
    assert_eq!((r.first_version, r.last_version), (1, 3));
    assert_eq!(r.last_position - r.first_position, 2);
    assert!(r.first_position > head);
    let read = store.read_stream(&s, 1, 100).await.expect("read");
    assert_eq!(read.len(), 3);
    for (i, (got, sent)) in read.iter().zip(&batch).enumerate() {
        assert_eq!(got.version, i as u64 + 1);
        assert_eq!(got.position, r.first_position + i as u64);
        assert_eq!(got.envelope.aggregate_version, got.version, "version written into the envelope");
        let mut expected = sent.clone();
        expected.aggregate_version = got.version;
        assert_eq!(got.envelope, expected, "attributes, metadata and payload kept");
        assert_eq!(got.envelope.causation_id, Some(cause.id));
    }
    assert_eq!(store.read_stream(&s, 3, 100).await.expect("read").len(), 1);
    assert_eq!(store.read_stream(&s, 2, 1).await.expect("read")[0].version, 2);
    assert_eq!(store.stream_version(&s).await.expect("version"), 3);
    assert!(store.read_stream(&stream("none"), 1, 10).await.expect("read").is_empty());
    assert_eq!(store.stream_version(&stream("none")).await.expect("version"), 0);
}

pub async fn expected_versions_are_enforced(store: &dyn EventStore) {
    let s = stream("acct");
    let conflict = |r: Result<_, Error>, actual: u64| match r {
        Err(Error::Conflict { actual_version, .. }) => assert_eq!(actual_version, Some(actual)),
        other => panic!("expected a conflict, got {other:?}"),
    };
    conflict(store.append(&s, ExpectedVersion::Exists, &events(s.as_str(), 1)).await, 0);
    conflict(store.append(&s, ExpectedVersion::Exact(1), &events(s.as_str(), 1)).await, 0);
    store.append(&s, ExpectedVersion::Exact(0), &events(s.as_str(), 2)).await.expect("exact 0 on new");
    conflict(store.append(&s, ExpectedVersion::NoStream, &events(s.as_str(), 1)).await, 2);
    conflict(store.append(&s, ExpectedVersion::Exact(1), &events(s.as_str(), 1)).await, 2);
    store.append(&s, ExpectedVersion::Exact(2), &events(s.as_str(), 1)).await.expect("exact");
    store.append(&s, ExpectedVersion::Exists, &events(s.as_str(), 1)).await.expect("exists");
    let r = store.append(&s, ExpectedVersion::Any, &events(s.as_str(), 1)).await.expect("any");
    assert_eq!(r.last_version, 5);
    assert_eq!(store.read_stream(&s, 1, 100).await.expect("read").len(), 5, "conflicts wrote nothing");
}

pub async fn appends_are_idempotent_by_event_id(store: &dyn EventStore) {
    let s = stream("acct");
    let batch = events(s.as_str(), 3);
    let first = store.append(&s, ExpectedVersion::NoStream, &batch.clone()).await.expect("append");
    let again = store.append(&s, ExpectedVersion::NoStream, &batch.clone()).await.expect("retry returns the original");
    assert_eq!(first, again);
    assert_eq!(store.stream_version(&s).await.expect("version"), 3, "nothing written twice");

    let mut changed = batch.clone();
    changed[1].data = json!({ "amount": "999" });
    assert!(matches!(
        store.append(&s, ExpectedVersion::Any, &changed).await,
        Err(Error::IdempotencyConflict { id }) if id == batch[1].id
    ));
    let partial = vec![batch[2].clone(), event(s.as_str(), 4)];
    assert!(matches!(store.append(&s, ExpectedVersion::Any, &partial).await, Err(Error::IdempotencyConflict { .. })));
    let other = stream("other");
    assert!(matches!(
        store.append(&other, ExpectedVersion::Any, &batch[..1]).await,
        Err(Error::IdempotencyConflict { .. })
    ));
    let dup = event(s.as_str(), 5);
    assert!(matches!(
        store.append(&s, ExpectedVersion::Any, &[dup.clone(), dup]).await,
        Err(Error::DuplicateInBatch { .. })
    ));
    assert_eq!(store.stream_version(&s).await.expect("version"), 3);
}

pub async fn bad_input_is_refused_precisely(store: &dyn EventStore) {
    let s = stream("acct");
    assert!(matches!(store.append(&s, ExpectedVersion::Any, &[]).await, Err(Error::EmptyAppend { .. })));
    let mut big = event(s.as_str(), 1);
    big.data = json!({ "pad": "x".repeat(2 * 1024 * 1024) });
    assert!(matches!(store.append(&s, ExpectedVersion::Any, &[big]).await, Err(Error::EventTooLarge { .. })));
    for bad in ["", " padded", "tab\there", "$all", &"x".repeat(201)] {
        assert!(matches!(StreamId::new(bad), Err(Error::InvalidStream { .. })), "{bad:?}");
    }
    assert_eq!(store.stream_version(&s).await.expect("version"), 0);
}

pub async fn deleted_streams_refuse_reads_and_appends(store: &dyn EventStore) {
    let s = stream("acct");
    store.append(&s, ExpectedVersion::NoStream, &events(s.as_str(), 2)).await.expect("append");
    assert!(matches!(store.delete_stream(&s, ExpectedVersion::Exact(1)).await, Err(Error::Conflict { .. })));
    store.delete_stream(&s, ExpectedVersion::Exact(2)).await.expect("delete");
    assert!(matches!(store.read_stream(&s, 1, 10).await, Err(Error::StreamDeleted(_))));
    assert!(matches!(
        store.append(&s, ExpectedVersion::Any, &events(s.as_str(), 1)).await,
        Err(Error::StreamDeleted(_))
    ));
    assert!(matches!(store.delete_stream(&s, ExpectedVersion::Any).await, Err(Error::StreamDeleted(_))));
}

pub async fn global_log_is_ordered_and_pages(store: &dyn EventStore) {
    let start = store.head_position().await.expect("head") + 1;
    let (a, b) = (stream("a"), stream("b"));
    let mut ids = Vec::new();
    for i in 0..4 {
        let s = if i % 2 == 0 { &a } else { &b };
        let batch = events(s.as_str(), 2);
        ids.extend(batch.iter().map(|e| e.id));
        store.append(s, ExpectedVersion::Any, &batch).await.expect("append");
    }
    // Other tests may append concurrently on a shared server: keep ours.
    let all = store.read_all(start, 10_000).await.expect("read all");
    let ours: Vec<_> = all.iter().filter(|e| e.stream == a || e.stream == b).collect();
    assert_eq!(ours.iter().map(|e| e.envelope.id).collect::<Vec<_>>(), ids, "append order");
    for w in all.windows(2) {
        assert_eq!(w[1].position, w[0].position + 1, "contiguous positions");
    }
    let page = store.read_all(start, 3).await.expect("page");
    assert_eq!(page.len(), 3);
    assert_eq!(page[0].position, start);
    let head = store.head_position().await.expect("head");
    assert!(head >= start + 7);
    assert!(store.read_all(head + 1, 10).await.expect("past head").is_empty());
}

/// The log read with payloads as text is the log read parsed: same events,
/// same positions, each text parsing to the stored payload.
pub async fn the_log_as_text_is_the_log_parsed(store: &dyn EventStore) {
    let start = store.head_position().await.expect("head") + 1;
    let s = stream("text");
    let mut batch = events(s.as_str(), 3);
    let ty: EventType = "accounts.Nested.v1".parse().expect("type");
    batch.push(Envelope::raw("accounts", ty, s.as_str(), 0, json!({"a": [1, 2.5, null, {"b": "\"q\"\n"}], "c": true})));
    store.append(&s, ExpectedVersion::NoStream, &batch).await.expect("append");
    let parsed = store.read_all(start, 10_000).await.expect("read all");
    let text = store.read_all_text(start, 10_000).await.expect("read all as text");
    assert_eq!(text.len(), parsed.len(), "same page");
    for (t, p) in text.iter().zip(&parsed) {
        assert_eq!(
            (&t.stream, t.version, t.position, t.recorded_at),
            (&p.stream, p.version, p.position, p.recorded_at)
        );
        assert_eq!(t.envelope.data.to_value().expect("text parses"), p.envelope.data, "payload at {}", p.position);
        assert_eq!(t.envelope.clone().into_parsed().expect("parses"), p.envelope);
    }
    assert_eq!(text.iter().filter(|e| e.stream == s).count(), 4, "our events");
    assert!(
        store.read_all_text(store.head_position().await.expect("head") + 1, 10).await.expect("past head").is_empty()
    );
}

pub async fn snapshots_keep_the_newest(store: &dyn EventStore) {
    let s = stream("order");
    assert!(store.load_snapshot(&s).await.expect("load").is_none());
    let snap = |v: u64| Snapshot {
        stream: s.clone(),
        aggregate_type: "Order".into(),
        schema_version: 1,
        version: v,
        state: json!({ "status": "confirmed", "total_amount": "399.97", "v": v }),
        taken_at: chrono::Utc::now(),
    };
    store.save_snapshot(&snap(5)).await.expect("save");
    store.save_snapshot(&snap(10)).await.expect("save");
    store.save_snapshot(&snap(7)).await.expect("older is ignored");
    let got = store.load_snapshot(&s).await.expect("load").expect("some");
    assert_eq!(got.version, 10);
    assert_eq!(got.state["total_amount"], "399.97");
}

pub async fn checkpoints_round_trip(store: &dyn EventStore) {
    let name = format!("relay-{}", uuid::Uuid::now_v7().simple());
    assert_eq!(store.load_checkpoint(&name).await.expect("load"), None);
    store.save_checkpoint(&name, 42).await.expect("save");
    store.save_checkpoint(&name, 43).await.expect("save");
    assert_eq!(store.load_checkpoint(&name).await.expect("load"), Some(43));
}

/// Racing writers with exact expected versions: one winner per version,
/// typed conflicts for the rest, no gaps, no duplicates.
pub async fn racing_writers_get_one_winner_per_version(store: Arc<dyn EventStore>) {
    let s = stream("race");
    let tasks = 16;
    let per_task = 10;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, s) = (Arc::clone(&store), s.clone());
        handles.push(tokio::spawn(async move {
            let (mut won, mut conflicts) = (Vec::new(), 0u32);
            while won.len() < per_task {
                let v = store.stream_version(&s).await.expect("version");
                match store.append(&s, ExpectedVersion::Exact(v), &[event(s.as_str(), t)]).await {
                    Ok(r) => {
                        assert_eq!(r.first_version, v + 1);
                        won.push(r.first_version);
                    }
                    Err(Error::Conflict { .. }) => conflicts += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            (won, conflicts)
        }));
    }
    let mut winners: BTreeMap<u64, usize> = BTreeMap::new();
    let mut conflicts = 0;
    for h in handles {
        let (won, c) = h.await.expect("task");
        conflicts += c;
        for v in won {
            *winners.entry(v).or_default() += 1;
        }
    }
    let n = (tasks as usize * per_task) as u64;
    assert_eq!(winners.keys().copied().collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "no gaps");
    assert!(winners.values().all(|w| *w == 1), "exactly one winner per version");
    let read = store.read_stream(&s, 1, 10_000).await.expect("read");
    assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    let ids: BTreeSet<_> = read.iter().map(|e| e.envelope.id).collect();
    assert_eq!(ids.len() as u64, n, "no duplicates");
    eprintln!("{n} appends, {conflicts} typed conflicts");
}

/// A reader following the global log while many writers append never sees
/// a position twice or skips one.
pub async fn global_log_readers_never_skip(store: Arc<dyn EventStore>) {
    let start = store.head_position().await.expect("head") + 1;
    let writers = 8;
    let per_writer = 25;
    let mut handles = Vec::new();
    for _ in 0..writers {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let s = stream("gap");
            for i in 0..per_writer {
                store.append(&s, ExpectedVersion::Any, &[event(s.as_str(), i)]).await.expect("append");
            }
        }));
    }
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut next = start;
            let mut seen = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen < writers * per_writer && tokio::time::Instant::now() < deadline {
                let batch = store.read_all(next, 7).await.expect("read all");
                for e in &batch {
                    assert_eq!(e.position, next, "positions arrive in order, none skipped");
                    next += 1;
                    if e.stream.as_str().starts_with("gap-") {
                        seen += 1;
                    }
                }
                if batch.is_empty() {
                    store.wait_for(next, Duration::from_millis(200)).await.expect("wait");
                }
            }
            seen
        })
    };
    for h in handles {
        h.await.expect("writer");
    }
    assert!(reader.await.expect("reader") >= writers * per_writer);
}

/// Runs the whole contract as `#[tokio::test]`s against the store the async
/// expression `$make` builds (evaluated once per test).
#[macro_export]
macro_rules! event_store_contract_tests {
    ($make:expr) => {
        mod event_store_contract {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testkit as c;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let store = $make.await;
                        c::$name(&store).await;
                    }
                };
                ($name:ident, arc) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let store: std::sync::Arc<dyn $crate::EventStore> = std::sync::Arc::new($make.await);
                        c::$name(store).await;
                    }
                };
            }
            case!(append_and_read_back);
            case!(expected_versions_are_enforced);
            case!(appends_are_idempotent_by_event_id);
            case!(bad_input_is_refused_precisely);
            case!(deleted_streams_refuse_reads_and_appends);
            case!(global_log_is_ordered_and_pages);
            case!(the_log_as_text_is_the_log_parsed);
            case!(snapshots_keep_the_newest);
            case!(checkpoints_round_trip);
            case!(racing_writers_get_one_winner_per_version, arc);
            case!(global_log_readers_never_skip, arc);
        }
    };
}
