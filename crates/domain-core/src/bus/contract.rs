//! The contract every [`EventBus`] adapter must pass.
//!
//! Each check is a plain async function taking the bus, so any adapter's
//! test module runs the whole suite with [`crate::bus_contract_tests!`].
//! Topics get unique names, so the suite can run against a long-lived broker.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use crate::bus::partition::partition_for_key;
use crate::bus::{
    Consumer, Delivery, EventBus, Handler, Outcome, Record, RetryPolicy, Subscription, TopicSpec, dead_letter, topics,
};
use crate::{Envelope, Error, EventType, Result, codec};

/// How long a check waits for records before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// A topic name no other run uses.
pub fn unique(prefix: &str) -> String {
    format!("contract.{prefix}.{}", Uuid::now_v7().simple())
}

fn event(subject: &str, version: u64, n: i64) -> Envelope {
    let ty: EventType = "contract.Counted.v1".parse().unwrap_or_else(|e| panic!("{e}"));
    Envelope::raw("contract", ty, subject, version, json!({ "n": n }))
}

/// Reads until `n` deliveries arrived or [`WAIT`] passed.
pub async fn collect(sub: &mut dyn Subscription, n: usize) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match sub.next(left.min(Duration::from_secs(1))).await {
            Ok(Some(d)) => out.push(d),
            Ok(None) => {}
            Err(e) => panic!("next failed: {e}"),
        }
    }
    out
}

/// Published envelopes come back intact, each key in Kafka's murmur2
/// partition, each key's events in order.
pub async fn round_trip_keeps_envelopes_order_and_partitions(bus: &dyn EventBus) {
    let topic = unique("roundtrip");
    bus.create_topics(&[TopicSpec::new(&topic, 3)]).await.expect("create topic");
    let mut sent = Vec::new();
    for v in 1..=10u64 {
        for key in ["order-001", "order-002", "order-003", "张三"] {
            sent.push(event(key, v, v as i64));
        }
    }
    bus.publish(&topic, &sent).await.expect("publish");
    let mut sub = bus.subscribe(&unique("g"), &[&topic]).await.expect("subscribe");
    let got = collect(sub.as_mut(), sent.len()).await;
    if got.len() != sent.len() {
        // Which records, in which partitions: a flake here once (39 of 40)
        // left nothing to go on.
        let arrived: HashSet<Uuid> =
            got.iter().filter_map(|d| d.envelope(bus.max_record_bytes()).ok()).map(|e| e.id).collect();
        let missing: Vec<String> = sent
            .iter()
            .filter(|e| !arrived.contains(&e.id))
            .map(|e| {
                format!(
                    "{} v{} (partition {})",
                    e.subject,
                    e.aggregate_version,
                    partition_for_key(e.subject.as_bytes(), 3)
                )
            })
            .collect();
        let offsets: Vec<(i32, i64)> = got.iter().map(|d| (d.partition, d.offset)).collect();
        panic!(
            "{} of {} records arrived; missing {missing:?}; delivered (partition, offset) {offsets:?}",
            got.len(),
            sent.len()
        );
    }
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in &got {
        let env = d.envelope(bus.max_record_bytes()).expect("decodes");
        assert_eq!(d.record.key.as_deref(), Some(env.subject.as_bytes()), "key = aggregate id");
        assert_eq!(d.partition, partition_for_key(env.subject.as_bytes(), 3), "murmur2 partition of {}", env.subject);
        let original = sent.iter().find(|e| e.id == env.id).expect("was sent");
        assert_eq!(&env, original, "attributes and payload survive");
        per_key.entry(env.subject.clone()).or_default().push(env.aggregate_version);
    }
    for (key, versions) in per_key {
        assert_eq!(versions, (1..=10).collect::<Vec<_>>(), "order of {key}");
    }
    sub.close().await.expect("close");
}

/// Two groups each see every record.
pub async fn groups_are_independent(bus: &dyn EventBus) {
    let topic = unique("groups");
    bus.create_topics(&[TopicSpec::new(&topic, 2)]).await.expect("create topic");
    let sent: Vec<_> = (0..6).map(|i| event(&format!("k{i}"), 1, i)).collect();
    bus.publish(&topic, &sent).await.expect("publish");
    for _ in 0..2 {
        let mut sub = bus.subscribe(&unique("g"), &[&topic]).await.expect("subscribe");
        assert_eq!(collect(sub.as_mut(), 6).await.len(), 6);
        sub.close().await.expect("close");
    }
}

/// A consumer that applies each event once, remembering handled ids in the
/// same "transaction" as the state change (here: one struct).
#[derive(Debug, Default)]
pub struct InboxCounter {
    pub seen: HashSet<Uuid>,
    pub total: i64,
    pub deliveries: usize,
}

