//! Sealed partitions: once a time partition can no longer receive points
//! (it ends before the newest point minus the out-of-order window), each
//! series' points are compressed into one immutable block (pco, see
//! [`crate::codec::block`]) together with the rollup buckets that end in the
//! partition, and written to `blocks/<metric>/<start>.part` with a CRC per
//! series record. Memory then keeps only a small directory per partition.
//!
//! A partition stores the buckets of a rollup level only where they are
//! complete inside it (the level divides the partition and is at least
//! [`MIN_STORED_ROLLUP_NS`]): a day partition keeps its 1-day buckets, a
//! 2-hour one none. Its header lists those levels, so a query knows which
//! partitions answer from buckets and which from their points.

use std::fs::File;
use std::io::{BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use disk_format::ByteReader;
use disk_format::frame::{self as framing, FrameWriter, Scan};

use crate::aggregate::{BucketAgg, Interval};
use crate::codec::Block;
use crate::engine::MIN_STORED_ROLLUP_NS;
use crate::model::Quality;
use crate::{Error, Result};

const META: u8 = 1;
const SERIES: u8 = 2;

/// One series' sealed data for one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct SealedSeries {
    pub points: Vec<(i64, f64)>,
    pub qualities: Vec<(i64, Quality)>,
    /// Per rollup level (schema order): buckets that end in this partition.
    pub rollups: Vec<Vec<(i64, BucketAgg)>>,
}

/// A sealed partition on disk and where each series' record is.
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub start: i64,
    pub end: i64,
    pub path: PathBuf,
    pub bytes: u64,
    /// Points in all blocks of the partition.
    pub points: u64,
    /// Bytes of the raw point blocks alone (without rollups and framing).
    pub block_bytes: u64,
    /// Widths (ns) of the rollup levels whose buckets are stored, complete.
    levels: Vec<i64>,
    /// Series id, record size and offset, sorted by id: 16 bytes a series.
    series: Vec<(u32, u32, u64)>,
}

/// Writes one partition series by series, so sealing a million series
/// holds one series' points at a time, not the partition's.
#[derive(Debug)]
pub(crate) struct PartitionWriter {
    file: std::io::BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    start: i64,
    end: i64,
    compress: bool,
    levels: Vec<(Interval, bool)>,
    frame: FrameWriter,
    offset: u64,
    points: u64,
    block_bytes: u64,
    series: Vec<(u32, u32, u64)>,
}

impl PartitionWriter {
    /// Starts `<start>-<end>.part.tmp` in `dir`; nothing is visible until
    /// [`finish`](Self::finish) renames it.
    pub fn create(dir: &Path, start: i64, end: i64, compress: bool, levels: &[Interval]) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let path = dir.join(format!("{start}-{end}.part"));
        let tmp = dir.join(format!("{start}-{end}.part.tmp"));
        let file = File::create(&tmp).map_err(Error::io(&tmp))?;
        let levels: Vec<(Interval, bool)> = levels.iter().map(|l| (*l, stores_level(*l, start, end))).collect();
        let mut w = Self {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            tmp,
            path,
            dir: dir.to_owned(),
            start,
            end,
            compress,
            levels,
            frame: FrameWriter::default(),
            offset: 0,
            points: 0,
            block_bytes: 0,
            series: Vec::new(),
        };
        let f = &mut w.frame;
        let s = f.begin(META);
        f.i64(start);
        f.i64(end);
        f.u32(w.levels.iter().filter(|(_, s)| *s).count() as u32);
        for (level, _) in w.levels.iter().filter(|(_, s)| *s) {
            f.i64(level.nanos());
        }
        f.finish(s)?;
        w.flush_frame()?;
        Ok(w)
    }

    fn flush_frame(&mut self) -> Result<u64> {
        let n = self.frame.buf.len() as u64;
        self.file.write_all(&self.frame.buf).map_err(Error::io(&self.tmp))?;
        self.frame.buf.clear();
        self.offset += n;
        Ok(n)
    }

    /// Appends one series (ids in increasing order).
    pub fn add(&mut self, id: u32, mut data: SealedSeries) -> Result<()> {
        if self.series.last().is_some_and(|(last, _, _)| *last >= id) {
            return Err(Error::Codec(format!("series {id} added to a partition out of order")));
        }
        data.points.sort_by_key(|(t, _)| *t);
        let rollups = self
            .levels
            .iter()
            .map(|(l, s)| if *s { buckets_of(*l, &data.points) } else { Ok(Vec::new()) })
            .collect::<Result<Vec<_>>>()?;
        let (ts, vs): (Vec<i64>, Vec<f64>) = data.points.iter().copied().unzip();
        let block = Block::encode(&ts, &vs, self.compress)?;
        let w = &mut self.frame;
        let s = w.begin(SERIES);
        w.u32(id);
        w.bytes(&block)?;
        w.u32(data.qualities.len() as u32);
        for (t, q) in &data.qualities {
            w.i64(*t);
            w.buf.push(quality_byte(*q));
        }
        w.u32(rollups.len() as u32);
        for level in &rollups {
            w.u32(level.len() as u32);
            for (bucket, agg) in level {
                w.i64(*bucket);
                w.bytes(&agg.to_bytes()?)?;
            }
        }
        w.finish(s)?;
        let at = self.offset;
        let size = self.flush_frame()?;
        let size = u32::try_from(size).map_err(|_| Error::Codec(format!("series {id} record too large")))?;
        self.series.push((id, size, at));
        self.points += ts.len() as u64;
        self.block_bytes += block.len() as u64;
        Ok(())
    }

    /// Makes the partition durable and visible.
    pub fn finish(self) -> Result<Partition> {
        self.prepare()?.publish()
    }

    /// Makes the file durable under its temporary name; [`Prepared::publish`]
    /// then puts it in place (replacing a partition of the same range).
    pub fn prepare(self) -> Result<Prepared> {
        let Self { file, tmp, path, dir, start, end, levels, offset, points, block_bytes, series, .. } = self;
        let file = file.into_inner().map_err(|e| Error::io(&tmp)(e.into_error()))?;
        file.sync_all().map_err(Error::io(&tmp))?;
        let levels = levels.iter().filter(|(_, s)| *s).map(|(l, _)| l.nanos()).collect();
        Ok(Prepared {
            tmp,
            dir,
            partition: Partition { start, end, path, bytes: offset, points, block_bytes, levels, series },
        })
    }
}

