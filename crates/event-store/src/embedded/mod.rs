//! The embedded adapter: one append-only log file of CRC-framed records in a
//! directory of its own, with group commit.
//!
//! Why a log of our own rather than SQLite or redb: an event store only ever
//! appends, so a sequential log with one `fdatasync` per group of appends is
//! the cheapest durable write there is (the benchmark compares it with raw
//! fsync'd writes of the same bytes), and recovery is a scan that cuts a torn
//! tail. Stream, id and position indexes live in memory and are rebuilt by
//! that scan on open. Snapshots, tombstones and checkpoints are frames of the
//! same log, so one durability path covers everything.
//!
//! Writes go through one writer thread: it drains every request waiting,
//! decides each against the write-side index, writes all their frames with
//! one `write`, calls `fdatasync` once, and only then publishes the events to
//! readers and answers the callers. A crash at any moment leaves whole
//! frames plus at most one torn frame, which the next open truncates.

mod writer;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain_core::Envelope;
use tokio::sync::oneshot;

use crate::head::HeadWatch;
use crate::index::{ReadSide, WriteSide};
use crate::model::DEFAULT_MAX_EVENT_BYTES;
use crate::record::StoredPayload;
use crate::rules::EventKey;
use crate::{
    AppendResult, Error, EventStore, ExpectedVersion, RecordedEvent, RecordedText, Result, Snapshot, StreamId,
};
use disk_format::frame::{self, Scan};
use disk_format::{ByteReader, DirLock};
use writer::{Request, Writer};

const LOG_FILE: &str = "events.log";
/// Most bytes one coalesced read covers (a single larger event is read whole).
const READ_CHUNK: u64 = 256 * 1024;

/// Frame kinds of the event log.
pub(crate) const APPEND: u8 = 1;
pub(crate) const TOMBSTONE: u8 = 2;
pub(crate) const SNAPSHOT: u8 = 3;
pub(crate) const CHECKPOINT: u8 = 4;

/// Where an event's bytes are in the log.
#[derive(Debug, Clone, Copy)]
struct Loc {
    stream: u32,
    version: u64,
    offset: u64,
    len: u32,
    recorded_at: i64,
}

/// What readers see: only what is durable.
#[derive(Debug, Default)]
struct ReadIndex {
    events: ReadSide<Loc>,
    stream_names: Vec<StreamId>,
    stream_ids: HashMap<StreamId, u32>,
    /// Newest snapshot per stream: (version, offset, len) of its JSON.
    snapshots: HashMap<StreamId, (u64, u64, u32)>,
    checkpoints: HashMap<String, u64>,
}

impl ReadIndex {
    fn intern(&mut self, stream: &StreamId) -> u32 {
        if let Some(id) = self.stream_ids.get(stream) {
            return *id;
        }
        let id = self.stream_names.len() as u32;
        self.stream_names.push(stream.clone());
        self.stream_ids.insert(stream.clone(), id);
        id
    }
}

/// Settings of an [`EmbeddedEventStore`].
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedConfig {
    pub max_event_bytes: usize,
    /// Bytes one group commit may write before it syncs.
    pub max_group_bytes: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self { max_event_bytes: DEFAULT_MAX_EVENT_BYTES, max_group_bytes: 64 * 1024 * 1024 }
    }
}

/// An event store in a local directory, durable on return.
#[derive(Debug)]
pub struct EmbeddedEventStore {
    shared: Arc<Shared>,
    max_event_bytes: usize,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set for [`EmbeddedEventStore::temporary`]: removed on drop.
    remove_on_drop: Option<PathBuf>,
    _lock: File,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    read: RwLock<ReadIndex>,
    file: File,
    head: HeadWatch,
}

