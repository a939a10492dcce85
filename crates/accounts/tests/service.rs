//! `Accounts` on a real store: snapshots every 100 versions and a reload
//! that equals the state before it; two services on one store (two
//! processes) never act on a stale cached account; racing commands on one
//! account are all decided on fresh state.

use std::sync::Arc;

use accounts::{AccountCommand, Accounts};
use domain_core::{Currency, Money};
use event_store::{EmbeddedEventStore, EventStore, Repository};

fn cny(s: &str) -> Money {
    Money::parse(s, Currency::CNY).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn snapshots_every_100_versions_and_a_reload_equals_the_state_before_it() {
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::temporary().expect("store"));
    let accounts = Accounts::new(Arc::clone(&store));
    accounts.open("a1", "张三", cny("1000")).await.expect("open");
    for i in 0..249 {
        let command = AccountCommand::Deposit { amount: cny("1.01"), description: format!("d{i}") };
        accounts.execute("a1", command, None).await.expect("deposit");
    }
    let before = accounts.get_by_id("a1").await.expect("load");
    assert_eq!((before.version(), before.state().balance.to_string().as_str()), (250, "1251.49"));
    let stream = Repository::<accounts::Account>::stream_of("a1").expect("stream");
    let snapshot = store.load_snapshot(&stream).await.expect("load").expect("a snapshot");
    assert_eq!(snapshot.version, 200, "the newest multiple of 100");
    // A fresh service (nothing cached) loads snapshot + tail; the state is equal.
    let reloaded = Accounts::new(Arc::clone(&store)).get_by_id("a1").await.expect("reload");
    assert_eq!(reloaded.version(), before.version());
    assert_eq!(reloaded.state(), before.state());
}

#[tokio::test]
async fn a_second_service_on_the_same_store_never_acts_on_a_stale_cache() {
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::temporary().expect("store"));
    let (one, two) = (Accounts::new(Arc::clone(&store)), Accounts::new(Arc::clone(&store)));
    one.open("a2", "李四", cny("100")).await.expect("open");
    // `one` has a2 cached at 100.00; `two` takes 80 of it.
    assert_eq!(one.get_by_id("a2").await.expect("load").state().balance.to_string(), "100.00");
    two.execute("a2", AccountCommand::Withdraw { amount: cny("80"), description: String::new() }, None)
        .await
        .expect("withdraw");
    // A read through `one` shows it (the cache is only a starting point)...
    assert_eq!(one.get_by_id("a2").await.expect("load").state().balance.to_string(), "20.00");
    // ...and so does a decision: 30 more would overdraw.
    let refused =
        one.execute("a2", AccountCommand::Withdraw { amount: cny("30"), description: String::new() }, None).await;
    assert!(
        matches!(refused, Err(accounts::Error::Account(accounts::AccountError::InsufficientFunds { .. }))),
        "{refused:?}"
    );
    assert_eq!(one.get_by_id("a2").await.expect("load").state().balance.to_string(), "20.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_withdrawals_from_two_services_never_overdraw() {
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::temporary().expect("store"));
    let services = [Accounts::new(Arc::clone(&store)), Accounts::new(Arc::clone(&store))];
    services[0].open("a3", "王五", cny("50")).await.expect("open");
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = services[i % 2].clone();
            tokio::spawn(async move {
                s.execute("a3", AccountCommand::Withdraw { amount: cny("1"), description: String::new() }, None).await
            })
        })
        .collect();
    let mut taken = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => taken += 1,
            Err(accounts::Error::Account(accounts::AccountError::InsufficientFunds { .. })) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(taken, 50, "exactly the balance was taken");
    assert_eq!(services[1].get_by_id("a3").await.expect("load").state().balance.to_string(), "0.00");
}
