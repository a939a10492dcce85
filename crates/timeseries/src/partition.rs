//! Sealed partitions: once a time partition can no longer receive points
//! (it ends before the newest point minus the out-of-order window), each
//! series' points are compressed into one immutable block (pco, see
//! [`crate::codec::block`]) together with the rollup buckets that end in the
//! partition, and written to `blocks/<metric>/<start>.part` with a CRC per
//! series record. Memory then keeps only a small directory per partition.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use disk_format::ByteReader;
use disk_format::frame::{self as framing, FrameWriter, Scan};

use crate::aggregate::BucketAgg;
use crate::codec::Block;
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
    series: HashMap<u32, (u64, usize)>,
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
    /// Writes a partition atomically (temp file, fsync, rename, fsync dir).
    pub fn write(dir: &Path, start: i64, end: i64, compress: bool, series: &[(u32, SealedSeries)]) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut w = FrameWriter::default();
        let s = w.begin(META);
        w.i64(start);
        w.i64(end);
        w.finish(s)?;
        for (id, data) in series {
            let s = w.begin(SERIES);
            w.u32(*id);
            let (ts, vs): (Vec<i64>, Vec<f64>) = data.points.iter().copied().unzip();
            w.bytes(&Block::encode(&ts, &vs, compress)?)?;
            w.u32(data.qualities.len() as u32);
            for (t, q) in &data.qualities {
                w.i64(*t);
                w.buf.push(quality_byte(*q));
            }
            w.u32(data.rollups.len() as u32);
            for level in &data.rollups {
                w.u32(level.len() as u32);
                for (bucket, agg) in level {
                    w.i64(*bucket);
                    w.bytes(&agg.to_bytes()?)?;
                }
            }
            w.finish(s)?;
        }
        let path = dir.join(format!("{start}-{end}.part"));
        let tmp = dir.join(format!("{start}-{end}.part.tmp"));
        let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
        f.write_all(&w.buf).and_then(|()| f.sync_all()).map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io(&path))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))?;
        Self::open(&path)
    }

    /// Reads a partition's directory; any damage is an error naming the offset.
    pub fn open(path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
        let mut r = BufReader::new(File::open(path).map_err(Error::io(path))?);
        let corrupt = |offset: u64, reason: String| Error::Corrupt { path: path.display().to_string(), offset, reason };
        let (mut offset, mut buf) = (0u64, Vec::new());
        let mut meta = None;
        let mut series = HashMap::new();
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
                        META => meta = Some((f.i64()?, f.i64()?)),
                        SERIES => {
                            series.insert(f.u32()?, (offset, size as usize));
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
        Ok(Self { start, end, path: path.to_owned(), bytes: len, points, block_bytes, series })
    }

    pub fn contains(&self, id: u32) -> bool {
        self.series.contains_key(&id)
    }

    /// The sealed data of one series, if the partition has any.
    pub fn read(&self, id: u32) -> Result<Option<SealedSeries>> {
        let Some((offset, size)) = self.series.get(&id).copied() else { return Ok(None) };
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
    pub fn merge(dir: &Path, start: i64, end: i64, compress: bool, parts: &[Partition]) -> Result<Self> {
        let mut ids: Vec<u32> = parts.iter().flat_map(|p| p.series.keys().copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut merged = Vec::with_capacity(ids.len());
        for id in ids {
            let mut all = SealedSeries::default();
            for p in parts {
                let Some(d) = p.read(id)? else { continue };
                all.points.extend(d.points);
                all.qualities.extend(d.qualities);
                if all.rollups.len() < d.rollups.len() {
                    all.rollups.resize_with(d.rollups.len(), Vec::new);
                }
                for (level, buckets) in d.rollups.into_iter().enumerate() {
                    all.rollups[level].extend(buckets);
                }
            }
            merged.push((id, all));
        }
        let out = Self::write(dir, start, end, compress, &merged)?;
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
        let mut agg = BucketAgg::new();
        agg.add(10, 1.5).expect("add");
        let data = SealedSeries {
            points: vec![(10, 1.5), (20, f64::NAN), (20, -0.0), (30, f64::INFINITY)],
            qualities: vec![(20, Quality::Suspect)],
            rollups: vec![vec![(0, agg)], vec![]],
        };
        let p = Partition::write(&dir, 0, 100, true, &[(7, data.clone())]).expect("write");
        let back = p.read(7).expect("read").expect("present");
        assert_eq!(back.qualities, data.qualities);
        assert_eq!(back.points.len(), 4);
        for ((t1, v1), (t2, v2)) in back.points.iter().zip(&data.points) {
            assert_eq!((t1, v1.to_bits()), (t2, v2.to_bits()));
        }
        assert_eq!(back.rollups[0][0].1.count(), 1);
        assert!(p.read(8).expect("read").is_none());
        let mut bytes = std::fs::read(&p.path).expect("bytes");
        let n = bytes.len();
        bytes[n - 5] ^= 0x40;
        std::fs::write(&p.path, &bytes).expect("write");
        assert!(matches!(Partition::open(&p.path), Err(Error::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }
}
