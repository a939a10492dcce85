//! Tests of the embedded adapter: the shared contract, reopening, crash
//! recovery from torn and damaged logs, and the directory lock.

use std::io::Write;

use super::*;
use crate::testkit::{event, stream};

/// A directory the test reopens a store in; removed when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("es-embedded-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp dir: {e}"));
    TempDir(dir)
}

crate::event_store_contract_tests!(async { super::EmbeddedEventStore::temporary().expect("open") });

#[tokio::test]
async fn a_temporary_store_removes_its_directory() {
    let store = EmbeddedEventStore::temporary().expect("open");
    let dir = store.path().parent().map(Path::to_path_buf).expect("dir");
    store.append(&stream("acct"), ExpectedVersion::Any, &[event("acct", 1)]).await.expect("append");
    assert!(dir.join(LOG_FILE).is_file());
    drop(store);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = temp_dir();
    let s = stream("acct");
    let (r, snap) = {
        let store = EmbeddedEventStore::open(&dir).expect("open");
        let r = store
            .append(&s, ExpectedVersion::NoStream, &[event(s.as_str(), 1), event(s.as_str(), 2)])
            .await
            .expect("append");
        let snap = Snapshot {
            stream: s.clone(),
            aggregate_type: "Account".into(),
            schema_version: 1,
            version: 2,
            state: serde_json::json!({ "balance": "3.00" }),
            taken_at: Utc::now(),
        };
        store.save_snapshot(&snap).await.expect("snapshot");
        store.save_checkpoint("relay", 3).await.expect("checkpoint");
        let gone = stream("gone");
        store.append(&gone, ExpectedVersion::Any, &[event(gone.as_str(), 1)]).await.expect("append");
        store.delete_stream(&gone, ExpectedVersion::Any).await.expect("delete");
        (r, snap)
    };
    let store = EmbeddedEventStore::open(&dir).expect("reopen");
    let read = store.read_stream(&s, 1, 10).await.expect("read");
    assert_eq!(read.len(), 2);
    assert_eq!(read[1].position, r.last_position);
    assert_eq!(store.load_snapshot(&s).await.expect("load"), Some(snap));
    assert_eq!(store.load_checkpoint("relay").await.expect("load"), Some(3));
    assert_eq!(store.head_position().await.expect("head"), 3);
    let retry = store
        .append(
            &s,
            ExpectedVersion::NoStream,
            &read
                .iter()
                .map(|e| {
                    let mut env = e.envelope.clone();
                    env.aggregate_version = 0;
                    env
                })
                .collect::<Vec<_>>(),
        )
        .await
        .expect("idempotent after reopen");
    assert_eq!(retry, r);
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = temp_dir();
    let _first = EmbeddedEventStore::open(&dir).expect("open");
    assert!(matches!(EmbeddedEventStore::open(&dir), Err(Error::Locked { .. })));
}

async fn two_appends(dir: &Path) -> u64 {
    let store = EmbeddedEventStore::open(dir).expect("open");
    let s = StreamId::new("acct-1").expect("stream");
    store.append(&s, ExpectedVersion::Any, &[event("acct-1", 1)]).await.expect("append");
    store.append(&s, ExpectedVersion::Any, &[event("acct-1", 2)]).await.expect("append");
    std::fs::metadata(dir.join(LOG_FILE)).expect("log").len()
}

#[tokio::test]
async fn a_torn_tail_is_cut_back_to_the_last_whole_frame() {
    let dir = temp_dir();
    let whole = two_appends(&dir).await;
    let log = dir.join(LOG_FILE);
    // A crash in the middle of a write: half a frame at the end.
    let bytes = std::fs::read(&log).expect("read");
    let first_frame = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as u64 + 8;
    let mut f = OpenOptions::new().append(true).open(&log).expect("open");
    f.write_all(&bytes[..(first_frame as usize) / 2]).expect("write");
    drop(f);
    let store = EmbeddedEventStore::open(&dir).expect("reopen repairs");
    assert_eq!(std::fs::metadata(&log).expect("log").len(), whole, "torn tail truncated");
    assert_eq!(store.head_position().await.expect("head"), 2);
    let s = StreamId::new("acct-1").expect("stream");
    let r = store.append(&s, ExpectedVersion::Exact(2), &[event("acct-1", 3)]).await.expect("append after repair");
    assert_eq!(r.last_position, 3);
}

#[tokio::test]
async fn damage_inside_the_log_is_reported_not_skipped() {
    let dir = temp_dir();
    two_appends(&dir).await;
    let log = dir.join(LOG_FILE);
    let mut bytes = std::fs::read(&log).expect("read");
    bytes[20] ^= 0x55; // inside the first of two frames
    std::fs::write(&log, &bytes).expect("write");
    match EmbeddedEventStore::open(&dir) {
        Err(Error::Damaged { offset, source: disk_format::Error::Damaged { .. }, .. }) => assert_eq!(offset, 0),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}
