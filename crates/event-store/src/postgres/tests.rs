//! The shared contract against PostgreSQL (`DATABASE_URL`, a fresh schema
//! per test so tests run in parallel), plus checks only a shared server can
//! make: several stores (as several processes would) on one schema.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{PostgresEventStore, PostgresOptions};
use crate::testkit::{event, stream};
use crate::{EventStore, ExpectedVersion};

fn url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("DATABASE_URL not set: run `cargo xtask test`"))
}

async fn store() -> PostgresEventStore {
    store_with(PostgresOptions::default()).await
}

async fn store_with(options: PostgresOptions) -> PostgresEventStore {
    let url = url();
    sweep_old_test_schemas(&url).await;
    let schema = format!("es_test_{}", uuid::Uuid::now_v7().simple());
    PostgresEventStore::connect_with(&url, &schema, options).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Another store on the same schema: its own pool and listener, like another process.
async fn twin(of: &PostgresEventStore, options: PostgresOptions) -> PostgresEventStore {
    PostgresEventStore::connect_with(&url(), of.schema(), options).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Tests leave their schemas behind (the contract has no teardown); once per
/// run, drop test schemas whose UUIDv7 says they are over an hour old.
async fn sweep_old_test_schemas(url: &str) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let client = super::pool::open(url).await.unwrap_or_else(|e| panic!("connect: {e}"));
    let rows = client
        .query(r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'es\_test\_%'", &[])
        .await
        .unwrap_or_else(|e| panic!("listing schemas: {e}"));
    let cutoff = chrono::Utc::now().timestamp() - 3600;
    for row in rows {
        let name: String = row.get(0);
        let created = uuid::Uuid::parse_str(&name["es_test_".len()..])
            .ok()
            .and_then(|u| u.get_timestamp())
            .map(|t| t.to_unix().0 as i64);
        if created.is_some_and(|c| c < cutoff) {
            // Best effort: a concurrent run may be dropping it too.
            let _ = client.batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{name}" CASCADE"#)).await;
        }
    }
}

crate::event_store_contract_tests!(async { super::store().await });

/// Writers on two stores (separate pools, as separate processes) race while
/// a reader tails the log as fast as it can: every page continues exactly at
/// its cursor, and the final log holds nothing the reader skipped earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn positions_become_visible_in_commit_order_across_processes() {
    let a = Arc::new(store().await);
    let b = Arc::new(twin(&a, PostgresOptions::default()).await);
    let (writers, batches) = (8, 30);
    let expected: usize = writers * (0..batches).map(|i| 1 + i % 3).sum::<usize>();
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = if w % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        handles.push(tokio::spawn(async move {
            let s = stream("gap");
            let mut appended = 0;
            for i in 0..batches {
                let batch: Vec<_> = (0..1 + i % 3).map(|n| event(s.as_str(), n as i64)).collect();
                appended += batch.len();
                store.append(&s, ExpectedVersion::Any, &batch).await.expect("append");
            }
            appended
        }));
    }
    let reader = {
        let store = Arc::clone(&b);
        tokio::spawn(async move {
            let (mut next, mut seen) = (1, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < expected && Instant::now() < deadline {
                let page = store.read_all(next, 50).await.expect("read all");
                for e in &page {
                    assert_eq!(e.position, next, "a later position became visible before an earlier one");
                    next += 1;
                    seen.push(e.envelope.id);
                }
                if page.is_empty() {
                    store.wait_for(next, Duration::from_millis(5)).await.expect("wait");
                }
            }
            seen
        })
    };
    let mut total = 0;
    for h in handles {
        total += h.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    assert_eq!((seen.len(), total), (expected, expected), "the reader saw every event");
    let all = a.read_all(1, 10_000).await.expect("read all");
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=total as u64).collect::<Vec<_>>());
    assert_eq!(all.iter().map(|e| e.envelope.id).collect::<Vec<_>>(), seen, "nothing appeared behind the reader");
    a.drop_schema().await.expect("drop");
}

/// The same batch appended concurrently through two stores: one writes, the
/// others get the original result back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_return_the_original() {
    let a = Arc::new(store().await);
    let b = Arc::new(twin(&a, PostgresOptions::default()).await);
    let s = stream("retry");
    let batch: Vec<_> = (0..3).map(|n| event(s.as_str(), n)).collect();
    let mut handles = Vec::new();
    for i in 0..8 {
        let (store, s, batch) = (if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) }, s.clone(), batch.clone());
        handles.push(tokio::spawn(async move { store.append(&s, ExpectedVersion::NoStream, &batch).await }));
    }
    let mut results = BTreeSet::new();
    for h in handles {
        let r = h.await.expect("task").expect("append or its retry succeeds");
        results.insert((r.first_version, r.last_version, r.first_position, r.last_position));
    }
    assert_eq!(results.into_iter().collect::<Vec<_>>(), vec![(1, 3, 1, 3)]);
    assert_eq!(a.read_all(1, 100).await.expect("read").len(), 3, "written once");
    a.drop_schema().await.expect("drop");
}

/// With the fallback poll out of the way, an append through another store
/// wakes a waiter through NOTIFY alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_wakes_on_notifications_from_other_stores() {
    let slow_poll = PostgresOptions { fallback_poll: Duration::from_secs(300), ..PostgresOptions::default() };
    let waiter = store_with(slow_poll.clone()).await;
    let writer = twin(&waiter, slow_poll).await;
    assert!(waiter.wait_listening(Duration::from_secs(30)).await, "the head listener runs LISTEN");
    let s = stream("notify");
    let append = async { writer.append(&s, ExpectedVersion::NoStream, &[event(s.as_str(), 1)]).await.expect("append") };
    let started = Instant::now();
    let (head, appended) = tokio::join!(waiter.wait_for(1, Duration::from_secs(20)), append);
    assert_eq!(head.expect("wait"), appended.last_position);
    assert!(started.elapsed() < Duration::from_secs(10), "woken by NOTIFY, not by the timeout");
    waiter.drop_schema().await.expect("drop");
}

#[tokio::test]
async fn connect_is_idempotent_and_drop_schema_removes_everything() {
    let a = store().await;
    let s = stream("m");
    a.append(&s, ExpectedVersion::NoStream, &[event(s.as_str(), 1)]).await.expect("append");
    let again = twin(&a, PostgresOptions::default()).await;
    assert_eq!(again.stream_version(&s).await.expect("version"), 1, "migrations kept the data");
    a.drop_schema().await.expect("drop");
    let fresh = twin(&a, PostgresOptions::default()).await;
    assert_eq!(fresh.head_position().await.expect("head"), 0);
    fresh.drop_schema().await.expect("drop");
    assert!(PostgresEventStore::connect(&url(), "Bad-Name").await.is_err());
}
