//! The write-ahead log: CRC-framed records in numbered segment files, one
//! writer thread, group commit. A write is acknowledged only after its
//! frames are fsynced; then the writer applies it to the in-memory state, in
//! log order, so the state never shows what could still be lost.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};
use std::time::{Duration, Instant};

use disk_format::frame::{self as framing, Scan};

use crate::{Error, Result};

/// A change to apply to the state once its frames are durable.
pub(crate) type Apply<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Builds checkpoint frames from the state (run by the writer, in log order).
pub(crate) type Checkpoint<S> = Box<dyn FnOnce(&S) -> Result<Vec<u8>> + Send>;

/// Frames to append and what to do once they are durable.
struct Append<S> {
    frames: Vec<u8>,
    apply: Apply<S>,
    reply: mpsc::Sender<Result<()>>,
}

enum Request<S> {
    Append(Append<S>),
    /// Start a new segment holding `checkpoint`'s frames, then delete the
    /// older segments: the log shrinks to what the state still needs.
    Rotate {
        checkpoint: Checkpoint<S>,
        reply: mpsc::Sender<Result<()>>,
    },
}

/// Cap on the wait for the writers of the previous group to join the next.
const MAX_GROUP_WAIT: Duration = Duration::from_millis(2);

/// The log of one engine directory.
pub(crate) struct Wal<S> {
    tx: Mutex<Option<mpsc::Sender<Request<S>>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dir: PathBuf,
    sizes: Arc<Sizes>,
}

/// Bytes in the log and in its last checkpoint, kept by the writer.
#[derive(Debug, Default)]
struct Sizes {
    log: AtomicU64,
    checkpoint: AtomicU64,
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
        // Start at the newest segment that opens with a complete checkpoint.
        let (mut from, mut checkpointed) = (0, false);
        for (i, seq) in seqs.iter().enumerate() {
            if has_complete_checkpoint(&segment_path(dir, *seq))? {
                (from, checkpointed) = (i, true);
            }
        }
        let len = |seq: &u64| std::fs::metadata(segment_path(dir, *seq)).map_or(0, |m| m.len());
        let sizes = Arc::new(Sizes::default());
        sizes.log.store(seqs.iter().map(len).sum(), Ordering::Relaxed);
        // The checkpoint segment's length, tail included: an estimate that
        // errs towards rotating later.
        sizes.checkpoint.store(if checkpointed { seqs.get(from).map_or(0, len) } else { 0 }, Ordering::Relaxed);
        for (i, seq) in seqs.iter().enumerate().skip(from) {
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
            .spawn({
                let sizes = Arc::clone(&sizes);
                move || writer(file, path, rx, state, &sizes)
            })
            .map_err(Error::io(dir))?;
        Ok(Self { tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(handle)), dir: dir.to_owned(), sizes })
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
        tx.send(Request::Append(Append { frames, apply, reply })).map_err(|_| Error::Closed)?;
        Ok(done)
    }

    /// Replaces every segment by one holding `checkpoint`'s frames.
    pub fn rotate(&self, checkpoint: Checkpoint<S>) -> Result<()> {
        let (reply, done) = mpsc::channel();
        {
            let guard = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = guard.as_ref().ok_or(Error::Closed)?;
            tx.send(Request::Rotate { checkpoint, reply }).map_err(|_| Error::Closed)?;
        }
        done.recv().map_err(|_| Error::Closed)?
    }

    /// Bytes in the log now and in the checkpoint it last rotated to (0
    /// before the first), without touching the file system.
    pub fn sizes(&self) -> (u64, u64) {
        (self.sizes.log.load(Ordering::Relaxed), self.sizes.checkpoint.load(Ordering::Relaxed))
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

/// Frame kinds the log itself uses (engines use kinds below 200).
const CHECKPOINT_BEGIN: u8 = 250;
const CHECKPOINT_END: u8 = 251;

/// Whether a segment starts with a checkpoint that was written completely.
fn has_complete_checkpoint(path: &Path) -> Result<bool> {
    let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
    let mut reader = BufReader::new(File::open(path).map_err(Error::io(path))?);
    let (mut offset, mut buf, mut first) = (0u64, Vec::new(), true);
    while let Ok(Scan::Frame { size }) = framing::scan_next(&mut reader, len - offset, &mut buf) {
        match (first, buf[0]) {
            (true, CHECKPOINT_BEGIN) => first = false,
            (true, _) => return Ok(false),
            (false, CHECKPOINT_END) => return Ok(true),
            _ => {}
        }
        offset += size;
    }
    Ok(false)
}

fn replay_segment(path: &Path, last: bool, replay: &mut impl FnMut(u8, &[u8]) -> Result<()>) -> Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(Error::io(path))?;
    let len = file.metadata().map_err(Error::io(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(Error::io(path))?);
    let mut offset = 0u64;
    let mut buf = Vec::new();
    let corrupt = |offset: u64, reason: String| Error::Corrupt { path: path.display().to_string(), offset, reason };
    loop {
        match framing::scan_next(&mut reader, len - offset, &mut buf).map_err(|source| Error::Damaged {
            path: path.display().to_string(),
            offset,
            source,
        })? {
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
                if !matches!(buf[0], CHECKPOINT_BEGIN | CHECKPOINT_END) {
                    replay(buf[0], &buf[1..]).map_err(|source| Error::Replay {
                        path: path.display().to_string(),
                        offset,
                        source: Box::new(source),
                    })?;
                }
                offset += size;
            }
        }
    }
}

