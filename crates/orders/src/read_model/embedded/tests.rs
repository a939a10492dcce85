use std::time::Duration;

use super::*;
use crate::read_model::contract::{Log, TempDir, created, item, story};

fn temp() -> (TempDir, RedbReadModel) {
    let dir = TempDir::new("orders-redb");
    let model = RedbReadModel::open(&dir.0).expect("open");
    (dir, model)
}

crate::read_model::contract::read_model_contract_tests!(super::temp());

#[tokio::test]
async fn checkpoint_and_rows_survive_a_reopen() {
    let (dir, model) = temp();
    let log = story();
    model.apply(&log.range(1, 8), 8).await.expect("apply");
    let before = model.by_customer("cust_123").await.expect("query");
    drop(model);
    let reopened = RedbReadModel::open(&dir.0).expect("reopen");
    assert_eq!(reopened.path(), dir.0.join("orders.redb"));
    assert_eq!(reopened.checkpoint().await.expect("checkpoint"), 8);
    assert_eq!(reopened.by_customer("cust_123").await.expect("query"), before);
    reopened.apply(&log.range(1, log.next_position()), log.next_position()).await.expect("the rest");
    assert_eq!(reopened.get("order_001").await.expect("get").map(|r| r.status), Some(crate::OrderStatus::Shipped));
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let (dir, _model) = temp();
    let r = RedbReadModel::open(&dir.0);
    assert!(matches!(r, Err(Error::ReadModelDb(redb::Error::DatabaseAlreadyOpen))), "{r:?}");
}

/// The directory the crash child writes to; set only for the child.
const CRASH_DIR: &str = "ORDERS_REDB_CRASH_DIR";

/// Run by [`a_kill_9_neither_loses_nor_double_applies`] in a child process:
/// applies small batches (an order created, then one item per batch) until
/// it is killed.
#[tokio::test]
#[ignore = "child process of a_kill_9_neither_loses_nor_double_applies"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR) else { return };
    let model = RedbReadModel::open(&dir).expect("open");
    let mut log = Log::default();
    let mut next = model.checkpoint().await.expect("checkpoint");
    for n in 0u64.. {
        let order = format!("order_{}", n / 10);
        let event = if n % 10 == 0 { created("cust_crash") } else { item("p", 1, "1.00") };
        log.push(&order, event);
        if log.next_position() > next {
            model.apply(&log.range(next, log.next_position()), log.next_position()).await.expect("apply");
            next = log.next_position();
        }
    }
}

#[test]
fn a_kill_9_neither_loses_nor_double_applies() {
    let dir = TempDir::new("orders-redb-crash");
    let exe = std::env::current_exe().expect("test binary");
    for round in 0..3 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "read_model::embedded::tests::crash_child", "--ignored", "--test-threads=1"])
            .env(CRASH_DIR, &dir.0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(400 + 150 * round));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");

        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let model = RedbReadModel::open(&dir.0).expect("reopen after kill -9");
        let (checkpoint, rows) = rt.block_on(async {
            (model.checkpoint().await.expect("checkpoint"), model.by_customer("cust_crash").await.expect("query"))
        });
        // Every applied event is a creation (one row) or an item (one count).
        let applied: u64 = rows.iter().map(|r| 1 + u64::from(r.item_count)).sum();
        assert_eq!(applied, checkpoint - 1, "round {round}: rows cover exactly what the checkpoint says");
        assert!(checkpoint > 1, "round {round}: the child made progress");
        for r in &rows {
            assert_eq!(r.total.amount, rust_decimal::Decimal::from(r.item_count), "round {round}: {r:?}");
        }
    }
}
