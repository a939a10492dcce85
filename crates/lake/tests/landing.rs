//! Landing files become bronze tables: JSON (array and lines), CSV,
//! Parquet and Avro with inferred schemas, schema evolution, drift and
//! unparsable files moved to `rejected/` with a reason while the rest go
//! on, and a file ingested once however often it is offered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lake::bronze::files::{FileOutcome, Landing};
use lake::deltalake::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use lake::deltalake::arrow::datatypes::{DataType, Field, Schema};
use lake::deltalake::parquet::arrow::ArrowWriter;
use lake::{Lake, LakeLocation};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lake-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn put(root: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    std::fs::write(&path, bytes).expect("write");
    path
}

fn readings() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("device", DataType::Utf8, true),
        Field::new("reading", DataType::Float64, true),
        Field::new("seq", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["d1", "d2"])),
            Arc::new(Float64Array::from(vec![21.5, 22.0])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .expect("batch")
}

/// The outcome of the landing file whose path ends with `name`.
fn outcome<'a>(outcomes: &'a [FileOutcome], name: &str) -> &'a FileOutcome {
    outcomes.iter().find(|o| o.file().ends_with(name)).unwrap_or_else(|| panic!("no outcome for {name}: {outcomes:?}"))
}

async fn count(lake: &Lake, sql: &str) -> i64 {
    let b = lake.sql(sql).await.expect("sql");
    let c = lake::deltalake::arrow::compute::cast(b[0].column(0), &DataType::Int64).expect("cast");
    c.as_any().downcast_ref::<Int64Array>().expect("int").value(0)
}

