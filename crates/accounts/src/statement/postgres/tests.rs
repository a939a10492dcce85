//! The shared suite against PostgreSQL (`DATABASE_URL`, a fresh schema per
//! test, dropped when the test ends), plus a kill -9 mid-run and racing
//! projectors on one schema.

use std::sync::Arc;

use super::PostgresStatements;
use crate::statement::contract::{self, story};
use crate::statement::{LinePage, StatementReadModel};

fn url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("DATABASE_URL not set: run `cargo xtask test`"))
}

/// A schema of one test, dropped when the guard drops (also on a panic).
#[derive(Debug)]
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn fresh() -> Self {
        Self { url: url(), name: format!("accounts_stmt_test_{}", uuid::Uuid::now_v7().simple()) }
    }

    async fn statements(&self) -> PostgresStatements {
        PostgresStatements::connect(&self.url, &self.name).await.unwrap_or_else(|e| panic!("connect: {e}"))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop cannot await: a thread with its own runtime and connection.
        let (url, sql) = (
            self.url.clone(),
            format!(
                r#"DROP SCHEMA IF EXISTS "{0}" CASCADE; DROP SCHEMA IF EXISTS "{0}_g1" CASCADE; DROP SCHEMA IF EXISTS "{0}_g2" CASCADE"#,
                self.name
            ),
        );
        let dropped = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(client) = super::open(&url).await {
                    let _ = client.batch_execute(&sql).await;
                }
            });
        });
        let _ = dropped.join();
    }
}

crate::statement::contract::statement_contract_tests!({
    let schema = Schema::fresh();
    let model = schema.statements().await;
    (schema, model)
});

#[tokio::test]
async fn a_schema_name_that_would_need_quoting_is_refused() {
    let err = PostgresStatements::connect(&url(), "Accounts; DROP").await.expect_err("refused");
    assert!(matches!(err, crate::Error::InvalidSchema(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_projectors_on_one_schema_apply_each_event_once() {
    let schema = Schema::fresh();
    let models = [Arc::new(schema.statements().await), Arc::new(schema.statements().await)];
    let log = Arc::new(story());
    let racers: Vec<_> = models
        .iter()
        .enumerate()
        .map(|(n, model)| {
            let (model, log) = (Arc::clone(model), Arc::clone(&log));
            tokio::spawn(async move {
                // Different batch sizes, so the racers overlap unevenly.
                let size = n as u64 + 1;
                let mut p = 1;
                while p < log.next_position() {
                    let end = (p + size).min(log.next_position());
                    model.apply(&log.range(p, end), end).await.expect("apply");
                    p = end;
                }
            })
        })
        .collect();
    for r in racers {
        r.await.expect("join");
    }
    let statement = models[0].statement("account_001", LinePage::first()).await.expect("query").expect("known");
    assert_eq!(statement.lines.iter().map(|l| l.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(models[1].checkpoint().await.expect("checkpoint"), 8);
}

const CRASH_SCHEMA: &str = "ACCOUNTS_STATEMENTS_CRASH_SCHEMA";

#[test]
fn a_kill_9_neither_loses_nor_double_applies() {
    if let Ok(name) = std::env::var(CRASH_SCHEMA) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let model = PostgresStatements::connect(&url(), &name).await.expect("connect");
            contract::apply_until_killed(&model).await;
        });
        return;
    }
    let schema = Schema::fresh();
    let mut last = 0;
    for round in 0..3 {
        contract::kill_mid_run(
            "statement::postgres::tests::a_kill_9_neither_loses_nor_double_applies",
            (CRASH_SCHEMA, &schema.name),
            100 + 50 * round,
        );
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let model = schema.statements().await;
            let checkpoint = model.checkpoint().await.expect("checkpoint");
            assert!(checkpoint > last, "round {round}: the child went on from the checkpoint");
            last = checkpoint;
            contract::assert_equals_a_rebuild_from_scratch(&model).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_moves_to_a_schema_of_its_own_and_drops_the_old_tables() {
    use super::PostgresStatementGenerations;
    use crate::statement::ServingStatements;
    use event_store::generations::Generations;

    let schema = Schema::fresh();
    let generations = PostgresStatementGenerations::connect(&schema.url, &schema.name).await.expect("connect");
    let serving = Arc::new(ServingStatements::open(Arc::new(generations.clone())).await.expect("open"));
    contract::a_rebuild_under_appends_switches_to_an_equal_copy(Arc::clone(&serving)).await;
    assert_eq!(generations.active().await.expect("active"), 1);
    assert_eq!(generations.schema_of(1), format!("{}_g1", schema.name));

    // Reopened, it serves generation 1, and generation 0's tables are gone.
    drop(serving);
    let again = ServingStatements::open(Arc::new(generations.clone())).await.expect("reopen");
    assert_eq!(again.generation(), 1);
    let page = LinePage::first();
    assert!(again.statement("account_001", page).await.expect("query").is_some());
    let client = super::open(&schema.url).await.expect("connect");
    let old = client
        .query_one("SELECT to_regclass($1)::text", &[&format!("{}.statement_lines", schema.name)])
        .await
        .expect("query");
    assert_eq!(old.get::<_, Option<String>>(0), None, "generation 0's lines were dropped");

    let long = "s".repeat(54);
    let err = PostgresStatementGenerations::connect(&schema.url, &long).await.expect_err("too long");
    assert!(matches!(err, crate::Error::InvalidSchema(_)), "{err}");
    generations.drop_all().await.expect("drop");
}
