//! The write-ahead log: CRC-framed records in numbered segment files, one
//! writer thread, group commit. A write is acknowledged only after its
//! frames are fsynced; then the writer applies it to the in-memory state, in
//! log order, so the state never shows what could still be lost.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};
use std::time::{Duration, Instant};

use event_store::framing::{self, Scan};

use crate::{Error, Result};

/// A change to apply to the state once its frames are durable.
pub(crate) type Apply<S> = Box<dyn FnOnce(&mut S) + Send>;

struct Request<S> {
    frames: Vec<u8>,
    apply: Apply<S>,
    reply: mpsc::Sender<Result<()>>,
}

/// Cap on the wait for the writers of the previous group to join the next.
const MAX_GROUP_WAIT: Duration = Duration::from_millis(2);

/// The log of one engine directory.
pub(crate) struct Wal<S> {
    tx: Mutex<Option<mpsc::Sender<Request<S>>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dir: PathBuf,
}

impl<S> std::fmt::Debug for Wal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// Segment numbers in `dir`, ascending.
fn segments(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let name = entry.map_err(Error::io(dir))?.file_name();
        if let Some(seq) = name.to_str().and_then(|n| n.strip_suffix(".wal")).and_then(|n| n.parse().ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

impl<S: Send + Sync + 'static> Wal<S> {
    /// Replays every segment through `replay(kind, body)` (a torn tail of the
    /// last segment is cut off), then starts a new segment and the writer.
    pub fn open(dir: &Path, state: Arc<RwLock<S>>, mut replay: impl FnMut(u8, &[u8]) -> Result<()>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let seqs = segments(dir)?;
        for (i, seq) in seqs.iter().enumerate() {
            let path = segment_path(dir, *seq);
            replay_segment(&path, i + 1 == seqs.len(), &mut replay)?;
        }
        let next = seqs.last().map_or(1, |s| s + 1);
        let path = segment_path(dir, next);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(Error::io(&path))?;
        // The new segment's directory entry must survive a crash too.
        File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("timeseries-wal".into())
            .spawn(move || writer(file, path, rx, state))
            .map_err(Error::io(dir))?;
        Ok(Self { tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(handle)), dir: dir.to_owned() })
    }

    /// Appends `frames`, waits until they are durable and `apply` has run.
    pub fn write(&self, frames: Vec<u8>, apply: Apply<S>) -> Result<()> {
        self.write_async(frames, apply)?.recv().map_err(|_| Error::Closed)?
    }

    /// Enqueues `frames`; the receiver yields once they are durable and
    /// `apply` has run. Enqueue order is log order.
    pub fn write_async(&self, frames: Vec<u8>, apply: Apply<S>) -> Result<mpsc::Receiver<Result<()>>> {
        let (reply, done) = mpsc::channel();
        let guard = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = guard.as_ref().ok_or(Error::Closed)?;
        tx.send(Request { frames, apply, reply }).map_err(|_| Error::Closed)?;
        Ok(done)
    }

    /// Bytes of all segments on disk.
    pub fn disk_bytes(&self) -> u64 {
        segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| std::fs::metadata(segment_path(&self.dir, *s)).ok())
            .map(|m| m.len())
            .sum()
    }
}

impl<S> Drop for Wal<S> {
    fn drop(&mut self) {
        drop(self.tx.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(h) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = h.join();
        }
    }
}

fn replay_segment(path: &Path, last: bool, replay: &mut impl FnMut(u8, &[u8]) -> Result<()>) -> Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(Error::io(path))?;
    let len = file.metadata().map_err(Error::io(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(Error::io(path))?);
    let mut offset = 0u64;
    let mut buf = Vec::new();
    let corrupt = |offset: u64, reason: String| Error::Corrupt { path: path.display().to_string(), offset, reason };
    loop {
        match framing::scan_next(&mut reader, len - offset, &mut buf).map_err(|r| corrupt(offset, r))? {
            Scan::End => return Ok(()),
            Scan::TornTail { reason } if last => {
                tracing::warn!(path = %path.display(), offset, %reason, "truncating torn tail of the write-ahead log");
                file.set_len(offset).and_then(|()| file.sync_all()).map_err(Error::io(path))?;
                return Ok(());
            }
            Scan::TornTail { reason } => {
                return Err(corrupt(offset, format!("{reason} in a segment that is not the last")));
            }
            Scan::Frame { size } => {
                replay(buf[0], &buf[1..]).map_err(|e| corrupt(offset, e.to_string()))?;
                offset += size;
            }
        }
    }
}

fn writer<S>(mut file: File, path: PathBuf, rx: mpsc::Receiver<Request<S>>, state: Arc<RwLock<S>>) {
    let mut last_group = 1;
    let mut last_sync = Duration::ZERO;
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let deadline = Instant::now() + last_sync.min(MAX_GROUP_WAIT);
        while group.len() < last_group {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        last_group = group.len();
        if let Some(msg) = &failed {
            for r in group {
                let _ = r.reply.send(Err(Error::Failed(msg.clone())));
            }
            continue;
        }
        let bytes: Vec<u8> = group.iter().flat_map(|r| r.frames.iter().copied()).collect();
        let started = Instant::now();
        let synced = file.write_all(&bytes).and_then(|()| file.sync_data());
        last_sync = started.elapsed();
        if let Err(e) = synced {
            let msg = format!("writing {} failed: {e}", path.display());
            tracing::error!(error = %msg, "time-series engine stops accepting writes");
            failed = Some(msg.clone());
            for r in group {
                let _ = r.reply.send(Err(Error::Failed(msg.clone())));
            }
            continue;
        }
        let mut s = state.write().unwrap_or_else(PoisonError::into_inner);
        let mut replies = Vec::with_capacity(group.len());
        for r in group {
            (r.apply)(&mut s);
            replies.push(r.reply);
        }
        drop(s);
        for reply in replies {
            let _ = reply.send(Ok(()));
        }
    }
}