#[tokio::test]
async fn every_format_lands_and_bad_files_never_block() {
    let dir = temp("landing");
    let landing_dir = dir.join("landing");
    let location = LakeLocation::local(dir.join("tables")).expect("location");
    let lake = Lake::new(location.clone());
    let seed = serde_json::to_vec(&lake::scenario::raw_data()).expect("json");
    put(&landing_dir, "customers/date=2023-01-01/customers.json", &seed);
    put(
        &landing_dir,
        "customers/date=2023-01-02/more.jsonl",
        "{\"id\":\"4\",\"name\":\"赵六\",\"age\":41,\"timestamp\":\"2023-01-02T09:00:00\",\"city\":\"Beijing\"}\n"
            .as_bytes(),
    );
    put(&landing_dir, "customers/date=2023-01-03/broken.json", b"{\"id\": \"5\", \"name\": ");
    put(
        &landing_dir,
        "customers/date=2023-01-04/retyped.csv",
        b"id,name,age,timestamp\n6,Wu,unknown,2023-01-04T00:00:00\n",
    );
    put(&landing_dir, "sales.csv", b"order,amount,region\n1,10.5,north\n2,20.25,south\n");
    // A missing column: the file lacks `age` and `timestamp`; they are null.
    put(&landing_dir, "customers/date=2023-01-05/partial.json", "[{\"id\":\"7\",\"name\":\"孙七\"}]".as_bytes());
    put(&landing_dir, "notes.txt", b"hello");
    let mut parquet = Vec::new();
    {
        let mut w = ArrowWriter::try_new(&mut parquet, readings().schema(), None).expect("writer");
        w.write(&readings()).expect("write");
        w.close().expect("close");
    }
    put(&landing_dir, "readings/part-0.parquet", &parquet);
    put(&landing_dir, "readings/part-1.avro", &lake::bronze::avro::write_avro(&[readings()]).expect("avro"));

    let landing = Landing::new(&landing_dir, location.clone());
    let outcomes = landing.ingest(&landing_dir, |_| {}).await.expect("ingest");
    let by_file = |name: &str| outcome(&outcomes, name);

    assert!(matches!(by_file("customers.json"), FileOutcome::Ingested { rows: 3, .. }));
    match by_file("more.jsonl") {
        FileOutcome::Ingested { new_columns, .. } => {
            assert_eq!(new_columns, &vec!["city".to_owned()], "schema evolves")
        }
        other => panic!("{other:?}"),
    }
    match by_file("broken.json") {
        FileOutcome::Rejected { reason, .. } => assert!(reason.contains("invalid JSON at line 1"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match by_file("retyped.csv") {
        FileOutcome::Rejected { reason, .. } => {
            assert!(reason.contains("column `age` is Int64 in the table but Utf8 in this file"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match by_file("notes.txt") {
        FileOutcome::Rejected { reason, .. } => assert!(reason.starts_with("unknown file type"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(by_file("sales.csv"), FileOutcome::Ingested { rows: 2, .. }));
    assert!(matches!(by_file("part-0.parquet"), FileOutcome::Ingested { rows: 2, .. }));
    assert!(matches!(by_file("part-1.avro"), FileOutcome::Ingested { rows: 2, .. }));

    // Rejected files moved, each beside its reason.
    let rejected = landing_dir.join("rejected/customers/date=2023-01-03/broken.json");
    assert!(rejected.exists());
    let reason: serde_json::Value = serde_json::from_slice(
        &std::fs::read(landing_dir.join("rejected/customers/date=2023-01-03/broken.json.reason.json")).expect("reason"),
    )
    .expect("json");
    assert!(reason["reason"].as_str().expect("text").contains("invalid JSON"));
    assert!(!landing_dir.join("customers/date=2023-01-03/broken.json").exists());

    assert!(matches!(by_file("partial.json"), FileOutcome::Ingested { rows: 1, .. }));
    assert_eq!(count(&lake, "SELECT COUNT(*) FROM bronze.customers").await, 5);
    assert_eq!(
        count(&lake, "SELECT COUNT(*) FROM bronze.customers WHERE id = '7' AND age IS NULL AND \"timestamp\" IS NULL")
            .await,
        1
    );
    assert_eq!(
        count(&lake, "SELECT COUNT(*) FROM bronze.customers WHERE city = 'Beijing' AND date = '2023-01-02'").await,
        1
    );
    assert_eq!(count(&lake, "SELECT COUNT(*) FROM bronze.readings").await, 4, "parquet and avro in one table");
    assert_eq!(count(&lake, "SELECT COUNT(DISTINCT _source_file) FROM bronze.readings").await, 2);

    // Offered again: nothing twice. Changed content at the same path: taken.
    let again = landing.ingest(&landing_dir, |_| {}).await.expect("again");
    assert!(again.iter().all(|o| matches!(o, FileOutcome::AlreadyIngested { .. })), "{again:?}");
    put(&landing_dir, "sales.csv", b"order,amount,region\n3,30.0,east\n");
    let changed = landing.ingest(&landing_dir.join("sales.csv"), |_| {}).await.expect("changed");
    assert!(matches!(&changed[0], FileOutcome::Ingested { rows: 1, .. }), "{changed:?}");
    assert_eq!(count(&lake, "SELECT COUNT(*) FROM bronze.sales").await, 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn links_that_lead_out_of_the_landing_folder_are_refused_unread() {
    let dir = temp("links");
    let landing_dir = dir.join("landing");
    let outside = dir.join("secret");
    let location = LakeLocation::local(dir.join("tables")).expect("location");
    let row = b"{\"id\":\"1\",\"name\":\"\xe5\xbc\xa0\xe4\xb8\x89\"}\n";
    let secret = put(&outside, "people.jsonl", row);
    put(&outside, "nested/more.jsonl", row);
    let inside = put(&landing_dir, "people/real.jsonl", row);
    std::fs::create_dir_all(landing_dir.join("people")).expect("dir");
    std::os::unix::fs::symlink(&secret, landing_dir.join("people/leak.jsonl")).expect("file link");
    std::os::unix::fs::symlink(&inside, landing_dir.join("people/alias.jsonl")).expect("link inside");
    std::os::unix::fs::symlink(outside.join("nested"), landing_dir.join("people/linked_dir")).expect("folder link");

    let landing = Landing::new(&landing_dir, location.clone());
    let outcomes = landing.ingest(&landing_dir, |_| {}).await.expect("ingest");
    let of = |name: &str| outcome(&outcomes, name);
    match of("leak.jsonl") {
        FileOutcome::Rejected { reason, .. } => assert!(reason.contains("outside the landing folder"), "{reason}"),
        other => panic!("a link out is refused: {other:?}"),
    }
    assert!(matches!(of("real.jsonl"), FileOutcome::Ingested { .. }));
    assert!(matches!(of("alias.jsonl"), FileOutcome::Ingested { .. }), "a link within the folder is fine");
    assert_eq!(outcomes.len(), 3, "the linked folder is not walked: {outcomes:?}");
    assert!(secret.is_file(), "the link's target is left where it was");
    let rows = Lake::new(location).table_named("bronze.people").await.expect("table").stats().expect("stats").rows;
    assert_eq!(rows, 2, "only the files inside the landing folder were read");
    std::fs::remove_dir_all(&dir).ok();
}
