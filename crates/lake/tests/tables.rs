//! Delta tables on a local directory: appends with commit info and `txn`
//! actions, statistics, history, time travel, checkpoints, optimize of a
//! partition of small files, vacuum, and writers racing on one table.

use std::sync::Arc;
use std::time::Duration;

use lake::deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
use lake::deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lake::{Commit, LakeLocation, LakeTable, Layer, TableId};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lake-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("date", DataType::Utf8, true),
    ]))
}

fn rows(from: i64, n: i64, date: &str) -> RecordBatch {
    let ids: Vec<i64> = (from..from + n).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("name-{i}")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(vec![date; n as usize])),
        ],
    )
    .expect("batch")
}

async fn table(dir: &std::path::Path) -> (LakeLocation, LakeTable) {
    let location = LakeLocation::local(dir).expect("location");
    let id = TableId::new(Layer::Bronze, "people").expect("id");
    let t = LakeTable::open_or_create(&location, &id, schema(), &["date"]).await.expect("create");
    (location, t)
}

#[tokio::test]
async fn appends_keep_info_transactions_and_history() {
    let dir = temp("append");
    let (location, mut t) = table(&dir).await;
    assert_eq!(t.version(), 0, "creation is version 0");
    let v1 = t
        .append(
            vec![rows(0, 3, "2023-01-01")],
            &Commit::default().with_info("lake.rows", 3).with_transaction("app:p0", 41),
        )
        .await
        .expect("append");
    // Time travel by timestamp picks the newest commit file written at or
    // before it; wait until the clock has passed version 1's file, so
    // version 2's is strictly newer.
    let v1_file = dir.join("bronze/people/_delta_log/00000000000000000001.json");
    let v1_written: chrono::DateTime<chrono::Utc> =
        std::fs::metadata(&v1_file).and_then(|m| m.modified()).expect("commit file time").into();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while chrono::Utc::now() <= v1_written + chrono::Duration::milliseconds(1) {
        assert!(std::time::Instant::now() < deadline, "the clock did not move past {v1_written}");
        std::thread::yield_now();
    }
    let between = v1_written;
    let v2 = t
        .append(vec![rows(3, 2, "2023-01-02")], &Commit::default().with_transaction("app:p0", 77))
        .await
        .expect("append");
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(t.transaction_version("app:p0").await.expect("txn"), Some(77));
    assert_eq!(t.transaction_version("app:p1").await.expect("txn"), None);

    let stats = t.stats().expect("stats");
    assert_eq!((stats.version, stats.rows, stats.files), (2, 5, 2));
    assert!(stats.bytes > 0);
    assert_eq!(t.objects(Some(("date", "2023-01-01"))).expect("objects").len(), 1);
    assert_eq!(t.objects(Some(("date", "2023-01-01"))).expect("objects")[0].record_count, Some(3));

    let history = t.history(None).await.expect("history");
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].version, Some(2));
    assert_eq!(history[1].info.get("lake.rows"), Some(&serde_json::json!(3)));

    // Time travel by version and by timestamp.
    let id = t.id().clone();
    let old = LakeTable::at_version(&location, &id, 1).await.expect("v1");
    assert_eq!(old.stats().expect("stats").rows, 3);
    assert_eq!(old.transaction_version("app:p0").await.expect("txn"), Some(41));
    let at = LakeTable::at_timestamp(&location, &id, between).await.expect("at time");
    assert_eq!(at.version(), 1);

    // A checkpoint, and the table still opens the same from it.
    t.checkpoint().await.expect("checkpoint");
    assert!(dir.join("bronze/people/_delta_log/_last_checkpoint").exists());
    let reopened = LakeTable::open(&location, &id).await.expect("open").expect("exists");
    assert_eq!(reopened.stats().expect("stats").rows, 5);
    assert_eq!(reopened.transaction_version("app:p0").await.expect("txn"), Some(77));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn optimize_compacts_a_partition_and_vacuum_removes_the_old_files() {
    let dir = temp("optimize");
    let (_location, mut t) = table(&dir).await;
    for i in 0..40 {
        t.append(vec![rows(i * 10, 10, "2023-01-01")], &Commit::default()).await.expect("append");
    }
    t.append(vec![rows(1_000, 10, "2023-01-02")], &Commit::default()).await.expect("append");
    assert_eq!(t.objects(Some(("date", "2023-01-01"))).expect("objects").len(), 40);

    let report = t.optimize(Some(("date", "2023-01-01")), 64 * 1024 * 1024).await.expect("optimize");
    assert_eq!((report.files_removed, report.files_added, report.partitions_optimized), (40, 1, 1));
    let after = t.objects(Some(("date", "2023-01-01"))).expect("objects");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].record_count, Some(400), "no row lost or doubled");
    assert_eq!(t.objects(Some(("date", "2023-01-02"))).expect("objects").len(), 1, "the other partition is untouched");

    let dry = t.vacuum(Duration::ZERO, true).await.expect("dry run");
    assert_eq!(dry.files_deleted.len(), 40);
    assert!(
        t.vacuum(Duration::from_secs(3600), false).await.expect("vacuum").files_deleted.is_empty(),
        "within retention"
    );
    let done = t.vacuum(Duration::ZERO, false).await.expect("vacuum");
    assert_eq!(done.files_deleted.len(), 40);
    assert_eq!(t.stats().expect("stats").rows, 410);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_all_land_and_the_log_never_forks() {
    let dir = temp("race");
    let (location, _) = table(&dir).await;
    let id = TableId::new(Layer::Bronze, "people").expect("id");
    let mut tasks = Vec::new();
    for w in 0..3i64 {
        let location = location.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = LakeTable::open(&location, &id).await.expect("open").expect("table");
            for i in 0..10 {
                t.append(vec![rows(w * 1_000 + i * 10, 10, "2023-01-01")], &Commit::default())
                    .await
                    .expect("append lands");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let t = LakeTable::open(&location, &id).await.expect("open").expect("table");
    assert_eq!(t.version(), 30, "30 appends after the creation");
    assert_eq!(t.stats().expect("stats").rows, 300);
    // One commit file per version, no gaps, none twice.
    let mut versions: Vec<i64> = std::fs::read_dir(dir.join("bronze/people/_delta_log"))
        .expect("log")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .collect();
    versions.sort();
    assert_eq!(versions, (0..=30).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn racing_writers_of_the_same_transaction_cannot_both_commit() {
    let dir = temp("txn-race");
    let (location, mut a) = table(&dir).await;
    let mut b = LakeTable::open(&location, a.id()).await.expect("open").expect("table");
    a.append(vec![rows(0, 1, "2023-01-01")], &Commit::default().with_transaction("bronze:t:0", 10))
        .await
        .expect("first");
    // `b` still sees the table before `a`'s commit and claims the same app id.
    let err = b.append(vec![rows(0, 1, "2023-01-01")], &Commit::default().with_transaction("bronze:t:0", 10)).await;
    assert!(err.is_err(), "the second commit of the same txn app id is refused");
    b.refresh().await.expect("refresh");
    assert_eq!(b.transaction_version("bronze:t:0").await.expect("txn"), Some(10));
    assert_eq!(b.stats().expect("stats").rows, 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn unknown_tables_and_bad_sql_are_precise_errors() {
    let dir = temp("errors");
    let (location, _) = table(&dir).await;
    let lake = lake::Lake::new(location);
    match lake.table_named("silver.nope").await {
        Err(lake::Error::UnknownTable { name, known }) => {
            assert_eq!(name, "silver.nope");
            assert_eq!(known, "bronze.people", "the error lists the tables there are");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(lake.table_named("nope").await, Err(lake::Error::InvalidTableName(_))));
    match lake.sql("SELECT * FROM silver.nope").await {
        Err(lake::Error::Sql(e)) => assert!(e.to_string().contains("silver.nope"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(lake.sql("SELEC 1").await, Err(lake::Error::Sql(_))));
    // The read-only entry refuses anything that writes, before it runs.
    let before = lake.table_named("bronze.people").await.expect("table").stats().expect("stats").rows;
    for statement in [
        "INSERT INTO bronze.people SELECT * FROM bronze.people",
        "CREATE TABLE bronze.copy AS SELECT * FROM bronze.people",
        "DROP TABLE bronze.people",
        "SET datafusion.execution.batch_size = 1",
    ] {
        match lake.query(statement).await {
            Err(lake::Error::NotAQuery(why)) => assert!(!why.is_empty(), "{statement}"),
            other => panic!("{statement}: {other:?}"),
        }
    }
    let after = lake.table_named("bronze.people").await.expect("table").stats().expect("stats").rows;
    assert_eq!(before, after, "nothing was written");
    let counted = lake.query("SELECT count(*) AS n FROM bronze.people").await.expect("a query runs");
    assert_eq!(counted[0].num_rows(), 1);
    std::fs::remove_dir_all(&dir).ok();
}
