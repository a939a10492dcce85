//! The log's records: the kinds a write logs, the checkpoint that rebuilds
//! the engine's state (schemas, series index, seal marks, head) and the
//! replay that applies each record while opening.

use std::collections::BTreeMap;

use disk_format::{ByteReader, FrameWriter};

use crate::engine::{SeriesData, State};
use crate::head::HeadPoints;
use crate::index::{SeriesIndex, SeriesKey};
use crate::model::{Quality, SeriesSchema};
use crate::partition::{quality_byte, quality_of};
use crate::{Error, Result};

pub(crate) const SCHEMA: u8 = 1;
pub(crate) const SERIES: u8 = 2;
pub(crate) const POINTS: u8 = 3;
/// Checkpoint records: the whole series index, and how far a metric is
/// sealed.
/// The index as string table and varint keys (see `SeriesIndex::to_bytes`).
pub(crate) const INDEX: u8 = 9;
/// Kinds only versions before 2026-11-26 wrote, no longer read: the index
/// with posting lists (4), head points one record per batch (5) and one
/// block per series (8).
pub(crate) const EARLIER_KINDS: [u8; 3] = [4, 5, 8];
pub(crate) const ROLLUP: u8 = 6;
pub(crate) const SEALED: u8 = 7;
/// The head points of up to [`CHECKPOINT_GROUP`] series of one metric as one
/// compressed block, in compact checkpoints (`flush`).
pub(crate) const HEAD_GROUP: u8 = 10;
/// The head chunks of up to [`CHECKPOINT_GROUP`] series as they are in
/// memory, in the checkpoints the log rotates to while running.
pub(crate) const HEAD_CHUNKS: u8 = 11;

/// Series per checkpoint record: bounds a record's size (a frame holds at
/// most 256 MiB) and the memory replay needs for one.
pub(crate) const CHECKPOINT_GROUP: usize = 4096;

/// The frames that rebuild the current state: schemas, the series index,
/// seal marks and the head. `compact` (for `flush`) compresses the head
/// points into pco blocks, a third of the bytes; otherwise the head's chunks
/// are copied as they are, which costs far less time.
pub(crate) fn checkpoint(state: &State, compact: bool) -> Result<Vec<u8>> {
    let mut w = FrameWriter::default();
    let mut names: Vec<&String> = state.schemas.keys().collect();
    names.sort();
    for name in &names {
        let Some(s) = state.schemas.get(*name) else { continue };
        let f = w.begin(SCHEMA);
        w.buf.extend_from_slice(&serde_json::to_vec(&s.schema).map_err(|e| Error::Codec(e.to_string()))?);
        w.finish(f)?;
        let f = w.begin(SEALED);
        w.i64(s.sealed_until);
        w.i64(s.newest);
        w.buf.extend_from_slice(name.as_bytes());
        w.finish(f)?;
    }
    let f = w.begin(INDEX);
    w.buf.extend_from_slice(&state.index.to_bytes()?);
    w.finish(f)?;
    // Grouped by metric: a metric's series share their timestamps and
    // value ranges, and pco compresses one long block far better than many
    // short ones.
    let mut by_metric: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (id, data) in state.series.iter().enumerate() {
        if let (false, Some(key)) = (data.points.is_empty(), state.index.key(id as u32)) {
            by_metric.entry(key.metric()).or_default().push(id as u32);
        }
    }
    for ids in by_metric.values().flat_map(|ids| ids.chunks(CHECKPOINT_GROUP)) {
        let write_qualities = |w: &mut FrameWriter, data: &SeriesData| {
            w.u32(data.qualities.len() as u32);
            for (t, q) in &data.qualities {
                w.i64(*t);
                w.buf.push(quality_byte(*q));
            }
        };
        if !compact {
            let f = w.begin(HEAD_CHUNKS);
            w.u32(ids.len() as u32);
            for id in ids {
                let data = &state.series[*id as usize];
                w.u32(*id);
                write_qualities(&mut w, data);
                data.points.write_to(&mut w.buf);
            }
            w.finish(f)?;
            continue;
        }
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        let f = w.begin(HEAD_GROUP);
        w.u32(ids.len() as u32);
        for id in ids {
            let data = &state.series[*id as usize];
            let points = data.points.range(i64::MIN, i64::MAX)?;
            w.u32(*id);
            w.u32(points.len() as u32);
            write_qualities(&mut w, data);
            ts.extend(points.iter().map(|(t, _)| *t));
            vs.extend(points.iter().map(|(_, v)| *v));
        }
        w.bytes(&crate::codec::Block::encode(&ts, &vs, true)?)?;
        w.finish(f)?;
    }
    Ok(w.buf)
}