impl InboxCounter {
    pub fn apply(&mut self, env: &Envelope) {
        self.deliveries += 1;
        if self.seen.insert(env.id) {
            self.total += env.data["n"].as_i64().unwrap_or_default();
        }
    }
}

/// What a member handled but did not commit is delivered again after it
/// goes away; an inbox makes the second delivery a no-op.
pub async fn uncommitted_records_are_redelivered(bus: &dyn EventBus) {
    let topic = unique("redeliver");
    let group = unique("g");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    let sent: Vec<_> = (1..=10).map(|i| event("acct-1", i as u64, i)).collect();
    bus.publish(&topic, &sent).await.expect("publish");
    let mut state = InboxCounter::default();

    let mut first = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
    let got = collect(first.as_mut(), 10).await;
    assert_eq!(got.len(), 10);
    for (i, d) in got.iter().enumerate() {
        state.apply(&d.envelope(bus.max_record_bytes()).expect("decodes"));
        if i < 4 {
            first.commit(d).await.expect("commit");
        }
    }
    drop(first); // "crash": handled 10, committed 4

    let mut second = bus.subscribe(&group, &[&topic]).await.expect("resubscribe");
    let again = collect(second.as_mut(), 6).await;
    assert_eq!(
        again.iter().map(|d| d.offset).collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>(),
        "uncommitted come back"
    );
    for d in &again {
        state.apply(&d.envelope(bus.max_record_bytes()).expect("decodes"));
        second.commit(d).await.expect("commit");
    }
    assert_eq!(state.deliveries, 16);
    assert_eq!(state.total, 55, "each event applied once");
    second.close().await.expect("close");

    let mut third = bus.subscribe(&group, &[&topic]).await.expect("resubscribe");
    assert!(third.next(Duration::from_secs(2)).await.expect("next").is_none(), "all committed");
    third.close().await.expect("close");
}

/// A member reports its lag: the records of its partitions it has not
/// committed. Kafka reports it with its statistics, every few seconds, so
/// the check polls (serving the client's callbacks) until the figure is
/// the expected one.
pub async fn lag_counts_what_is_not_committed(bus: &dyn EventBus) {
    let topic = unique("lag");
    let group = unique("g");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    let sent: Vec<_> = (1..=10).map(|i| event("acct-1", i as u64, i)).collect();
    bus.publish(&topic, &sent).await.expect("publish");
    let mut sub = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
    let got = collect(sub.as_mut(), 10).await;
    assert_eq!(got.len(), 10);
    sub.commit(&got[3]).await.expect("commit");
    async fn wait_for(sub: &mut dyn Subscription, want: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while sub.lag() != Some(want) {
            assert!(tokio::time::Instant::now() < deadline, "lag is {:?}, not {want}", sub.lag());
            assert!(sub.next(Duration::from_millis(100)).await.expect("next").is_none());
        }
    }
    wait_for(sub.as_mut(), 6).await;
    sub.commit(&got[9]).await.expect("commit");
    wait_for(sub.as_mut(), 0).await;
    sub.close().await.expect("close");
}

/// Fails `poison` subjects forever (transiently), `flaky` ones twice.
#[derive(Debug, Default)]
struct PickyHandler {
    attempts: BTreeMap<String, u32>,
    handled: Vec<String>,
}

#[async_trait]
impl Handler for PickyHandler {
    async fn handle(&mut self, event: &Envelope, _: &Delivery) -> Result<()> {
        let n = self.attempts.entry(event.subject.clone()).or_default();
        *n += 1;
        match event.subject.as_str() {
            "poison" => Err(Error::Transient("downstream refuses this one".into())),
            "flaky" if *n <= 2 => Err(Error::Transient("try later".into())),
            "unknown-type" => Err(Error::UnknownEventType(event.event_type.to_string())),
            _ => {
                self.handled.push(event.subject.clone());
                Ok(())
            }
        }
    }
}

