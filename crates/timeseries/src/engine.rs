//! The engine: schemas, series, the write path (validate, log, apply) and
//! the in-memory head with its continuously maintained rollups.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use disk_format::{DirLock, FrameWriter};

use crate::aggregate::Interval;
use crate::head::HeadPoints;
use crate::index::{SeriesIds, SeriesIndex, SeriesKey, key_hash};
use crate::model::{NanPolicy, Point, Quality, SeriesSchema};
use crate::partition::{Partition, PartitionWriter, SealedSeries, quality_byte};
use crate::records::{POINTS, SCHEMA, SERIES, checkpoint, replay};
use crate::wal::Wal;
use crate::{Error, Result};
use rustc_hash::FxHashMap as FxMap;

/// Width of a time partition: the unit of sealing and of retention.
pub const PARTITION_NS: i64 = 2 * 3600 * crate::model::NANOS_PER_SEC;

/// Widths sealed partitions are merged into, once entirely sealed.
pub const COMPACTION_WIDTHS: [i64; 2] =
    [6 * 3600 * crate::model::NANOS_PER_SEC, 24 * 3600 * crate::model::NANOS_PER_SEC];

/// Back-filled head points of a metric that trigger their merge into the
/// sealed partitions (each merge rewrites the partitions they fall in).
const BACKFILL_MERGE_POINTS: u64 = 1 << 20;

/// Series a seal reads from the head per hold of the state lock.
const SEAL_GROUP: usize = 1024;

/// The log is rewritten as a checkpoint once it is larger than this and
/// than twice its last checkpoint (so checkpoints cost a bounded share of
/// the writes however large the head).
const CHECKPOINT_AFTER_BYTES: u64 = 64 * 1024 * 1024;

/// Rollup levels narrower than this are not stored in sealed partitions:
/// decoding a day's raw block (about 10 us per series) answers them about
/// as fast as reading their buckets, and their sketches would cost more
/// bytes than the compressed points (measured: 0.5 bytes per point for
/// 1-hour buckets of 10-second data, against 0.6 for the points).
pub const MIN_STORED_ROLLUP_NS: i64 = 24 * 3600 * crate::model::NANOS_PER_SEC;

/// One series' data in memory: its head points (compressed, see
/// [`HeadPoints`]) and the qualities that are not good. Rollup buckets of
/// head data are computed from the points when a query asks: a bucket kept
/// per level and series cost more memory than the points themselves.
#[derive(Debug, Default)]
pub(crate) struct SeriesData {
    pub points: HeadPoints,
    /// Qualities other than good, by timestamp (most points are good).
    pub qualities: BTreeMap<i64, Quality>,
}

/// The start of the partition `ts` falls in.
pub(crate) fn partition_of(ts: i64) -> i64 {
    ts.div_euclid(PARTITION_NS) * PARTITION_NS
}

impl SeriesData {
    /// Adds a point; an exact duplicate of a head point (same time, same
    /// value bits) is ignored, so a redelivered write changes nothing.
    /// Returns whether the point was new.
    pub(crate) fn insert(&mut self, ts: i64, v: f64, quality: Quality) -> bool {
        match self.points.insert(ts, v, partition_of) {
            Ok(true) => {
                if quality != Quality::Good {
                    self.qualities.insert(ts, quality);
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                // The head decodes only what it encoded itself.
                tracing::error!(error = %e, "a head chunk does not decode");
                false
            }
        }
    }
}

/// A schema with its parsed rollup levels and the newest time seen.
#[derive(Debug, Clone)]
pub(crate) struct SchemaState {
    pub schema: SeriesSchema,
    pub levels: Vec<Interval>,
    pub newest: i64,
    /// Everything before this time is in sealed partitions (or expired),
    /// except back-filled head points waiting to be merged into them.
    pub sealed_until: i64,
    pub partitions: BTreeMap<i64, Partition>,
    /// Head points before `sealed_until` (a back-fill), merged into their
    /// partitions once there are [`BACKFILL_MERGE_POINTS`], at `flush` and at open.
    pub backfill: u64,
}

impl SchemaState {
    /// The oldest timestamp still inside the retention, measured from the
    /// newest point (so back-filled history is kept as long as live data).
    pub(crate) fn retention_cutoff(&self) -> i64 {
        if self.newest == i64::MIN { i64::MIN } else { self.newest.saturating_sub(self.schema.retention_ns()) }
    }
}

/// Everything queries read.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub schemas: FxMap<String, SchemaState>,
    pub index: SeriesIndex,
    pub series: Vec<SeriesData>,
    pub points: u64,
}

