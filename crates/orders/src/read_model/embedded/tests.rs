use super::*;
use crate::read_model::contract::{self, TempDir, story};

fn temp() -> (TempDir, RedbReadModel) {
    let dir = TempDir::new("orders-redb");
    let model = RedbReadModel::open(&dir.0).expect("open");
    (dir, model)
}

crate::read_model::contract::read_model_contract_tests!(super::temp());

/// A copy being rebuilt stages what it is fed and writes it when its stage
/// is full; here the stage holds two rows, and every query first writes
/// what is staged (as the sync before a copy serves does), so the whole
/// suite runs through staging, writes of a full stage included.
mod staged {
    use super::*;

    #[derive(Debug)]
    pub(super) struct Staging(RedbReadModel);

    #[async_trait::async_trait]
    impl ReadModel for Staging {
        async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
            self.0.apply(batch, next_position).await
        }
        async fn checkpoint(&self) -> Result<u64> {
            self.0.checkpoint().await
        }
        async fn by_customer(&self, customer_id: &str) -> Result<Vec<OrderSummary>> {
            self.0.write_stage().await?;
            self.0.by_customer(customer_id).await
        }
        async fn get(&self, order_id: &str) -> Result<Option<OrderSummary>> {
            self.0.write_stage().await?;
            self.0.get(order_id).await
        }
        async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyOrders>> {
            self.0.write_stage().await?;
            self.0.daily(from, to).await
        }
    }

    fn temp() -> (TempDir, Staging) {
        let dir = TempDir::new("orders-redb-staged");
        std::fs::create_dir_all(&dir.0).expect("dir");
        let model = RedbReadModel::open_file(dir.0.join("copy.redb"), true).expect("open").with_stage_limit(2);
        (dir, Staging(model))
    }

    crate::read_model::contract::read_model_contract_tests!(super::temp());

    /// A seeded log of interleaved orders, each of two to six events.
    fn interleaved(orders: usize, customers: u64, seed: u64) -> crate::read_model::contract::Log {
        use crate::read_model::contract::{cny, created, item};
        let mut rng = domain_core::seeded::SplitMix64::new(seed);
        let mut log = crate::read_model::contract::Log::default();
        // (order, events still to come)
        let mut open: Vec<(String, u64)> = Vec::new();
        let mut made = 0;
        while made < orders || !open.is_empty() {
            if made < orders && (open.is_empty() || rng.chance(0.3)) {
                let id = format!("order_{made:04}");
                log.push(&id, created(&format!("cust_{:02}", rng.below(customers))));
                open.push((id, 1 + rng.below(5)));
                made += 1;
                continue;
            }
            let at = rng.below(open.len() as u64) as usize;
            let (id, left) = open[at].clone();
            let event = match left {
                1 if rng.chance(0.5) => {
                    crate::order::OrderEvent::OrderPaymentRejected { reason: "insufficient_funds".into() }
                }
                1 => crate::order::OrderEvent::OrderPaid { amount: cny("1.00") },
                _ => item("p", 1 + rng.below(3) as u32, "9.99"),
            };
            log.push(&id, event);
            if left == 1 {
                open.swap_remove(at);
            } else {
                open[at].1 -= 1;
            }
        }
        log
    }

    /// A copy dropped while a stage is being written lets go of its file:
    /// the file opens again at once, holding whole stages only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_dropped_mid_write_closes_its_file() {
        let dir = TempDir::new("orders-redb-staged-drop");
        std::fs::create_dir_all(&dir.0).expect("dir");
        let path = dir.0.join("copy.redb");
        let log = interleaved(2_000, 12, 20_261_204);
        for _ in 0..3 {
            let model = RedbReadModel::open_file(path.clone(), true).expect("open").with_stage_limit(500);
            model.apply(&log.events, log.next_position()).await.expect("feed");
            drop(model);
            let reopened = RedbReadModel::open_file(path.clone(), false).expect("the file is free again");
            let checkpoint = reopened.checkpoint().await.expect("checkpoint");
            assert!(checkpoint <= log.next_position(), "{checkpoint}");
            drop(reopened);
            std::fs::remove_file(&path).expect("remove");
        }
    }

    /// Orders whose events span many small stages, fed in batches of
    /// uneven sizes with no wait in between, so a batch often meets its
    /// rows in the stage being written or only in the file: after the sync
    /// the copy equals a projection from scratch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_spread_over_stages_in_flight_equal_a_projection_from_scratch() {
        let dir = TempDir::new("orders-redb-staged-spread");
        std::fs::create_dir_all(&dir.0).expect("dir");
        let model = RedbReadModel::open_file(dir.0.join("copy.redb"), true).expect("open").with_stage_limit(8);
        let log = interleaved(300, 12, 20_261_203);
        let mut rng = domain_core::seeded::SplitMix64::new(7);
        let mut from = 1;
        while from < log.next_position() {
            let to = (from + 1 + rng.below(40)).min(log.next_position());
            model.apply(&log.range(from, to), to).await.expect("feed");
            assert_eq!(
                model.checkpoint().await.expect("checkpoint"),
                to,
                "the copy's checkpoint follows what it was fed"
            );
            from = to;
        }
        model.sync().await.expect("sync");
        let scratch = crate::MemoryReadModel::new();
        scratch.apply(&log.events, log.next_position()).await.expect("from scratch");
        for customer in (0..12).map(|c| format!("cust_{c:02}")) {
            let (mut copy, mut expected) = (
                model.by_customer(&customer).await.expect("query"),
                scratch.by_customer(&customer).await.expect("query"),
            );
            copy.sort_by(|a, b| a.order_id.cmp(&b.order_id));
            expected.sort_by(|a, b| a.order_id.cmp(&b.order_id));
            assert_eq!(copy, expected, "{customer}");
        }
        let day = log.events[0].envelope.time.date_naive();
        let (from, to) = (day - chrono::Days::new(1), day + chrono::Days::new(1));
        assert_eq!(model.daily(from, to).await.expect("daily"), scratch.daily(from, to).await.expect("daily"));
        drop(model);
        let reopened = RedbReadModel::open_file(dir.0.join("copy.redb"), false).expect("reopen");
        assert_eq!(reopened.checkpoint().await.expect("checkpoint"), log.next_position());
        assert_eq!(
            reopened.get("order_0299").await.expect("get"),
            scratch.get("order_0299").await.expect("get"),
            "the last order, after a reopen"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stage_is_in_the_file_after_sync_and_durable_commits_follow() {
        use crate::read_model::contract::story;
        let dir = TempDir::new("orders-redb-staged-sync");
        std::fs::create_dir_all(&dir.0).expect("dir");
        let path = dir.0.join("copy.redb");
        let model = RedbReadModel::open_file(path.clone(), true).expect("open").with_stage_limit(1000);
        let log = story();
        model.apply(&log.range(1, 6), 6).await.expect("stage");
        assert_eq!(model.checkpoint().await.expect("checkpoint"), 6, "the stage's checkpoint");
        model.sync().await.expect("sync");
        model.apply(&log.range(6, log.next_position()), log.next_position()).await.expect("durable apply");
        drop(model);
        let reopened = RedbReadModel::open_file(path, false).expect("reopen");
        assert_eq!(reopened.checkpoint().await.expect("checkpoint"), log.next_position());
        let scratch = crate::MemoryReadModel::new();
        scratch.apply(&log.events, log.next_position()).await.expect("from scratch");
        for customer in ["cust_123", "cust_456"] {
            assert_eq!(
                reopened.by_customer(customer).await.expect("query"),
                scratch.by_customer(customer).await.expect("query"),
                "{customer}"
            );
        }
        let day = log.events[0].envelope.time.date_naive();
        let (from, to) = (day - chrono::Days::new(1), day + chrono::Days::new(1));
        assert_eq!(reopened.daily(from, to).await.expect("daily"), scratch.daily(from, to).await.expect("daily"));
    }
}

