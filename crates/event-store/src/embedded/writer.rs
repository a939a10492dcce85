//! The single writer thread: group commit.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{APPEND, CHECKPOINT, EmbeddedConfig, SNAPSHOT, Shared, TOMBSTONE, apply_frame};
use crate::index::{Placement, Plan, WriteSide};
use crate::rules::EncodedBatch;
use crate::{AppendResult, Error, ExpectedVersion, Result, Snapshot, StreamId};
use disk_format::ByteReader;
use disk_format::frame::{self, FrameWriter};

/// Largest frame buffer kept for the next group.
const KEEP_FRAME_BUFFER: usize = 16 << 20;
/// Requests one sync may cover.
const MAX_GROUP: usize = 4096;
/// Cap on the wait for the writers of the previous group to join the next.
const MAX_GROUP_WAIT: Duration = Duration::from_millis(2);

/// A write for the writer thread, with where to send the answer.
#[derive(Debug)]
pub(crate) enum Request {
    Append {
        stream: StreamId,
        expected: ExpectedVersion,
        batch: EncodedBatch,
        reply: oneshot::Sender<Result<AppendResult>>,
    },
    Delete {
        stream: StreamId,
        expected: ExpectedVersion,
        reply: oneshot::Sender<Result<()>>,
    },
    Snapshot {
        snapshot: Snapshot,
        reply: oneshot::Sender<Result<()>>,
    },
    Checkpoint {
        name: String,
        position: u64,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// An answer held back until the group is durable.
enum Pending {
    Append(oneshot::Sender<Result<AppendResult>>, AppendResult),
    Unit(oneshot::Sender<Result<()>>),
}

impl Pending {
    fn send(self, failure: Option<&str>) {
        let err = |m: &str| Error::Io { path: "event log".into(), source: std::io::Error::other(m.to_owned()) };
        // A caller that gave up waiting is not an error for the writer.
        match (self, failure) {
            (Pending::Append(tx, r), None) => drop(tx.send(Ok(r))),
            (Pending::Append(tx, _), Some(m)) => drop(tx.send(Err(err(m)))),
            (Pending::Unit(tx), None) => drop(tx.send(Ok(()))),
            (Pending::Unit(tx), Some(m)) => drop(tx.send(Err(err(m)))),
        }
    }
}

pub(crate) struct Writer {
    file: File,
    len: u64,
    write: WriteSide,
    shared: Arc<Shared>,
    config: EmbeddedConfig,
    /// How long the last write + sync took.
    last_sync: Duration,
    frames: FrameWriter,
    /// Set after a failed write or sync: the write side may be ahead of the
    /// file, so nothing more is accepted until the store is reopened.
    failed: Option<String>,
}

impl Writer {
    pub fn new(file: File, len: u64, write: WriteSide, shared: Arc<Shared>, config: EmbeddedConfig) -> Self {
        Self {
            file,
            len,
            write,
            shared,
            config,
            last_sync: Duration::ZERO,
            frames: FrameWriter::default(),
            failed: None,
        }
    }

    pub fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut last_group = 1;
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
                if group.len() >= MAX_GROUP {
                    break;
                }
            }
            // Writers that shared the last sync are likely about to send
            // again: waiting for them up to one sync's duration costs less
            // than the extra sync their late arrival would need.
            let deadline = Instant::now() + self.last_sync.min(MAX_GROUP_WAIT);
            while group.len() < last_group {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(more) => group.push(more),
                    Err(_) => break,
                }
            }
            last_group = group.len();
            self.commit(group);
            // The callers have their answers; index while they make the next request.
            self.write.index_deferred();
        }
    }

    fn commit(&mut self, group: Vec<Request>) {
        // The frame buffer is kept between groups: allocating it afresh made
        // the allocator hand back and fault in pages on every group.
        let mut frames = std::mem::take(&mut self.frames);
        let mut pending = Vec::with_capacity(group.len());
        for req in group {
            if let Some(f) = &self.failed {
                let msg = format!("store failed earlier ({f}); reopen it");
                fail(req, &msg);
                continue;
            }
            if frames.buf.len() >= self.config.max_group_bytes {
                self.flush(&mut frames, &mut pending);
            }
            pending.extend(self.decide(req, &mut frames));
        }
        self.flush(&mut frames, &mut pending);
        if frames.buf.capacity() <= KEEP_FRAME_BUFFER {
            self.frames = frames;
        }
    }

    /// Decides one request: answers errors at once, writes frames for the rest.
    /// Returns the answer to send once the group is durable, if any.
    fn decide(&mut self, req: Request, frames: &mut FrameWriter) -> Option<Pending> {
        match req {
            Request::Append { stream, expected, batch, reply } => match self.write.plan(&stream, expected, &batch.keys)
            {
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
                Ok(Plan::Existing(r)) => Some(Pending::Append(reply, r)),
                Ok(Plan::New(placed)) => {
                    let start = frames.buf.len();
                    if let Err(e) = append_frame(frames, &placed, &batch) {
                        frames.buf.truncate(start);
                        let _ = reply.send(Err(e));
                        return None;
                    }
                    let result = placed.result();
                    self.write.apply_deferred(placed, batch.keys);
                    Some(Pending::Append(reply, result))
                }
            },
            Request::Delete { stream, expected, reply } => {
                if let Err(e) = self.write.check_delete(&stream, expected) {
                    let _ = reply.send(Err(e));
                    return None;
                }
                let start = frames.begin(TOMBSTONE);
                if let Err(e) = frames.str(stream.as_str()) {
                    return refuse(frames, start, reply, e);
                }
                let done = finish_unit(frames, start, reply);
                if done.is_some() {
                    self.write.mark_deleted(&stream);
                }
                done
            }
            Request::Snapshot { snapshot, reply } => {
                let json = match serde_json::to_vec(&snapshot) {
                    Ok(j) => j,
                    Err(e) => {
                        let _ = reply.send(Err(Error::Codec(e.to_string())));
                        return None;
                    }
                };
                let start = frames.begin(SNAPSHOT);
                if let Err(e) = frames.str(snapshot.stream.as_str()) {
                    return refuse(frames, start, reply, e);
                }
                frames.u64(snapshot.version);
                frames.buf.extend_from_slice(&json);
                finish_unit(frames, start, reply)
            }
            Request::Checkpoint { name, position, reply } => {
                if name.is_empty() || name.len() > 200 {
                    let _ = reply.send(Err(Error::Codec(format!("checkpoint name `{name}` must be 1-200 bytes"))));
                    return None;
                }
                let start = frames.begin(CHECKPOINT);
                if let Err(e) = frames.str(&name) {
                    return refuse(frames, start, reply, e);
                }
                frames.u64(position);
                finish_unit(frames, start, reply)
            }
        }
    }

    /// Writes and syncs the group, publishes it to readers, answers callers.
    fn flush(&mut self, frames: &mut FrameWriter, pending: &mut Vec<Pending>) {
        if frames.buf.is_empty() {
            pending.drain(..).for_each(|p| p.send(self.failed.as_deref()));
            return;
        }
        let started = Instant::now();
        let synced = self.file.write_all(&frames.buf).and_then(|()| self.file.sync_data());
        self.last_sync = started.elapsed();
        if let Err(e) = synced {
            let msg = format!("writing the event log failed: {e}");
            tracing::error!(error = %msg, "event store stops accepting writes");
            self.failed = Some(msg);
            pending.drain(..).for_each(|p| p.send(self.failed.as_deref()));
            frames.buf.clear();
            return;
        }
        let head = self.publish(&frames.buf);
        self.len += frames.buf.len() as u64;
        frames.buf.clear();
        self.shared.head.advance(head);
        pending.drain(..).for_each(|p| p.send(None));
    }

    /// Applies the durable frames to the read index; returns the new head.
    fn publish(&self, buf: &[u8]) -> u64 {
        let mut read = self.shared.read.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut at = 0usize;
        while at + frame::HEADER < buf.len() {
            let len = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let payload = &buf[at + frame::HEADER..at + frame::HEADER + len];
            let body_offset = self.len + (at + frame::HEADER + 1) as u64;
            // These frames were built by this thread a moment ago.
            if let Err(e) =
                apply_frame(payload[0], ByteReader::at(&payload[1..], "log frame", body_offset), None, &mut read)
            {
                tracing::error!(error = %e, "publishing a frame just written failed");
            }
            at += frame::HEADER + len;
        }
        read.events.head()
    }
}

