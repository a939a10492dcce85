//! The lake on S3-compatible storage (moto's server, started by `cargo
//! xtask test` and named by `LAKE_S3_ENDPOINT`): tables created, appended,
//! listed, queried, compacted and read back at an old version; racing
//! writers land every commit through conditional puts; landing files and
//! the pipelines write there as they do on a directory.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

use lake::bronze::files::Landing;
use lake::deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
use lake::deltalake::arrow::datatypes::{DataType, Field, Schema};
use lake::{Commit, Lake, LakeLocation, LakeTable, Layer, TableId};

fn endpoint() -> String {
    std::env::var("LAKE_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("LAKE_S3_ENDPOINT is not set: run the tests with `cargo xtask test`, which starts moto's S3 server")
    })
}

/// Creates a bucket with a plain `PUT /<bucket>` (moto does not check signatures).
fn create_bucket(endpoint: &str, bucket: &str) {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).expect("S3 server reachable");
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "bucket creation: {answer}");
}

fn location(bucket: &str) -> LakeLocation {
    let endpoint = endpoint();
    create_bucket(&endpoint, bucket);
    let options: HashMap<String, String> = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    LakeLocation::parse(&format!("s3://{bucket}/lake"), options).expect("s3 location")
}

fn batch(from: i64, n: i64) -> RecordBatch {
    let schema =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("day", DataType::Utf8, true)]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from((from..from + n).collect::<Vec<_>>())),
            Arc::new(StringArray::from(vec!["2023-01-01"; n as usize])),
        ],
    )
    .expect("batch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_on_s3_write_race_compact_and_time_travel() {
    let bucket = format!("lake-{}", uuid::Uuid::now_v7().simple());
    let location = location(&bucket);
    let id = TableId::new(Layer::Bronze, "numbers").expect("id");
    let mut t = LakeTable::open_or_create(&location, &id, batch(0, 1).schema(), &["day"]).await.expect("create on s3");
    for i in 0..5 {
        t.append(vec![batch(i * 10, 10)], &Commit::default().with_transaction("w:0", i)).await.expect("append");
    }
    // Two writers at once: both land, one after the other.
    let mut a = LakeTable::open(&location, &id).await.expect("open").expect("table");
    let mut b = LakeTable::open(&location, &id).await.expect("open").expect("table");
    let (ca, cb) = (Commit::default(), Commit::default());
    let (ra, rb) = tokio::join!(a.append(vec![batch(100, 5)], &ca), b.append(vec![batch(200, 5)], &cb));
    let mut versions = vec![ra.expect("a lands"), rb.expect("b lands")];
    versions.sort();
    assert_eq!(versions, vec![6, 7]);

    t.refresh().await.expect("refresh");
    assert_eq!(t.stats().expect("stats").rows, 60);
    assert_eq!(t.transaction_version("w:0").await.expect("txn"), Some(4));
    let report = t.optimize(Some(("day", "2023-01-01")), 8 * 1024 * 1024).await.expect("optimize on s3");
    assert_eq!((report.files_removed, report.files_added), (7, 1));
    let old = LakeTable::at_version(&location, &id, 2).await.expect("time travel");
    assert_eq!(old.stats().expect("stats").rows, 20);

    let lake = Lake::new(location.clone());
    assert_eq!(lake.tables().await.expect("list"), vec![id.clone()]);
    let sum = lake.sql("SELECT CAST(SUM(id) AS BIGINT) AS s FROM bronze.numbers").await.expect("sql on s3");
    let s = sum[0].column(0).as_any().downcast_ref::<Int64Array>().expect("int").value(0);
    assert_eq!(s, (0..50).sum::<i64>() + (100..105).sum::<i64>() + (200..205).sum::<i64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landing_files_go_to_s3_once() {
    let bucket = format!("lake-{}", uuid::Uuid::now_v7().simple());
    let location = location(&bucket);
    let dir = std::env::temp_dir().join(format!("lake-s3-landing-{}", uuid::Uuid::now_v7()));
    let file = dir.join("customers").join("date=2023-01-01").join("customers.json");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
    std::fs::write(&file, serde_json::to_vec(&lake::scenario::raw_data()).expect("json")).expect("write");
    let landing = Landing::new(&dir, location.clone());
    let first = landing.ingest_file(&file).await.expect("ingest");
    assert!(matches!(first, lake::bronze::files::FileOutcome::Ingested { rows: 3, .. }), "{first:?}");
    let second = landing.ingest_file(&file).await.expect("ingest again");
    assert!(matches!(second, lake::bronze::files::FileOutcome::AlreadyIngested { .. }), "{second:?}");
    let lake = Lake::new(location);
    let names = lake.sql("SELECT name FROM bronze.customers ORDER BY id").await.expect("sql");
    let col = lake::deltalake::arrow::compute::cast(names[0].column(0), &DataType::Utf8).expect("cast");
    let col = col.as_any().downcast_ref::<StringArray>().expect("text");
    assert_eq!((0..3).map(|i| col.value(i)).collect::<Vec<_>>(), vec!["张三", "李四", "王五"]);
    std::fs::remove_dir_all(&dir).ok();
}