impl State {
    pub(crate) fn apply_points(&mut self, batch: &[(u32, i64, f64, Quality)]) {
        // Batches usually hold a few points of many series, interleaved by
        // time. Grouping them by series (a stable sort keeps each series'
        // own order, so the result is the same) touches each series' head
        // and rollup buckets once per batch instead of once per point.
        let mut by_series: Vec<u32> = (0..batch.len() as u32).collect();
        by_series.sort_by_key(|i| batch[*i as usize].0);
        let State { schemas, index, series, points } = self;
        for run in by_series.chunk_by(|a, b| batch[*a as usize].0 == batch[*b as usize].0) {
            let id = batch[run[0] as usize].0;
            let Some(key) = index.key(id) else { continue };
            let Some(schema) = schemas.get_mut(key.metric()) else { continue };
            if series.len() <= id as usize {
                series.resize_with(id as usize + 1, SeriesData::default);
            }
            let data = &mut series[id as usize];
            for i in run {
                let (_, ts, v, q) = batch[*i as usize];
                schema.newest = schema.newest.max(ts);
                if data.insert(ts, v, q) {
                    *points += 1;
                    if ts < schema.sealed_until {
                        schema.backfill += 1;
                    }
                }
            }
        }
    }

    /// Points held in sealed partitions (counted from their block headers).
    pub fn sealed_points(&self) -> u64 {
        self.schemas.values().flat_map(|s| s.partitions.values()).map(|p| p.points).sum()
    }

    pub(crate) fn series_mut(&mut self, id: u32) -> &mut SeriesData {
        if self.series.len() <= id as usize {
            self.series.resize_with(id as usize + 1, SeriesData::default);
        }
        &mut self.series[id as usize]
    }

    /// Drops head data of `metric` before `until` (sealed or expired).
    fn drop_head_before(&mut self, metric: &str, until: i64) -> Result<()> {
        let Ok(ids) = self.index.select(metric, &[]) else { return Ok(()) };
        for id in &ids {
            let Some(data) = self.series.get_mut(id as usize) else { continue };
            self.points -= data.points.drop_before(until, partition_of)? as u64;
            data.qualities = data.qualities.split_off(&until);
        }
        Ok(())
    }

    pub(crate) fn add_schema(&mut self, schema: SeriesSchema) -> Result<()> {
        let levels = schema.rollup_intervals()?;
        let state = SchemaState {
            schema,
            levels,
            newest: i64::MIN,
            sealed_until: i64::MIN,
            partitions: BTreeMap::new(),
            backfill: 0,
        };
        self.schemas.insert(state.schema.series_name.clone(), state);
        Ok(())
    }
}

/// What the writer side tracks to decide ids and lateness in log order.
/// Its series ids run ahead of the state's (a series is registered here
/// when logged, there when applied), so it keeps its own.
#[derive(Debug, Default)]
struct Ingest {
    ids: SeriesIds,
    newest: FxMap<String, i64>,
}