impl Shared {
    fn index(&self) -> RwLockReadGuard<'_, ReadIndex> {
        // Index updates cannot panic half-way; a poisoned lock is still consistent.
        self.read.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(&mut buf, offset, len)?;
        Ok(buf)
    }

    fn read_into(&self, buf: &mut Vec<u8>, offset: u64, len: usize) -> Result<()> {
        buf.resize(len, 0);
        self.file.read_exact_at(buf, offset).map_err(Error::io(&self.path))
    }

    /// Where the events of the global log from `from` are, up to `max`.
    fn log_items(&self, from: u64, max: usize) -> Vec<(StreamId, u64, Loc)> {
        let index = self.index();
        index.events.all(from, max).map(|(p, l)| (index.stream_names[l.stream as usize].clone(), p, *l)).collect()
    }

    /// Reads and decodes events, a large read on two threads.
    fn load<D: StoredPayload + Send>(&self, items: Vec<(StreamId, u64, Loc)>) -> Result<Vec<RecordedEvent<D>>> {
        crate::parallel::in_halves(items, |part| self.load_part(&part))
    }

    /// Reads and decodes events in order, coalescing neighbouring ones into
    /// one read.
    fn load_part<D: StoredPayload>(&self, items: &[(StreamId, u64, Loc)]) -> Result<Vec<RecordedEvent<D>>> {
        let mut out = Vec::with_capacity(items.len());
        let mut types = crate::record::TypeCache::default();
        // One modest buffer reused for every read: a multi-megabyte one per
        // read costs page faults and makes the allocator consolidate.
        let mut chunk = Vec::with_capacity(READ_CHUNK as usize);
        let mut i = 0;
        while i < items.len() {
            let start = items[i].2.offset;
            let mut end = start + u64::from(items[i].2.len);
            let mut j = i + 1;
            while j < items.len() {
                let l = items[j].2;
                if l.offset < end || l.offset - end > 4096 || l.offset + u64::from(l.len) - start > READ_CHUNK {
                    break;
                }
                end = l.offset + u64::from(l.len);
                j += 1;
            }
            self.read_into(&mut chunk, start, (end - start) as usize)?;
            for (stream, position, loc) in items[i..j].iter().cloned() {
                let at = (loc.offset - start) as usize;
                let envelope = crate::record::decode_with(&chunk[at..at + loc.len as usize], loc.version, &mut types)?;
                out.push(RecordedEvent {
                    stream,
                    version: loc.version,
                    position,
                    recorded_at: DateTime::<Utc>::from_timestamp_micros(loc.recorded_at).unwrap_or_default(),
                    envelope,
                });
            }
            i = j;
        }
        Ok(out)
    }
}

impl EmbeddedEventStore {
    /// Opens (or creates) the store in `dir`, recovering after a crash.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EmbeddedConfig::default())
    }

    pub fn open_with(dir: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Self> {
        let dir = dir.as_ref();
        let DirLock::Held(lock) = disk_format::lock_dir(dir).map_err(Error::io(dir))? else {
            return Err(Error::Locked { path: dir.display().to_string() });
        };
        let path = dir.join(LOG_FILE);
        let append = OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(Error::io(&path))?;
        let (write, read, len) = recover(&path, &append)?;
        let file = File::open(&path).map_err(Error::io(&path))?;
        let head = read.events.head();
        let shared = Arc::new(Shared { path: path.clone(), read: RwLock::new(read), file, head: HeadWatch::new(head) });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(append, len, write, Arc::clone(&shared), config);
        let handle = std::thread::Builder::new()
            .name("event-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(Error::io(&path))?;
        Ok(Self {
            shared,
            max_event_bytes: config.max_event_bytes,
            requests: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            remove_on_drop: None,
            _lock: lock,
        })
    }

    /// A store in a fresh directory under the system temp dir that is
    /// deleted when the store is dropped: for tests, demos and scratch work
    /// that want the real log, not the in-memory adapter.
    pub fn temporary() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("event-store-{}", uuid::Uuid::now_v7().simple()));
        let mut store = Self::open(&dir)?;
        store.remove_on_drop = Some(dir);
        Ok(store)
    }

    /// The exact bytes this store writes to its log for `events` appended to
    /// `stream` as one batch (first version 1, position 1): for comparing
    /// the store with raw writes of the same bytes.
    pub fn log_bytes_of(stream: &StreamId, events: &[Envelope], max_event_bytes: usize) -> Result<Vec<u8>> {
        let batch = crate::rules::encode_batch(stream, events, max_event_bytes)?;
        let placed = crate::index::Placement {
            stream: stream.clone(),
            first_version: 1,
            first_position: 1,
            recorded_at: Utc::now(),
            count: events.len() as u64,
        };
        let mut frames = frame::FrameWriter::default();
        writer::append_frame(&mut frames, &placed, &batch)?;
        Ok(frames.buf)
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn submit(&self, request: Request) -> Result<()> {
        let guard = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let sender = guard.as_ref().ok_or(Error::Closed)?;
        sender.send(request).map_err(|_| Error::Closed)
    }

    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.submit(make(tx))?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for EmbeddedEventStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what it has, then exit.
        drop(self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = h.join();
        }
        if let Some(dir) = self.remove_on_drop.take()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a temporary event store");
        }
    }
}

