//! The outbox relay across a Kafka outage: appends keep succeeding while the
//! broker is down, and afterwards every event reaches Kafka, in per-stream
//! order, nothing skipped (duplicates allowed; consumers dedupe by id).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain_core::bus::{EventBus, TopicSpec, topics};
use event_store::outbox::RelayConfig;
use event_store::{EmbeddedEventStore, EventStore, ExpectedVersion, OutboxRelay, StreamId};
use kafka_bus::{KafkaBus, KafkaConfig};

use crate::broker::PrivateBroker;
use crate::support::{counted, unique, wait_until_async};

/// How long the broker stays down (override with OUTBOX_OUTAGE_SECS).
fn outage() -> Duration {
    Duration::from_secs(std::env::var("OUTBOX_OUTAGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20))
}

async fn append_round(store: &dyn EventStore, streams: &[StreamId], per_stream: u64) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for s in streams {
        for _ in 0..per_stream {
            let v = store.stream_version(s).await.expect("version");
            let e = counted(s.as_str(), 0, v as i64 + 1);
            ids.push(e.id);
            let started = Instant::now();
            store.append(s, ExpectedVersion::Exact(v), &[e]).await.expect("append never fails for the bus");
            assert!(started.elapsed() < Duration::from_secs(5), "append waited on Kafka");
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_delivers_everything_in_order_across_a_broker_outage() {
    let mut broker = PrivateBroker::start(&unique("outbox-broker"));
    let bus = Arc::new(KafkaBus::connect(KafkaConfig::new(broker.bootstrap())).expect("bus"));
    bus.create_topics(&[TopicSpec::new(topics::ACCOUNTS, 3)]).await.expect("topics");
    let dir = std::env::temp_dir().join(unique("outbox-store"));
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::open(&dir).expect("store"));
    let streams: Vec<StreamId> = (0..5).map(|i| StreamId::new(format!("acct-{i}")).expect("stream")).collect();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = {
        let mut relay = OutboxRelay::new(Arc::clone(&store), bus.clone(), RelayConfig::new("accounts-relay"));
        tokio::spawn(async move {
            relay
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };

    let mut ids = append_round(store.as_ref(), &streams, 10).await;
    broker.stop();
    // Appends go on at a steady pace for the whole outage (a rate, not a
    // wait): each one must succeed without Kafka.
    let down_since = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(500));
    while down_since.elapsed() < outage() {
        pace.tick().await;
        ids.extend(append_round(store.as_ref(), &streams, 2).await);
    }
    broker.resume();
    ids.extend(append_round(store.as_ref(), &streams, 10).await);

    let head = store.head_position().await.expect("head");
    let caught_up = wait_until_async(Duration::from_secs(180), || async {
        store.load_checkpoint("accounts-relay").await.expect("checkpoint") == Some(head + 1)
    })
    .await;
    assert!(caught_up, "relay did not catch up");
    let _ = stop_tx.send(());
    let stats = relay.await.expect("relay task");

    let mut sub = bus.subscribe(&unique("check"), &[topics::ACCOUNTS]).await.expect("subscribe");
    let wanted: HashSet<_> = ids.iter().copied().collect();
    let mut seen = HashSet::new();
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < wanted.len() && Instant::now() < deadline {
        let Some(d) = sub.next(Duration::from_secs(1)).await.expect("next") else { continue };
        let env = d.envelope(bus.max_record_bytes()).expect("decodes");
        assert_eq!(d.record.key.as_deref(), Some(env.subject.as_bytes()), "key = aggregate id");
        if seen.insert(env.id) {
            per_stream.entry(env.subject.clone()).or_default().push(env.aggregate_version);
        }
    }
    sub.close().await.expect("close");
    assert_eq!(seen, wanted, "every appended event reached Kafka");
    for (stream, versions) in &per_stream {
        assert_eq!(versions, &(1..=versions.len() as u64).collect::<Vec<_>>(), "order of {stream}");
    }
    eprintln!("relayed {} events, {} failed attempts during the outage", stats.published, stats.failed_attempts);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}