/// Drops the frame begun at `start` and refuses the request.
fn refuse(
    frames: &mut FrameWriter,
    start: usize,
    reply: oneshot::Sender<Result<()>>,
    e: disk_format::Error,
) -> Option<Pending> {
    frames.buf.truncate(start);
    let _ = reply.send(Err(e.into()));
    None
}

/// Writes the APPEND frame of a placed batch: header, then the events as the
/// caller laid them out (see [`EncodedBatch`]).
pub(crate) fn append_frame(frames: &mut FrameWriter, placed: &Placement, batch: &EncodedBatch) -> Result<()> {
    let start = frames.begin(APPEND);
    frames.str(placed.stream.as_str())?;
    frames.u64(placed.first_version);
    frames.u64(placed.first_position);
    frames.i64(placed.recorded_at.timestamp_micros());
    frames.u32(batch.keys.len() as u32);
    frames.buf.extend_from_slice(&batch.body);
    Ok(frames.finish(start)?)
}

fn finish_unit(frames: &mut FrameWriter, start: usize, reply: oneshot::Sender<Result<()>>) -> Option<Pending> {
    match frames.finish(start) {
        Ok(()) => Some(Pending::Unit(reply)),
        Err(e) => refuse(frames, start, reply, e),
    }
}

fn fail(req: Request, msg: &str) {
    let err = || Error::Io { path: "event log".into(), source: std::io::Error::other(msg.to_owned()) };
    match req {
        Request::Append { reply, .. } => drop(reply.send(Err(err()))),
        Request::Delete { reply, .. } | Request::Snapshot { reply, .. } | Request::Checkpoint { reply, .. } => {
            drop(reply.send(Err(err())))
        }
    }
}