fn temp_generations() -> (TempDir, std::sync::Arc<crate::OrderGenerations>) {
    let dir = TempDir::new("orders-redb-generations");
    let generations = RedbGenerations::new(&dir.0).expect("dir");
    (dir, std::sync::Arc::new(generations))
}

crate::read_model::contract::generations_contract_tests!(super::temp_generations());

#[tokio::test]
async fn generations_are_files_beside_a_pointer_and_open_serving_tidies_up() {
    let dir = TempDir::new("orders-redb-files");
    let log = story();
    let serving = RedbGenerations::open_serving(&dir.0).expect("open");
    serving.apply(&log.events, log.next_position()).await.expect("apply");
    assert!(dir.0.join("orders.redb").exists() && !dir.0.join(RedbGenerations::POINTER).exists());
    let copy = serving.fresh_copy().await.expect("copy");
    assert!(dir.0.join("orders.g1.redb").exists());
    copy.apply(&log.events, log.next_position()).await.expect("feed");
    serving.switch_to_copy().await.expect("switch");
    assert_eq!(std::fs::read_to_string(dir.0.join(RedbGenerations::POINTER)).expect("pointer").trim(), "1");
    assert!(!dir.0.join("orders.redb").exists(), "the old generation's file is removed");
    let leftover = serving.fresh_copy().await.expect("a rebuild that will not finish");
    drop((leftover, copy, serving));
    assert!(dir.0.join("orders.g2.redb").exists());

    let reopened = RedbGenerations::open_serving(&dir.0).expect("reopen");
    assert_eq!(reopened.generation(), 1);
    assert!(!dir.0.join("orders.g2.redb").exists(), "the unfinished copy is removed on open");
    assert_eq!(reopened.checkpoint().await.expect("checkpoint"), log.next_position());
    std::fs::write(dir.0.join(RedbGenerations::POINTER), "one\n").expect("write");
    drop(reopened);
    let r = RedbGenerations::open_serving(&dir.0);
    assert!(
        matches!(&r, Err(Error::GenerationFile(event_store::generations::FileError::Pointer { text, .. })) if text == "one"),
        "{r:?}"
    );
}

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
        rt.block_on(contract::assert_equals_a_rebuild_from_scratch(&model));
    }
}