/// A partition file written and synced, not yet in place.
#[derive(Debug)]
pub(crate) struct Prepared {
    tmp: PathBuf,
    dir: PathBuf,
    partition: Partition,
}

impl Prepared {
    /// Renames the file into place (atomically replacing an older one of
    /// the same range) and syncs the directory.
    pub fn publish(self) -> Result<Partition> {
        let path = &self.partition.path;
        std::fs::rename(&self.tmp, path).map_err(Error::io(path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(Error::io(&self.dir))?;
        Ok(self.partition)
    }
}

/// Whether a partition over `[start, end)` stores `level`'s buckets.
fn stores_level(level: Interval, start: i64, end: i64) -> bool {
    let n = level.nanos();
    n >= MIN_STORED_ROLLUP_NS && start.rem_euclid(n) == 0 && end.rem_euclid(n) == 0
}

/// The buckets of `level` over sorted points.
fn buckets_of(level: Interval, points: &[(i64, f64)]) -> Result<Vec<(i64, BucketAgg)>> {
    let mut out: Vec<(i64, BucketAgg)> = Vec::new();
    // Non-finite values never reach a partition through the engine (the
    // schema's NaN policy runs first); a bucket cannot hold them.
    for (t, v) in points.iter().filter(|(_, v)| v.is_finite()) {
        let start = level.bucket_start(*t, 0);
        match out.last_mut() {
            Some((s, agg)) if *s == start => agg.add(*t, *v)?,
            _ => {
                let mut agg = BucketAgg::new();
                agg.add(*t, *v)?;
                out.push((start, agg));
            }
        }
    }
    Ok(out)
}

pub(crate) fn quality_byte(q: Quality) -> u8 {
    match q {
        Quality::Good => 0,
        Quality::Suspect => 1,
        Quality::Bad => 2,
    }
}

pub(crate) fn quality_of(b: u8) -> Result<Quality> {
    match b {
        0 => Ok(Quality::Good),
        1 => Ok(Quality::Suspect),
        2 => Ok(Quality::Bad),
        other => Err(Error::Codec(format!("unknown quality {other}"))),
    }
}

impl Partition {
    /// Writes a partition atomically (temp file, fsync, rename, fsync dir),
    /// with the buckets of every level of `levels` it stores, computed from
    /// the points (the `rollups` passed in are not used). The engine streams
    /// through [`PartitionWriter`]; tests write whole partitions at once.
    #[cfg(test)]
    pub fn write(
        dir: &Path,
        start: i64,
        end: i64,
        compress: bool,
        levels: &[Interval],
        mut series: Vec<(u32, SealedSeries)>,
    ) -> Result<Self> {
        series.sort_by_key(|(id, _)| *id);
        let mut w = PartitionWriter::create(dir, start, end, compress, levels)?;
        for (id, data) in series {
            w.add(id, data)?;
        }
        w.finish()
    }

    /// Reads a partition's directory; any damage is an error naming the offset.
    pub fn open(path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
        let mut r = BufReader::new(File::open(path).map_err(Error::io(path))?);
        let corrupt = |offset: u64, reason: String| Error::Corrupt { path: path.display().to_string(), offset, reason };
        let (mut offset, mut buf) = (0u64, Vec::new());
        let mut meta = None;
        let mut levels = Vec::new();
        let mut series = Vec::new();
        let mut points = 0u64;
        let mut block_bytes = 0u64;
        loop {
            match framing::scan_next(&mut r, len - offset, &mut buf).map_err(|source| Error::Damaged {
                path: path.display().to_string(),
                offset,
                source,
            })? {
                Scan::End => break,
                Scan::TornTail { reason } => return Err(corrupt(offset, reason)),
                Scan::Frame { size } => {
                    let mut f = ByteReader::new(&buf[1..], "partition record");
                    match buf[0] {
                        META => {
                            meta = Some((f.i64()?, f.i64()?));
                            // Partitions written before 2026-12-04 list no levels.
                            if !f.rest().1.is_empty() {
                                let mut f = ByteReader::at(&buf[17..], "partition header", offset + 17);
                                for _ in 0..f.u32()? {
                                    levels.push(f.i64()?);
                                }
                            }
                        }
                        SERIES => {
                            let size =
                                u32::try_from(size).map_err(|_| corrupt(offset, "series record too large".into()))?;
                            series.push((f.u32()?, size, offset));
                            let (_, block) = f.bytes32()?;
                            points += u64::from(Block::header(block)?.count);
                            block_bytes += block.len() as u64;
                        }
                        other => return Err(corrupt(offset, format!("unknown record kind {other}"))),
                    }
                    offset += size;
                }
            }
        }
        let (start, end) = meta.ok_or_else(|| corrupt(0, "no partition header".into()))?;
        series.sort_unstable_by_key(|(id, _, _)| *id);
        Ok(Self { start, end, path: path.to_owned(), bytes: len, points, block_bytes, levels, series })
    }

    fn entry(&self, id: u32) -> Option<(u32, u32, u64)> {
        self.series.binary_search_by_key(&id, |(i, _, _)| *i).ok().map(|i| self.series[i])
    }

    /// The ids of the series it holds, ascending.
    pub fn series_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.series.iter().map(|(id, _, _)| *id)
    }

    pub fn contains(&self, id: u32) -> bool {
        self.entry(id).is_some()
    }

    /// Whether this partition holds `level`'s buckets, each complete.
    pub fn stores(&self, level: Interval) -> bool {
        self.levels.contains(&level.nanos())
    }

    /// The sealed data of one series, if the partition has any.
    pub fn read(&self, id: u32) -> Result<Option<SealedSeries>> {
        let Some((_, size, offset)) = self.entry(id) else { return Ok(None) };
        let size = size as usize;
        let file = File::open(&self.path).map_err(Error::io(&self.path))?;
        let mut raw = vec![0; size];
        file.read_exact_at(&mut raw, offset).map_err(Error::io(&self.path))?;
        let mut buf = Vec::new();
        let corrupt = |reason: String| Error::Corrupt { path: self.path.display().to_string(), offset, reason };
        match framing::scan_next(&mut raw.as_slice(), size as u64, &mut buf).map_err(|source| Error::Damaged {
            path: self.path.display().to_string(),
            offset,
            source,
        })? {
            Scan::Frame { .. } => {}
            _ => return Err(corrupt("series record is damaged".into())),
        }
        let mut f = ByteReader::new(&buf[1..], "partition record");
        f.u32()?;
        let (_, block) = f.bytes32()?;
        let (ts, vs) = Block::decode(block)?;
        let mut out = SealedSeries { points: ts.into_iter().zip(vs).collect(), ..SealedSeries::default() };
        for _ in 0..f.u32()? {
            out.qualities.push((f.i64()?, quality_of(f.u8()?)?));
        }
        for _ in 0..f.u32()? {
            let mut level = Vec::new();
            for _ in 0..f.u32()? {
                let bucket = f.i64()?;
                let (_, bytes) = f.bytes32()?;
                level.push((bucket, BucketAgg::from_bytes(bytes)?));
            }
            out.rollups.push(level);
        }
        Ok(Some(out))
    }

    /// Every partition file of a metric directory, by start time.
    pub fn open_all(dir: &Path) -> Result<Vec<Self>> {
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
            let path = entry.map_err(Error::io(dir))?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("part") => out.push(Self::open(&path)?),
                // A seal that died before its rename left nothing valid.
                Some("tmp") => std::fs::remove_file(&path).map_err(Error::io(&path))?,
                _ => {}
            }
        }
        // A compaction that died after writing the merged file but before
        // deleting its inputs leaves partitions inside a larger one.
        out.sort_by_key(|p| (p.start, std::cmp::Reverse(p.end)));
        let mut kept: Vec<Self> = Vec::with_capacity(out.len());
        for p in out {
            match kept.last() {
                Some(big) if p.start >= big.start && p.end <= big.end => {
                    std::fs::remove_file(&p.path).map_err(Error::io(&p.path))?;
                }
                _ => kept.push(p),
            }
        }
        Ok(kept)
    }

    /// Merges adjacent partitions into one covering `[start, end)`: larger
    /// blocks compress better. The inputs are deleted once the merged file
    /// is durable.
    pub fn merge(
        dir: &Path,
        start: i64,
        end: i64,
        compress: bool,
        levels: &[Interval],
        parts: &[Partition],
    ) -> Result<Self> {
        let mut ids: Vec<u32> = parts.iter().flat_map(|p| p.series.iter().map(|(id, _, _)| *id)).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut w = PartitionWriter::create(dir, start, end, compress, levels)?;
        for id in ids {
            let mut all = SealedSeries::default();
            for p in parts {
                let Some(d) = p.read(id)? else { continue };
                all.points.extend(d.points);
                all.qualities.extend(d.qualities);
            }
            w.add(id, all)?;
        }
        let out = w.finish()?;
        for p in parts {
            std::fs::remove_file(&p.path).map_err(Error::io(&p.path))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_round_trip_and_damage_is_reported() {
        let dir = std::env::temp_dir().join(format!("ts-part-{}", std::process::id()));
        let data = SealedSeries {
            points: vec![(10, 1.5), (20, f64::NAN), (20, -0.0), (30, f64::INFINITY)],
            qualities: vec![(20, Quality::Suspect)],
            rollups: Vec::new(),
        };
        let p = Partition::write(&dir, 0, 100, true, &[], vec![(7, data.clone())]).expect("write");
        let back = p.read(7).expect("read").expect("present");
        assert_eq!(back.qualities, data.qualities);
        assert_eq!(back.points.len(), 4);
        for ((t1, v1), (t2, v2)) in back.points.iter().zip(&data.points) {
            assert_eq!((t1, v1.to_bits()), (t2, v2.to_bits()));
        }
        assert!(p.read(8).expect("read").is_none());
        let mut bytes = std::fs::read(&p.path).expect("bytes");
        let n = bytes.len();
        bytes[n - 5] ^= 0x40;
        std::fs::write(&p.path, &bytes).expect("write");
        assert!(matches!(Partition::open(&p.path), Err(Error::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_partition_stores_the_buckets_of_the_levels_complete_inside_it() {
        let dir = std::env::temp_dir().join(format!("ts-part-levels-{}", std::process::id()));
        let day = Interval::DAY;
        let levels = [Interval::MINUTE, day];
        let day_ns = day.nanos();
        let points: Vec<(i64, f64)> = (0..48).map(|h| (h * day_ns / 24 + 1, h as f64)).collect();
        let data = |from: usize, to: usize| SealedSeries { points: points[from..to].to_vec(), ..Default::default() };
        let whole = Partition::write(&dir, 0, 2 * day_ns, true, &levels, vec![(1, data(0, 48))]).expect("write");
        assert!(whole.stores(day) && !whole.stores(Interval::MINUTE), "1-minute buckets are not stored");
        let back = whole.read(1).expect("read").expect("present");
        let days: Vec<(i64, u64, Option<f64>)> =
            back.rollups[1].iter().map(|(s, a)| (*s, a.count(), a.sum())).collect();
        assert_eq!(days, vec![(0, 24, Some(276.0)), (day_ns, 24, Some(852.0))]);
        assert!(back.rollups[0].is_empty());
        let part = Partition::write(&dir, 0, day_ns / 12, true, &levels, vec![(1, data(0, 2))]).expect("write");
        assert!(!part.stores(day), "a 2-hour partition holds no complete day");
        assert!(part.read(1).expect("read").expect("present").rollups.iter().all(Vec::is_empty));
        std::fs::remove_dir_all(&dir).ok();
    }
}
