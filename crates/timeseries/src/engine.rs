//! The engine: schemas, series, the write path (validate, log, apply) and
//! the in-memory head with its continuously maintained rollups.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use event_store::framing::{FrameReader, FrameWriter};

use crate::aggregate::{BucketAgg, Interval};
use crate::index::{SeriesIndex, SeriesKey};
use crate::model::{NanPolicy, Point, Quality, SeriesSchema};
use crate::wal::Wal;
use crate::{Error, Result};

const SCHEMA: u8 = 1;
const SERIES: u8 = 2;
const POINTS: u8 = 3;

/// One series' data in memory: points sorted by time, the newest point, and
/// one map of bucket aggregates per rollup level of its schema.
#[derive(Debug, Default)]
pub(crate) struct SeriesData {
    pub points: Vec<(i64, f64)>,
    /// Qualities other than good, by timestamp (most points are good).
    pub qualities: BTreeMap<i64, Quality>,
    pub rollups: Vec<BTreeMap<i64, BucketAgg>>,
}

impl SeriesData {
    fn insert(&mut self, ts: i64, v: f64, quality: Quality, levels: &[Interval]) {
        // Mostly appends; a late point inside the window is inserted in place.
        let at = match self.points.last() {
            Some((last, _)) if *last > ts => self.points.partition_point(|(t, _)| *t <= ts),
            _ => self.points.len(),
        };
        self.points.insert(at, (ts, v));
        if quality != Quality::Good {
            self.qualities.insert(ts, quality);
        }
        if self.rollups.len() < levels.len() {
            self.rollups.resize_with(levels.len(), BTreeMap::new);
        }
        for (level, buckets) in levels.iter().zip(&mut self.rollups) {
            // Finite values only reach here (the schema policy runs first).
            let _ = buckets.entry(level.bucket_start(ts, 0)).or_default().add(ts, v);
        }
    }
}

/// A schema with its parsed rollup levels and the newest time seen.
#[derive(Debug, Clone)]
pub(crate) struct SchemaState {
    pub schema: SeriesSchema,
    pub levels: Vec<Interval>,
    pub newest: i64,
}

/// Everything queries read.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub schemas: HashMap<String, SchemaState>,
    pub index: SeriesIndex,
    pub series: Vec<SeriesData>,
    pub points: u64,
}

impl State {
    fn apply_points(&mut self, batch: &[(u32, i64, f64, Quality)]) {
        let State { schemas, index, series, points } = self;
        for (id, ts, v, q) in batch {
            let Some(key) = index.key(*id) else { continue };
            let Some(schema) = schemas.get_mut(&key.metric) else { continue };
            schema.newest = schema.newest.max(*ts);
            if series.len() <= *id as usize {
                series.resize_with(*id as usize + 1, SeriesData::default);
            }
            series[*id as usize].insert(*ts, *v, *q, &schema.levels);
            *points += 1;
        }
    }

    fn add_schema(&mut self, schema: SeriesSchema) -> Result<()> {
        let levels = schema.rollup_intervals()?;
        self.schemas.insert(schema.series_name.clone(), SchemaState { schema, levels, newest: i64::MIN });
        Ok(())
    }
}

/// What the writer side tracks to decide ids and lateness in log order.
#[derive(Debug, Default)]
struct Ingest {
    ids: HashMap<SeriesKey, u32>,
    next_id: u32,
    newest: HashMap<String, i64>,
}

/// The outcome of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub accepted: usize,
    /// NaN or infinite values left out under `nan_policy = drop`.
    pub dropped: usize,
    pub new_series: usize,
}

/// A time-series engine on a local directory.
#[derive(Debug)]
pub struct Engine {
    dir: PathBuf,
    state: Arc<RwLock<State>>,
    ingest: Mutex<Ingest>,
    wal: Wal<State>,
    _lock: File,
}