/// An embedded log and a serving redb read model in a fresh directory
/// (removed when the guard drops).
fn log_and_serving(
    name: &str,
) -> (TempDir, std::sync::Arc<event_store::EmbeddedEventStore>, std::sync::Arc<ServingReadModel>) {
    let dir = TempDir::new(name);
    let store = event_store::EmbeddedEventStore::open(dir.0.join("log")).expect("store");
    let serving = RedbGenerations::open_serving(dir.0.join("read")).expect("open");
    (dir, std::sync::Arc::new(store), std::sync::Arc::new(serving))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_load_switches_over_without_a_reader_noticing() {
    let (_dir, store, serving) = log_and_serving("orders-redb-rebuild");
    contract::a_rebuild_under_load_switches_over_unseen(store, serving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_parks_the_projection_on_the_embedded_store() {
    let (_dir, store, serving) = log_and_serving("orders-redb-poison");
    contract::a_poison_event_parks_the_projection(store, serving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_the_multimap_layout_is_emptied_and_projected_again() {
    let dir = TempDir::new("orders-redb-old-layout");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let path = dir.0.join("orders.redb");
    {
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        let old = redb::MultimapTableDefinition::<&str, &str>::new(BY_CUSTOMER_MULTIMAP);
        txn.open_multimap_table(old).expect("old index").insert("cust_123", "order_001").expect("insert");
        txn.open_table(ROWS).expect("rows").insert("order_001", b"{}".as_slice()).expect("insert");
        txn.open_table(META).expect("meta").insert(CHECKPOINT, 9).expect("insert");
        txn.commit().expect("commit");
    }
    let model = RedbReadModel::open_file(path, false).expect("open");
    assert_eq!(model.checkpoint().await.expect("checkpoint"), 1, "projected again from the start");
    assert_eq!(model.get("order_001").await.expect("get"), None);
    let log = story();
    model.apply(&log.events, log.next_position()).await.expect("apply");
    assert_eq!(model.by_customer("cust_123").await.expect("query").len(), 2);
}