/// Scans the log, rebuilding both indexes; cuts a torn tail.
fn recover(path: &Path, file: &File) -> Result<(WriteSide, ReadIndex, u64)> {
    let file_len = file.metadata().map_err(Error::io(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(Error::io(path))?);
    let mut write = WriteSide::default();
    let mut read = ReadIndex::default();
    let mut offset = 0u64;
    let mut buf = Vec::new();
    loop {
        match frame::scan_next(&mut reader, file_len - offset, &mut buf).map_err(|source| Error::Damaged {
            path: path.display().to_string(),
            offset,
            source,
        })? {
            Scan::End => break,
            Scan::TornTail { reason } => {
                tracing::warn!(path = %path.display(), offset, cut = file_len - offset, %reason, "truncating torn tail of the event log");
                file.set_len(offset).and_then(|()| file.sync_all()).map_err(Error::io(path))?;
                break;
            }
            Scan::Frame { size } => {
                let body_offset = offset + frame::HEADER as u64 + 1;
                apply_frame(buf[0], ByteReader::at(&buf[1..], "log frame", body_offset), Some(&mut write), &mut read)
                    .map_err(|source| Error::Replay {
                    path: path.display().to_string(),
                    offset,
                    source: Box::new(source),
                })?;
                offset += size;
            }
        }
    }
    Ok((write, read, offset))
}

/// Applies one durable frame to both indexes (on open and after a commit).
/// On open both indexes are rebuilt; after a commit only the read side
/// (the writer already updated its write side when it decided).
fn apply_frame(kind: u8, mut r: ByteReader<'_>, write: Option<&mut WriteSide>, read: &mut ReadIndex) -> Result<()> {
    match kind {
        APPEND => {
            let stream = StreamId::new(r.str16()?)?;
            let first_version = r.u64()?;
            let first_position = r.u64()?;
            let recorded_at = r.i64()?;
            let count = r.u32()?;
            let sid = read.intern(&stream);
            if first_position != read.events.head() + 1 {
                return Err(Error::Codec(format!("position {first_position} follows {}", read.events.head())));
            }
            let mut keys = Vec::with_capacity(if write.is_some() { count as usize } else { 0 });
            let mut locs = Vec::with_capacity(count as usize);
            for i in 0..u64::from(count) {
                let id = uuid::Uuid::from_bytes(r.array()?);
                let digest = r.u64()?;
                let (offset, bytes) = r.bytes32()?;
                if write.is_some() {
                    keys.push(EventKey { id, digest });
                }
                locs.push(Loc {
                    stream: sid,
                    version: first_version + i,
                    offset,
                    len: bytes.len() as u32,
                    recorded_at,
                });
            }
            if let Some(w) = write {
                w.restore_batch(&stream, first_version, first_position, keys.into_iter());
            }
            read.events.push_many(&stream, locs);
        }
        TOMBSTONE => {
            let stream = StreamId::new(r.str16()?)?;
            if let Some(w) = write {
                w.mark_deleted(&stream);
            }
            read.events.mark_deleted(&stream);
        }
        SNAPSHOT => {
            let stream = StreamId::new(r.str16()?)?;
            let version = r.u64()?;
            let (offset, json) = r.rest();
            if read.snapshots.get(&stream).is_none_or(|s| s.0 < version) {
                read.snapshots.insert(stream, (version, offset, json.len() as u32));
            }
        }
        CHECKPOINT => {
            let name = r.str16()?.to_owned();
            let position = r.u64()?;
            read.checkpoints.insert(name, position);
        }
        other => return Err(Error::Codec(format!("unknown frame kind {other}"))),
    }
    Ok(())
}

#[async_trait]
impl EventStore for EmbeddedEventStore {
    async fn append(&self, stream: &StreamId, expected: ExpectedVersion, events: &[Envelope]) -> Result<AppendResult> {
        // Encoding happens here, on the caller's thread, not the writer's.
        let batch = crate::rules::encode_batch(stream, events, self.max_event_bytes)?;
        let stream = stream.clone();
        self.send(|reply| Request::Append { stream, expected, batch, reply }).await
    }

    async fn read_stream(&self, stream: &StreamId, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        let items: Vec<_> = {
            let index = self.shared.index();
            index.events.stream(stream, from, max)?.into_iter().map(|(_, p, l)| (stream.clone(), p, *l)).collect()
        };
        self.shared.load(items)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        Ok(self.shared.index().events.stream_version(stream))
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        self.shared.load(self.shared.log_items(from, max))
    }

    async fn read_all_text(&self, from: u64, max: usize) -> Result<Vec<RecordedText>> {
        self.shared.load(self.shared.log_items(from, max))
    }

    async fn head_position(&self) -> Result<u64> {
        Ok(self.shared.index().events.head())
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64> {
        Ok(self.shared.head.wait_for(position, timeout).await)
    }

    async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        let stream = stream.clone();
        self.send(|reply| Request::Delete { stream, expected, reply }).await
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        let snapshot = snapshot.clone();
        self.send(|reply| Request::Snapshot { snapshot, reply }).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        let Some((_, offset, len)) = self.shared.index().snapshots.get(stream).copied() else { return Ok(None) };
        let bytes = self.shared.read_at(offset, len as usize)?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Codec(e.to_string()))
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.shared.index().checkpoints.get(name).copied())
    }

    async fn save_checkpoint(&self, name: &str, next_position: u64) -> Result<()> {
        let name = name.to_owned();
        self.send(|reply| Request::Checkpoint { name, position: next_position, reply }).await
    }
}

#[cfg(test)]
mod tests;