/// Bad records and events that keep failing end in `<topic>.dlq` with the
/// error in a header; everything behind them is still handled.
pub async fn poison_records_go_to_the_dlq_and_the_partition_moves_on(bus: &dyn EventBus) {
    let topic = unique("poison");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    let good = |s: &str| codec::encode(&event(s, 1, 1)).expect("encode");
    let mut not_json = good("not-json");
    not_json.value = Some(b"{oops".to_vec());
    let mut bad_header = good("bad-header");
    bad_header.headers.retain(|(n, _)| n != codec::headers::ID);
    bad_header.headers.push((codec::headers::ID.into(), b"not-a-uuid".to_vec()));
    let mut oversize = good("oversize");
    oversize.value = Some(format!("{{\"pad\":\"{}\"}}", "x".repeat(8 * 1024)).into_bytes());
    let records = vec![
        good("before"),
        not_json,
        good("flaky"),
        bad_header,
        good("poison"),
        oversize,
        good("unknown-type"),
        Record { key: Some(b"k".to_vec()), headers: vec![], value: None },
        good("after"),
    ];
    bus.publish_records(&topic, records).await.expect("publish");

    let policy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    let sub = bus.subscribe(&unique("g"), &[&topic]).await.expect("subscribe");
    let mut consumer = Consumer::new(sub, policy).with_max_record_bytes(4 * 1024);
    let mut handler = PickyHandler::default();
    let mut outcomes = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while outcomes.len() < 9 && tokio::time::Instant::now() < deadline {
        if let Some(o) = consumer.poll_once(&mut handler, Duration::from_secs(1)).await.expect("poll") {
            outcomes.push(o);
        }
    }
    assert_eq!(handler.handled, vec!["before", "flaky", "after"], "good records handled in order");
    assert_eq!(handler.attempts.get("poison"), Some(&3), "retried up to the policy");
    assert_eq!(handler.attempts.get("flaky"), Some(&3), "succeeded on the third try");
    let dead: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::DeadLettered { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert!(matches!(dead[0], Error::InvalidPayload(_)), "{:?}", dead[0]);
    assert!(matches!(&dead[1], Error::InvalidHeader { name, .. } if name == codec::headers::ID), "{:?}", dead[1]);
    assert!(matches!(dead[2], Error::Transient(_)));
    assert!(matches!(dead[3], Error::RecordTooLarge { .. }));
    assert!(matches!(dead[4], Error::UnknownEventType(_)));
    assert!(matches!(dead[5], Error::MissingHeader(_)));
    assert_eq!(consumer.stats().dead_lettered, 6);
    consumer.close().await.expect("close");

    let mut dlq = bus.subscribe(&unique("g"), &[&topics::dlq(&topic)]).await.expect("subscribe dlq");
    let parked = collect(dlq.as_mut(), 6).await;
    assert_eq!(parked.len(), 6);
    for d in &parked {
        let err = d.record.header(dead_letter::ERROR_HEADER).expect("error header");
        assert!(!err.is_empty());
        assert_eq!(d.record.header(dead_letter::TOPIC_HEADER), Some(topic.as_bytes()));
    }
    assert_eq!(parked[2].record.header(codec::headers::SUBJECT), Some(b"poison".as_slice()), "original bytes kept");
    dlq.close().await.expect("close");
}

/// Bad publishes are refused with typed errors and change nothing.
pub async fn bad_publishes_get_typed_errors(bus: &dyn EventBus) {
    let missing = unique("missing");
    let err = bus.publish(&missing, &[event("k", 1, 1)]).await.expect_err("unknown topic");
    assert!(matches!(err, Error::UnknownTopic(_)), "{err}");
    let err = bus.publish("bad topic!", &[event("k", 1, 1)]).await.expect_err("invalid name");
    assert!(matches!(err, Error::InvalidTopic(_)), "{err}");
    let topic = unique("big");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic");
    let mut big = event("k", 1, 1);
    big.data = json!({ "pad": "y".repeat(bus.max_record_bytes() + 1) });
    let err = bus.publish(&topic, &[big]).await.expect_err("too large");
    assert!(matches!(err, Error::RecordTooLarge { .. }), "{err}");
    let err = bus.subscribe(&unique("g"), &[&missing]).await.expect_err("unknown topic");
    assert!(matches!(err, Error::UnknownTopic(_)), "{err}");
}

/// Runs the whole contract as `#[tokio::test]`s against the bus `$make`
/// builds (an expression, evaluated once per test).
#[macro_export]
macro_rules! bus_contract_tests {
    ($make:expr) => {
        mod bus_contract {
            #[allow(unused_imports)]
            use super::*;
            use $crate::bus::contract as c;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn round_trip_keeps_envelopes_order_and_partitions() {
                c::round_trip_keeps_envelopes_order_and_partitions(&$make).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn groups_are_independent() {
                c::groups_are_independent(&$make).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn uncommitted_records_are_redelivered() {
                c::uncommitted_records_are_redelivered(&$make).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn poison_records_go_to_the_dlq_and_the_partition_moves_on() {
                c::poison_records_go_to_the_dlq_and_the_partition_moves_on(&$make).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lag_counts_what_is_not_committed() {
                c::lag_counts_what_is_not_committed(&$make).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bad_publishes_get_typed_errors() {
                c::bad_publishes_get_typed_errors(&$make).await;
            }
        }
    };
}