impl Engine {
    /// Opens (or creates) the engine in `dir`, replaying its log.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        lock.try_lock().map_err(|_| Error::Locked { path: dir.display().to_string() })?;
        let mut state = State::default();
        let wal_dir = dir.join("wal");
        let replayed = Arc::new(RwLock::new(State::default()));
        let wal = Wal::open(&wal_dir, Arc::clone(&replayed), |kind, body| replay(&mut state, kind, body))?;
        let mut ingest = Ingest { next_id: state.index.next_id(), ..Ingest::default() };
        for id in 0..state.index.next_id() {
            if let Some(k) = state.index.key(id) {
                ingest.ids.insert(k.clone(), id);
            }
        }
        for (name, s) in &state.schemas {
            ingest.newest.insert(name.clone(), s.newest);
        }
        *replayed.write().unwrap_or_else(PoisonError::into_inner) = state;
        Ok(Self { dir, state: replayed, ingest: Mutex::new(ingest), wal, _lock: lock })
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
    pub fn write(&self, points: Vec<Point>) -> Result<WriteReport> {
        let mut report = WriteReport::default();
        let mut accepted = Vec::with_capacity(points.len());
        {
            let state = self.read();
            for p in points {
                let schema =
                    &state.schemas.get(&p.series).ok_or_else(|| Error::UnknownSeries(p.series.clone()))?.schema;
                if let Some(key) = p.tags.keys().find(|k| !schema.tags.contains(k)) {
                    return Err(Error::UnknownTagKey { series: p.series.clone(), key: key.clone() });
                }
                if let Some(unit) = &p.unit
                    && unit != &schema.unit
                {
                    return Err(Error::WrongUnit {
                        series: p.series.clone(),
                        expected: schema.unit.clone(),
                        got: unit.clone(),
                    });
                }
                if !p.value.is_finite() {
                    match schema.nan_policy {
                        NanPolicy::Reject => {
                            return Err(Error::NaN { series: p.series.clone(), timestamp: p.timestamp });
                        }
                        NanPolicy::Drop => {
                            report.dropped += 1;
                            continue;
                        }
                    }
                }
                let window = schema.out_of_order_ns();
                accepted.push((p, window));
            }
        }
        let mut ingest = self.ingest.lock().unwrap_or_else(PoisonError::into_inner);
        // Lateness is judged against the newest point logged before this batch.
        for (p, window) in &accepted {
            let newest = ingest.newest.get(&p.series).copied().unwrap_or(i64::MIN);
            if p.timestamp < newest.saturating_sub(*window) {
                return Err(Error::TooLate {
                    series: p.series.clone(),
                    timestamp: p.timestamp,
                    newest,
                    window_ns: *window,
                });
            }
        }
        let mut frames = FrameWriter::default();
        let mut new_keys = Vec::new();
        let mut batch = Vec::with_capacity(accepted.len());
        let mut next_id = ingest.next_id;
        for (p, _) in &accepted {
            let key = SeriesKey::new(&p.series, &p.tags);
            let id = match ingest.ids.get(&key) {
                Some(id) => *id,
                None => {
                    let id = next_id;
                    next_id += 1;
                    let start = frames.begin(SERIES);
                    frames.u32(id);
                    frames.buf.extend_from_slice(&serde_json::to_vec(&key).map_err(|e| Error::Codec(e.to_string()))?);
                    frames.finish(start).map_err(|e| Error::Codec(e.to_string()))?;
                    ingest.ids.insert(key.clone(), id);
                    new_keys.push((id, key));
                    id
                }
            };
            batch.push((id, p.timestamp, p.value, p.quality));
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
            frames.finish(start).map_err(|e| Error::Codec(e.to_string()))?;
        }
        ingest.next_id = next_id;
        for (p, _) in &accepted {
            let n = ingest.newest.entry(p.series.clone()).or_insert(i64::MIN);
            *n = (*n).max(p.timestamp);
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
        Ok(report)
    }

    /// Series count, point count and bytes on disk.
    pub fn stats(&self) -> Stats {
        let s = self.read();
        let disk = self.wal.disk_bytes();
        Stats {
            series: s.index.len() as u64,
            points: s.points,
            disk_bytes: disk,
            bytes_per_point: if s.points == 0 { 0.0 } else { disk as f64 / s.points as f64 },
        }
    }
}

/// Figures of `platform ts stats`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stats {
    pub series: u64,
    pub points: u64,
    pub disk_bytes: u64,
    pub bytes_per_point: f64,
}

fn quality_byte(q: Quality) -> u8 {
    match q {
        Quality::Good => 0,
        Quality::Suspect => 1,
        Quality::Bad => 2,
    }
}

fn quality_of(b: u8) -> Result<Quality> {
    match b {
        0 => Ok(Quality::Good),
        1 => Ok(Quality::Suspect),
        2 => Ok(Quality::Bad),
        other => Err(Error::Codec(format!("unknown quality {other}"))),
    }
}

/// Applies one logged frame while opening.
fn replay(state: &mut State, kind: u8, body: &[u8]) -> Result<()> {
    match kind {
        SCHEMA => {
            let schema: SeriesSchema = serde_json::from_slice(body).map_err(|e| Error::Codec(e.to_string()))?;
            state.add_schema(schema)
        }
        SERIES => {
            let mut r = FrameReader::new(body, 0);
            let id = r.u32().map_err(|e| Error::Codec(e.to_string()))?;
            let (_, json) = r.rest();
            let key: SeriesKey = serde_json::from_slice(json).map_err(|e| Error::Codec(e.to_string()))?;
            if state.index.insert(key) != id {
                return Err(Error::Codec(format!("series {id} out of order in the log")));
            }
            Ok(())
        }
        POINTS => {
            let mut r = FrameReader::new(body, 0);
            let codec = |e: event_store::Error| Error::Codec(e.to_string());
            let n = r.u32().map_err(codec)?;
            let mut batch = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let id = r.u32().map_err(codec)?;
                let ts = r.i64().map_err(codec)?;
                let v = f64::from_bits(r.u64().map_err(codec)?);
                batch.push((id, ts, v, quality_of(r.u8().map_err(codec)?)?));
            }
            state.apply_points(&batch);
            Ok(())
        }
        other => Err(Error::Codec(format!("unknown log record kind {other}"))),
    }
}