/// Writes a checkpoint segment after `current` and deletes the older ones.
/// Replay ignores everything before a complete checkpoint, so a crash at
/// any step leaves a log that replays to the same state.
fn rotate<S>(current: &Path, state: &RwLock<S>, checkpoint: Checkpoint<S>, sizes: &Sizes) -> Result<(File, PathBuf)> {
    let dir = current.parent().ok_or_else(|| Error::Codec("log segment has no directory".into()))?;
    let seq = current
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Error::Codec(format!("bad segment name {}", current.display())))?;
    let frames = checkpoint(&state.read().unwrap_or_else(PoisonError::into_inner))?;
    let mut w = disk_format::FrameWriter::default();
    let s = w.begin(CHECKPOINT_BEGIN);
    w.finish(s)?;
    w.buf.extend_from_slice(&frames);
    let s = w.begin(CHECKPOINT_END);
    w.finish(s)?;
    let path = segment_path(dir, seq + 1);
    let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(Error::io(&path))?;
    file.write_all(&w.buf).and_then(|()| file.sync_data()).map_err(Error::io(&path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))?;
    for old in segments(dir)?.into_iter().filter(|s| *s <= seq) {
        let p = segment_path(dir, old);
        std::fs::remove_file(&p).map_err(Error::io(&p))?;
    }
    sizes.checkpoint.store(w.buf.len() as u64, Ordering::Relaxed);
    sizes.log.store(w.buf.len() as u64, Ordering::Relaxed);
    Ok((file, path))
}

fn writer<S>(mut file: File, mut path: PathBuf, rx: mpsc::Receiver<Request<S>>, state: Arc<RwLock<S>>, sizes: &Sizes) {
    let mut last_group = 1;
    let mut last_sync = Duration::ZERO;
    let mut failed: Option<String> = None;
    let mut pending: Option<Request<S>> = None;
    loop {
        let first = match pending.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        if let Request::Rotate { checkpoint, reply } = first {
            let result = match &failed {
                Some(msg) => Err(Error::Failed(msg.clone())),
                None => rotate(&path, &state, checkpoint, sizes).map(|(f, p)| {
                    file = f;
                    path = p;
                }),
            };
            let _ = reply.send(result);
            continue;
        }
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            if matches!(more, Request::Rotate { .. }) {
                pending = Some(more);
                break;
            }
            group.push(more);
        }
        let deadline = Instant::now() + last_sync.min(MAX_GROUP_WAIT);
        while group.len() < last_group && pending.is_none() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(more @ Request::Rotate { .. }) => pending = Some(more),
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        last_group = group.len();
        let group: Vec<Append<S>> = group
            .into_iter()
            .filter_map(|r| match r {
                Request::Append(a) => Some(a),
                Request::Rotate { .. } => None,
            })
            .collect();
        if let Some(msg) = &failed {
            for a in group {
                let _ = a.reply.send(Err(Error::Failed(msg.clone())));
            }
            continue;
        }
        let bytes: Vec<u8> = group.iter().flat_map(|a| a.frames.iter().copied()).collect();
        let started = Instant::now();
        let synced = file.write_all(&bytes).and_then(|()| file.sync_data());
        last_sync = started.elapsed();
        sizes.log.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Err(e) = synced {
            let msg = format!("writing {} failed: {e}", path.display());
            tracing::error!(error = %msg, "time-series engine stops accepting writes");
            failed = Some(msg.clone());
            for a in group {
                let _ = a.reply.send(Err(Error::Failed(msg.clone())));
            }
            continue;
        }
        let mut s = state.write().unwrap_or_else(PoisonError::into_inner);
        let mut replies = Vec::with_capacity(group.len());
        for a in group {
            (a.apply)(&mut s);
            replies.push(a.reply);
        }
        drop(s);
        for reply in replies {
            let _ = reply.send(Ok(()));
        }
    }
}