/// Puts a series' head points back from a checkpoint.
fn restore_head(state: &mut State, id: u32, ts: &[i64], vs: &[f64], qualities: &BTreeMap<i64, Quality>) {
    let data = state.series_mut(id);
    let mut added = 0;
    for (t, v) in ts.iter().copied().zip(vs.iter().copied()) {
        if data.insert(t, v, qualities.get(&t).copied().unwrap_or_default()) {
            added += 1;
        }
    }
    state.points += added;
}

/// Applies one logged frame while opening.
pub(crate) fn replay(state: &mut State, kind: u8, body: &[u8]) -> Result<()> {
    match kind {
        SCHEMA => {
            let schema: SeriesSchema = serde_json::from_slice(body).map_err(|e| Error::Codec(e.to_string()))?;
            state.add_schema(schema)
        }
        SERIES => {
            let mut r = ByteReader::new(body, "log record");
            let id = r.u32().map_err(|e| Error::Codec(e.to_string()))?;
            let (_, json) = r.rest();
            let key: SeriesKey = serde_json::from_slice(json).map_err(|e| Error::Codec(e.to_string()))?;
            if state.index.insert(key) != id {
                return Err(Error::Codec(format!("series {id} out of order in the log")));
            }
            Ok(())
        }
        POINTS => {
            let mut r = ByteReader::new(body, "log record");
            let n = r.u32()? as usize;
            // 21 bytes a point: a count past the body is damage, not an allocation.
            let mut batch = Vec::with_capacity(n.min(body.len() / 21));
            for _ in 0..n {
                let id = r.u32()?;
                let ts = r.i64()?;
                let v = f64::from_bits(r.u64()?);
                batch.push((id, ts, v, quality_of(r.u8()?)?));
            }
            state.apply_points(&batch);
            Ok(())
        }
        INDEX => {
            state.index = SeriesIndex::from_bytes(body)?;
            Ok(())
        }
        kind if EARLIER_KINDS.contains(&kind) => Err(Error::EarlierFormat { kind }),
        HEAD_GROUP => {
            let mut r = ByteReader::new(body, "log record");
            let mut series = Vec::new();
            for _ in 0..r.u32()? {
                let (id, points) = (r.u32()?, r.u32()? as usize);
                let mut qualities = BTreeMap::new();
                for _ in 0..r.u32()? {
                    qualities.insert(r.i64()?, quality_of(r.u8()?)?);
                }
                series.push((id, points, qualities));
            }
            let (_, block) = r.bytes32()?;
            let (ts, vs) = crate::codec::Block::decode(block)?;
            if series.iter().map(|(_, n, _)| n).sum::<usize>() != ts.len() || vs.len() != ts.len() {
                return Err(Error::Codec("a head group's block does not hold its series' points".into()));
            }
            let mut at = 0;
            for (id, n, qualities) in series {
                restore_head(state, id, &ts[at..at + n], &vs[at..at + n], &qualities);
                at += n;
            }
            Ok(())
        }
        HEAD_CHUNKS => {
            let mut r = ByteReader::new(body, "log record");
            for _ in 0..r.u32()? {
                let id = r.u32()?;
                let mut qualities = BTreeMap::new();
                for _ in 0..r.u32()? {
                    qualities.insert(r.i64()?, quality_of(r.u8()?)?);
                }
                let points = HeadPoints::read_from(&mut r)?;
                let n = points.len() as u64;
                let data = state.series_mut(id);
                if !data.points.is_empty() {
                    return Err(Error::Codec(format!("series {id} has two heads in one checkpoint")));
                }
                *data = SeriesData { points, qualities };
                state.points += n;
            }
            r.finish()?;
            Ok(())
        }
        // Head rollup buckets, which logs before 2026-12-04 carry: the head
        // now computes its buckets from its points, so they are not needed.
        ROLLUP => Ok(()),
        SEALED => {
            let mut r = ByteReader::new(body, "log record");
            let (until, newest) = (r.i64()?, r.i64()?);
            let (_, name) = r.rest();
            let name = std::str::from_utf8(name).map_err(|e| Error::Codec(e.to_string()))?;
            if let Some(s) = state.schemas.get_mut(name) {
                s.sealed_until = s.sealed_until.max(until);
                s.newest = s.newest.max(newest);
            }
            Ok(())
        }
        other => Err(Error::Codec(format!("unknown log record kind {other}"))),
    }
}