fn pairs(tags: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> + Clone {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

impl Ingest {
    fn find(&self, hash: u64, metric: &str, tags: &BTreeMap<String, String>) -> Option<u32> {
        self.ids.find(hash, metric, pairs(tags))
    }
}

/// The outcome of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub accepted: usize,
    /// Points of sealed partitions that were already there, exactly.
    pub duplicates: usize,
    /// NaN or infinite values left out under `nan_policy = drop`.
    pub dropped: usize,
    pub new_series: usize,
}

/// A point [`Engine::write_lenient`] left out: its index in the batch and why.
#[derive(Debug)]
pub struct Refused {
    pub index: usize,
    pub error: Error,
}

/// A time-series engine on a local directory.
#[derive(Debug)]
pub struct Engine {
    dir: PathBuf,
    state: Arc<RwLock<State>>,
    ingest: Mutex<Ingest>,
    /// One sealing pass at a time.
    maintenance: Mutex<()>,
    wal: Wal<State>,
    _lock: File,
}

impl Engine {
    /// Opens (or creates) the engine in `dir`, replaying its log.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let DirLock::Held(lock) = disk_format::lock_dir(&dir).map_err(Error::io(&dir))? else {
            return Err(Error::Locked { path: dir.display().to_string() });
        };
        let mut state = State::default();
        let wal_dir = dir.join("wal");
        let replayed = Arc::new(RwLock::new(State::default()));
        let wal = Wal::open(&wal_dir, Arc::clone(&replayed), |kind, body| replay(&mut state, kind, body))?;
        let mut ingest = Ingest::default();
        for id in 0..state.index.next_id() {
            if let Some(k) = state.index.key(id) {
                ingest.ids.insert(key_hash(k.metric(), k.tags()), k.metric(), k.tags());
            }
        }
        for (name, s) in &state.schemas {
            ingest.newest.insert(name.clone(), s.newest);
        }
        // Sealed partitions; a seal that finished before its log checkpoint
        // also drops the head data it already holds.
        let names: Vec<String> = state.schemas.keys().cloned().collect();
        for name in names {
            let parts = Partition::open_all(&blocks_dir(&dir, &name))?;
            let Some(schema) = state.schemas.get_mut(&name) else { continue };
            let sealed_end = parts.iter().map(|p| p.end).max().unwrap_or(i64::MIN);
            schema.sealed_until = schema.sealed_until.max(sealed_end);
            schema.partitions = parts.into_iter().map(|p| (p.start, p)).collect();
        }
        *replayed.write().unwrap_or_else(PoisonError::into_inner) = state;
        let engine =
            Self { dir, state: replayed, ingest: Mutex::new(ingest), maintenance: Mutex::new(()), wal, _lock: lock };
        // Head points before a metric's `sealed_until`: a back-fill not yet
        // merged, or points a seal wrote before its checkpoint. Merging
        // drops the duplicates and keeps the rest.
        engine.merge_all_backfill()?;
        Ok(engine)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a series schema; creating the same schema again is a no-op,
    /// a different one under the same name is an error.
    pub fn create_series(&self, schema: SeriesSchema) -> Result<bool> {
        schema.validate()?;
        let ingest = self.ingest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = self.read().schemas.get(&schema.series_name) {
            return if existing.schema == schema { Ok(false) } else { Err(Error::SchemaConflict(schema.series_name)) };
        }
        let mut frames = FrameWriter::default();
        let start = frames.begin(SCHEMA);
        frames.buf.extend_from_slice(&serde_json::to_vec(&schema).map_err(|e| Error::Codec(e.to_string()))?);
        frames.finish(start).map_err(|e| Error::Codec(e.to_string()))?;
        let apply = Box::new(move |s: &mut State| {
            // Validated above; a failure here cannot happen.
            let _ = s.add_schema(schema);
        });
        let result = self.wal.write(frames.buf, apply);
        drop(ingest);
        result.map(|()| true)
    }

    /// The schema of a metric.
    pub fn schema(&self, name: &str) -> Option<SeriesSchema> {
        self.read().schemas.get(name).map(|s| s.schema.clone())
    }

    /// All schemas, sorted by name.
    pub fn schemas(&self) -> Vec<SeriesSchema> {
        let mut v: Vec<_> = self.read().schemas.values().map(|s| s.schema.clone()).collect();
        v.sort_by(|a, b| a.series_name.cmp(&b.series_name));
        v
    }

    /// Validates and durably writes a batch; all or nothing. Returns once the
    /// points are in the fsynced log and visible to queries.
    ///
    /// The points are borrowed: the engine copies what it keeps, and a
    /// caller may send the same batch again after an error.
    pub fn write(&self, points: &[Point]) -> Result<WriteReport> {
        self.write_checked(points, None)
    }

    /// Writes the points that pass every check and hands back the others,
    /// each with why, instead of refusing the whole batch at the first.
    pub fn write_lenient(&self, points: &[Point]) -> Result<(WriteReport, Vec<Refused>)> {
        let mut refused = Vec::new();
        let report = self.write_checked(points, Some(&mut refused))?;
        Ok((report, refused))
    }

    /// `refused`: `None` fails the batch at its first bad point; a list
    /// collects the bad points and the rest is written.
    fn write_checked(&self, points: &[Point], mut refused: Option<&mut Vec<Refused>>) -> Result<WriteReport> {
        let mut refuse = |index: usize, error: Error| match refused.as_deref_mut() {
            Some(list) => {
                list.push(Refused { index, error });
                Ok(())
            }
            None => Err(error),
        };
        let mut report = WriteReport::default();
        let mut accepted = Vec::with_capacity(points.len());
        {
            let state = self.read();
            for (i, p) in points.iter().enumerate() {
                let Some(known) = state.schemas.get(&p.series) else {
                    refuse(i, Error::UnknownSeries(p.series.clone()))?;
                    continue;
                };
                let schema = &known.schema;
                if let Some(unit) = &p.unit
                    && unit != &schema.unit
                {
                    refuse(
                        i,
                        Error::WrongUnit { series: p.series.clone(), expected: schema.unit.clone(), got: unit.clone() },
                    )?;
                    continue;
                }
                if !p.value.is_finite() {
                    match schema.nan_policy {
                        NanPolicy::Reject => {
                            refuse(i, Error::NaN { series: p.series.clone(), timestamp: p.timestamp })?;
                            continue;
                        }
                        NanPolicy::Drop => {
                            report.dropped += 1;
                            continue;
                        }
                    }
                }
                accepted.push((i, p, schema.retention_ns()));
            }
        }
        let mut ingest = self.ingest.lock().unwrap_or_else(PoisonError::into_inner);
        // Any time the retention keeps is accepted (older than the window
        // goes into the sealed partitions); the retention is measured from
        // the newest point logged before this batch.
        let mut kept = Vec::with_capacity(accepted.len());
        for (i, p, retention) in accepted {
            let newest = ingest.newest.get(&p.series).copied().unwrap_or(i64::MIN);
            let cutoff = if newest == i64::MIN { i64::MIN } else { newest.saturating_sub(retention) };
            if p.timestamp < cutoff {
                refuse(i, Error::TooOld { series: p.series.clone(), timestamp: p.timestamp, cutoff })?;
                continue;
            }
            kept.push((i, p, retention));
        }
        let mut accepted = kept;
        // Known series had their tag keys checked when they were created;
        // only new ones are checked, before anything is registered.
        let mut hashes: Vec<u64> = accepted.iter().map(|(_, p, _)| key_hash(&p.series, pairs(&p.tags))).collect();
        let mut known: Vec<Option<u32>> =
            accepted.iter().zip(&hashes).map(|((_, p, _), h)| ingest.find(*h, &p.series, &p.tags)).collect();
        if known.iter().any(Option::is_none) {
            let state = self.read();
            let mut keep = vec![true; accepted.len()];
            for (k, &(index, p, _)) in accepted.iter().enumerate().filter(|(k, _)| known[*k].is_none()) {
                let Some(known) = state.schemas.get(&p.series) else {
                    refuse(index, Error::UnknownSeries(p.series.clone()))?;
                    keep[k] = false;
                    continue;
                };
                if let Some(key) = p.tags.keys().find(|key| !known.schema.tags.contains(key)) {
                    refuse(index, Error::UnknownTagKey { series: p.series.clone(), key: key.clone() })?;
                    keep[k] = false;
                }
            }
            if keep.contains(&false) {
                let mut flags = keep.iter();
                accepted.retain(|_| flags.next().copied().unwrap_or(true));
                let mut flags = keep.iter();
                hashes.retain(|_| flags.next().copied().unwrap_or(true));
                let mut flags = keep.iter();
                known.retain(|_| flags.next().copied().unwrap_or(true));
            }
        }
        let mut frames = FrameWriter::default();
        let mut new_keys = Vec::new();
        let mut batch = Vec::with_capacity(accepted.len());
        for (((_, p, _), hash), known) in accepted.iter().zip(hashes).zip(known) {
            // A series new to this batch may have been added a few points ago.
            let id = match known.or_else(|| ingest.find(hash, &p.series, &p.tags)) {
                Some(id) => id,
                None => {
                    let key = SeriesKey::new(&p.series, &p.tags);
                    let start = frames.begin(SERIES);
                    let id = ingest.ids.len() as u32;
                    frames.u32(id);
                    frames.buf.extend_from_slice(&serde_json::to_vec(&key).map_err(|e| Error::Codec(e.to_string()))?);
                    frames.finish(start)?;
                    new_keys.push((id, key.clone()));
                    ingest.ids.insert(hash, &p.series, pairs(&p.tags)).0
                }
            };
            batch.push((id, p.timestamp, p.value, p.quality));
        }
        // Points of sealed partitions already there exactly (a load run
        // again) are ignored, as head duplicates are.
        let duplicate = self.sealed_duplicates(&batch, |k| &accepted[k].1.series)?;
        if duplicate.contains(&true) {
            let mut flags = duplicate.iter();
            batch.retain(|_| !flags.next().copied().unwrap_or(false));
            report.duplicates = duplicate.iter().filter(|d| **d).count();
        }
        if !batch.is_empty() {
            let start = frames.begin(POINTS);
            frames.u32(batch.len() as u32);
            for (id, ts, v, q) in &batch {
                frames.u32(*id);
                frames.i64(*ts);
                frames.u64(v.to_bits());
                frames.buf.push(quality_byte(*q));
            }
            frames.finish(start)?;
        }
        for (_, p, _) in &accepted {
            match ingest.newest.get_mut(&p.series) {
                Some(n) => *n = (*n).max(p.timestamp),
                None => drop(ingest.newest.insert(p.series.clone(), p.timestamp)),
            }
        }
        report.accepted = batch.len();
        report.new_series = new_keys.len();
        if frames.buf.is_empty() {
            return Ok(report);
        }
        let apply = Box::new(move |s: &mut State| {
            for (id, key) in new_keys {
                if s.index.insert(key) != id {
                    tracing::error!(id, "series ids out of step with the log");
                }
            }
            s.apply_points(&batch);
        });
        // Enqueued under the ingest lock so log order = id order; the wait
        // for durability happens outside it so writers share syncs.
        let pending = self.wal.write_async(frames.buf, apply);
        drop(ingest);
        pending?.recv().map_err(|_| Error::Closed)??;
        self.maintain()?;
        Ok(report)
    }

    /// Which points of `batch` lie in a sealed partition that holds them
    /// already (same time, same value bits). Reads each series' record of
    /// the partitions its points fall in, once per batch.
    fn sealed_duplicates<'a>(
        &self,
        batch: &[(u32, i64, f64, Quality)],
        metric_of: impl Fn(usize) -> &'a str,
    ) -> Result<Vec<bool>> {
        let mut duplicate = vec![false; batch.len()];
        let state = self.read();
        let mut by_series: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (k, (id, ts, _, _)) in batch.iter().enumerate() {
            if state.schemas.get(metric_of(k)).is_some_and(|s| *ts < s.sealed_until) {
                by_series.entry(*id).or_default().push(k);
            }
        }
        for (id, ks) in by_series {
            let Some(schema) = state.schemas.get(metric_of(ks[0])) else { continue };
            let lo = ks.iter().map(|k| batch[*k].1).min().unwrap_or(i64::MAX);
            let hi = ks.iter().map(|k| batch[*k].1).max().unwrap_or(i64::MIN);
            let mut have = rustc_hash::FxHashSet::default();
            for p in schema.partitions.values().filter(|p| p.end > lo && p.start <= hi) {
                if let Some(d) = p.read(id)? {
                    have.extend(d.points.iter().map(|(t, v)| (*t, v.to_bits())));
                }
            }
            for k in ks {
                duplicate[k] = have.contains(&(batch[k].1, batch[k].2.to_bits()));
            }
        }
        Ok(duplicate)
    }

    /// Waits until every write logged so far is applied (log order is
    /// apply order; the caller holds the ingest lock, so no write follows).
    fn applied_barrier(&self) -> Result<()> {
        self.wal.write(Vec::new(), Box::new(|_| {}))
    }

    /// Merges the back-filled head points of `metric` (those before its
    /// `sealed_until`) into their sealed partitions, rewriting each one they
    /// fall in (a new partition where none exists), exact duplicates
    /// dropped. Writers wait meanwhile, so the head loses exactly what the
    /// partitions gained. A crash at any step leaves the points in the log
    /// (the checkpoint comes after), and the merge runs again at open.
    fn merge_backfill(&self, metric: &str) -> Result<()> {
        let _ingest = self.ingest.lock().unwrap_or_else(PoisonError::into_inner);
        self.applied_barrier()?;
        let (until, compress, levels, mut targets) = {
            let state = self.read();
            let Some(schema) = state.schemas.get(metric) else { return Ok(()) };
            let until = schema.sealed_until;
            // Partition range -> series -> back-filled points and qualities.
            let mut targets: BTreeMap<(i64, i64), BTreeMap<u32, SealedSeries>> = BTreeMap::new();
            for id in &state.index.select(metric, &[])? {
                let Some(data) = state.series.get(id as usize) else { continue };
                if data.points.first_time().is_none_or(|t| t >= until) {
                    continue;
                }
                for (t, v) in data.points.range(i64::MIN, until)? {
                    let range = match schema.partitions.range(..=t).next_back() {
                        Some((_, p)) if t < p.end => (p.start, p.end),
                        _ => (partition_of(t), partition_of(t) + PARTITION_NS),
                    };
                    let s = targets.entry(range).or_default().entry(id).or_default();
                    s.points.push((t, v));
                    if let Some(q) = data.qualities.get(&t) {
                        s.qualities.push((t, *q));
                    }
                }
            }
            (until, schema.schema.compression, schema.levels.clone(), targets)
        };
        if targets.is_empty() {
            return Ok(());
        }
        let dir = blocks_dir(&self.dir, metric);
        let mut prepared = Vec::new();
        for ((start, end), added) in &mut targets {
            let old = self.read().schemas.get(metric).and_then(|s| s.partitions.get(start).cloned());
            let mut ids: Vec<u32> = old.iter().flat_map(|p| p.series_ids()).chain(added.keys().copied()).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut w = PartitionWriter::create(&dir, *start, *end, compress, &levels)?;
            for id in ids {
                let mut all = match &old {
                    Some(p) => p.read(id)?.unwrap_or_default(),
                    None => SealedSeries::default(),
                };
                if let Some(extra) = added.get(&id) {
                    all.points.extend_from_slice(&extra.points);
                    all.qualities.extend_from_slice(&extra.qualities);
                    all.points.sort_by_key(|(t, _)| *t);
                    all.points.dedup_by(|a, b| a.0 == b.0 && a.1.to_bits() == b.1.to_bits());
                    all.qualities.sort_by_key(|(t, _)| *t);
                    all.qualities.dedup_by_key(|(t, _)| *t);
                }
                w.add(id, all)?;
            }
            prepared.push(w.prepare()?);
        }
        // In place under the write lock: no query reads a partition whose
        // file and directory disagree.
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let mut published = Vec::new();
        for p in prepared {
            published.push(p.publish()?);
        }
        let State { schemas, series, points, .. } = &mut *state;
        for added in targets.values() {
            for id in added.keys() {
                if let Some(data) = series.get_mut(*id as usize) {
                    *points -= data.points.drop_before(until, partition_of)? as u64;
                    data.qualities = data.qualities.split_off(&until);
                }
            }
        }
        if let Some(schema) = schemas.get_mut(metric) {
            for p in published {
                schema.partitions.insert(p.start, p);
            }
            schema.backfill = 0;
        }
        Ok(())
    }

    /// Rewrites the log as one compact checkpoint (head points compressed):
    /// call after a bulk load or before shutdown for a small log and a fast
    /// restart. Durability does not depend on it.
    pub fn flush(&self) -> Result<()> {
        let _one = self.maintenance.lock().unwrap_or_else(PoisonError::into_inner);
        self.merge_all_backfill()?;
        self.wal.rotate(Box::new(|s| checkpoint(s, true)))
    }

    /// Merges every metric's back-filled head points into its partitions.
    fn merge_all_backfill(&self) -> Result<()> {
        let metrics: Vec<String> = {
            let state = self.read();
            state
                .schemas
                .iter()
                .filter(|(_, s)| {
                    s.backfill > 0
                        || state
                            .index
                            .select(&s.schema.series_name, &[])
                            .map(|ids| {
                                ids.iter().any(|id| {
                                    state
                                        .series
                                        .get(id as usize)
                                        .and_then(|d| d.points.first_time())
                                        .is_some_and(|t| t < s.sealed_until)
                                })
                            })
                            .unwrap_or(false)
                })
                .map(|(n, _)| n.clone())
                .collect()
        };
        for metric in metrics {
            self.merge_backfill(&metric)?;
        }
        Ok(())
    }

    /// Rotates the log to the checkpoint a running engine writes (the head's
    /// chunks copied), as `maintain` does once the log has grown.
    #[cfg(test)]
    pub(crate) fn rotate_with_chunks(&self) -> Result<()> {
        self.wal.rotate(Box::new(|s| checkpoint(s, false)))
    }

    /// Seals every partition that can no longer receive points, drops
    /// partitions past retention, and shrinks the log to what is left.
    pub fn maintain(&self) -> Result<()> {
        let _one = self.maintenance.lock().unwrap_or_else(PoisonError::into_inner);
        let work: Vec<(String, i64)> = {
            let state = self.read();
            state
                .schemas
                .iter()
                .filter(|(_, s)| s.newest != i64::MIN)
                .map(|(name, s)| {
                    (
                        name.clone(),
                        s.newest.saturating_sub(s.schema.out_of_order_ns()).div_euclid(PARTITION_NS) * PARTITION_NS,
                    )
                })
                .filter(|(name, target)| state.schemas.get(name).is_some_and(|s| *target > s.sealed_until))
                .collect()
        };
        let backfilled: Vec<String> = {
            let state = self.read();
            state.schemas.iter().filter(|(_, s)| s.backfill >= BACKFILL_MERGE_POINTS).map(|(n, _)| n.clone()).collect()
        };
        for metric in &backfilled {
            self.merge_backfill(metric)?;
        }
        let sealed = !work.is_empty();
        if sealed {
            for (metric, target) in work {
                self.seal(&metric, target)?;
                self.compact(&metric)?;
            }
            self.enforce_retention()?;
        }
        // A checkpoint copies the whole head, so the log is shrunk only once
        // it has grown past twice the last one, or after a seal (so a
        // restart does not replay what partitions hold).
        let (log, last) = self.wal.sizes();
        if sealed || log > CHECKPOINT_AFTER_BYTES.max(2 * last) {
            self.wal.rotate(Box::new(|s| checkpoint(s, false)))?;
        }
        Ok(())
    }

    /// Moves head data of `metric` before `target` into partition files,
    /// a partition at a time and [`SEAL_GROUP`] series at a time, so neither
    /// memory nor the time writers wait for the state grows with the head.
    /// A point before `target` that arrives meanwhile (a back-fill: it is
    /// past the out-of-order window) stays in the head.
    fn seal(&self, metric: &str, target: i64) -> Result<()> {
        let (ids, compress, levels, first, from) = {
            let state = self.read();
            let Some(schema) = state.schemas.get(metric) else { return Ok(()) };
            let ids: Vec<u32> = state.index.select(metric, &[])?.iter().collect();
            let first =
                ids.iter().filter_map(|id| state.series.get(*id as usize)).filter_map(|d| d.points.first_time()).min();
            (ids, schema.schema.compression, schema.levels.clone(), first, schema.sealed_until)
        };
        let dir = blocks_dir(&self.dir, metric);
        let mut written = Vec::new();
        // What is older than `sealed_until` is a back-fill, merged apart.
        let from = first.map_or(target, partition_of).max(from);
        let mut start = from;
        let mut counts: rustc_hash::FxHashMap<u32, usize> = rustc_hash::FxHashMap::default();
        while start < target {
            let end = start + PARTITION_NS;
            let mut writer: Option<PartitionWriter> = None;
            for group in ids.chunks(SEAL_GROUP) {
                let sealed: Vec<(u32, SealedSeries)> = {
                    let state = self.read();
                    let mut out = Vec::new();
                    for id in group {
                        let Some(data) = state.series.get(*id as usize) else { continue };
                        let points = data.points.range(start, end.min(target))?;
                        if points.is_empty() {
                            continue;
                        }
                        let qualities = data.qualities.range(start..end.min(target)).map(|(t, q)| (*t, *q)).collect();
                        out.push((*id, SealedSeries { points, qualities, rollups: Vec::new() }));
                    }
                    out
                };
                for (id, data) in sealed {
                    *counts.entry(id).or_default() += data.points.len();
                    let w = match &mut writer {
                        Some(w) => w,
                        None => writer.insert(PartitionWriter::create(&dir, start, end, compress, &levels)?),
                    };
                    w.add(id, data)?;
                }
            }
            if let Some(w) = writer {
                written.push(w.finish()?);
            }
            start = end;
        }
        // The head gives up exactly what was written: writers wait for the
        // swap, and every write logged before it is applied first.
        let _ingest = self.ingest.lock().unwrap_or_else(PoisonError::into_inner);
        self.applied_barrier()?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let State { schemas, series, points, .. } = &mut *state;
        let mut late = 0u64;
        for (id, n) in &counts {
            let Some(data) = series.get_mut(*id as usize) else { continue };
            let now = data.points.range(from, target)?;
            *points -= data.points.drop_range(from, target, partition_of)? as u64;
            if now.len() != *n {
                // Points before `target` arrived during the seal: keep
                // those the partition did not take, as a back-fill.
                let mut taken: Vec<(i64, u64)> = Vec::new();
                for p in &written {
                    if let Some(d) = p.read(*id)? {
                        taken.extend(d.points.iter().map(|(t, v)| (*t, v.to_bits())));
                    }
                }
                for (t, v) in now {
                    match taken.iter().position(|x| *x == (t, v.to_bits())) {
                        Some(i) => drop(taken.swap_remove(i)),
                        None => {
                            if data.points.insert(t, v, partition_of)? {
                                *points += 1;
                                late += 1;
                            }
                        }
                    }
                }
            }
            let keep = data.qualities.split_off(&target);
            data.qualities.retain(|t, _| *t < from);
            data.qualities.extend(keep);
        }
        if let Some(schema) = schemas.get_mut(metric) {
            for p in written {
                schema.partitions.insert(p.start, p);
            }
            schema.sealed_until = schema.sealed_until.max(target);
            schema.backfill += late;
        }
        Ok(())
    }

    /// Merges sealed partitions into wider ones (2 h -> 6 h -> 1 day) once
    /// the wider window is entirely sealed: larger blocks compress better.
    fn compact(&self, metric: &str) -> Result<()> {
        for width in COMPACTION_WIDTHS {
            self.compact_to(metric, width)?;
        }
        Ok(())
    }

    fn compact_to(&self, metric: &str, width: i64) -> Result<()> {
        let (windows, compress, levels) = {
            let state = self.read();
            let Some(schema) = state.schemas.get(metric) else { return Ok(()) };
            let mut windows: BTreeMap<i64, Vec<Partition>> = BTreeMap::new();
            for p in schema.partitions.values().filter(|p| p.end - p.start < width) {
                let window = p.start.div_euclid(width) * width;
                if window + width <= schema.sealed_until {
                    windows.entry(window).or_default().push(p.clone());
                }
            }
            (windows, schema.schema.compression, schema.levels.clone())
        };
        let dir = blocks_dir(&self.dir, metric);
        for (window, parts) in windows {
            let merged = Partition::merge(&dir, window, window + width, compress, &levels, &parts)?;
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(schema) = state.schemas.get_mut(metric) {
                for p in &parts {
                    schema.partitions.remove(&p.start);
                }
                schema.partitions.insert(merged.start, merged);
            }
        }
        Ok(())
    }

    /// Deletes whole partitions (and head data) older than the retention.
    fn enforce_retention(&self) -> Result<()> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let names: Vec<String> = state.schemas.keys().cloned().collect();
        for name in names {
            let Some(schema) = state.schemas.get_mut(&name) else { continue };
            let cutoff = schema.retention_cutoff();
            let expired: Vec<i64> = schema.partitions.values().filter(|p| p.end <= cutoff).map(|p| p.start).collect();
            for start in expired {
                if let Some(p) = schema.partitions.remove(&start) {
                    std::fs::remove_file(&p.path).map_err(Error::io(&p.path))?;
                }
            }
            state.drop_head_before(&name, cutoff)?;
        }
        Ok(())
    }

    /// Series count, point count and bytes on disk.
    pub fn stats(&self) -> Stats {
        // The ingest lock before the state's, as writes take them.
        let ingest_ids = self.ingest.lock().unwrap_or_else(PoisonError::into_inner).ids.heap_bytes();
        let s = self.read();
        let log_bytes = self.wal.disk_bytes();
        let partition_bytes = s.schemas.values().flat_map(|x| x.partitions.values()).map(|p| p.bytes).sum::<u64>();
        let disk = log_bytes + partition_bytes;
        Stats {
            series: s.index.len() as u64,
            points: s.points + s.sealed_points(),
            log_bytes,
            partition_bytes,
            disk_bytes: disk,
            bytes_per_point: {
                let n = s.points + s.sealed_points();
                if n == 0 { 0.0 } else { disk as f64 / n as f64 }
            },
            sealed_points: s.sealed_points(),
            sealed_block_bytes: s.schemas.values().flat_map(|x| x.partitions.values()).map(|p| p.block_bytes).sum(),
            block_bytes_per_point: {
                let (n, b): (u64, u64) = s
                    .schemas
                    .values()
                    .flat_map(|x| x.partitions.values())
                    .fold((0, 0), |(n, b), p| (n + p.points, b + p.block_bytes));
                if n == 0 { 0.0 } else { b as f64 / n as f64 }
            },
            head_bytes: (s.series.capacity() * std::mem::size_of::<SeriesData>()
                + s.series.iter().map(|d| d.points.heap_bytes()).sum::<usize>()) as u64,
            index_bytes: (s.index.heap_bytes() + ingest_ids) as u64,
        }
    }
}

/// Figures of `platform ts stats`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stats {
    pub series: u64,
    pub points: u64,
    /// The write-ahead log (head points not yet sealed, and checkpoints).
    pub log_bytes: u64,
    /// Sealed partition files (compressed blocks and rollups).
    pub partition_bytes: u64,
    pub disk_bytes: u64,
    pub bytes_per_point: f64,
    /// Points in sealed, compressed blocks and the bytes of those blocks.
    pub sealed_points: u64,
    pub sealed_block_bytes: u64,
    /// Compressed block bytes per sealed point (raw data, without rollups).
    pub block_bytes_per_point: f64,
    /// Memory the head's points take (chunks, buffers, per-series records).
    pub head_bytes: u64,
    /// Memory the series index takes (identities and postings, and the
    /// writer's own identities).
    pub index_bytes: u64,
}

fn blocks_dir(dir: &Path, metric: &str) -> PathBuf {
    dir.join("blocks").join(metric)
}
