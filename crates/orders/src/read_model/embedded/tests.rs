use super::*;
use crate::read_model::contract::{self, TempDir, story};

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

/// Kills a process applying batches three times; after each kill the rows
/// hold exactly what the checkpoint says. With [`CRASH_DIR`] set, this test
/// is that process (see [`contract::apply_until_killed`]).
#[test]
fn a_kill_9_neither_loses_nor_double_applies() {
    if let Ok(dir) = std::env::var(CRASH_DIR) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let model = RedbReadModel::open(&dir).expect("open");
        rt.block_on(contract::apply_until_killed(&model));
        return;
    }
    let dir = TempDir::new("orders-redb-crash");
    let path = dir.0.display().to_string();
    for round in 0..3 {
        let reported = contract::kill_mid_run(
            "read_model::embedded::tests::a_kill_9_neither_loses_nor_double_applies",
            (CRASH_DIR, &path),
            200 + 50 * round,
        );
        assert!(reported > 1, "round {round}: the child made progress");
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
