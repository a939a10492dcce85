//! Series identity and the inverted tag index: every distinct
//! (metric, tag set) gets a dense id, and each tag key/value has a roaring
//! bitmap of the series that carry it, so a query finds its series by
//! intersecting posting lists instead of scanning points.

use std::collections::{BTreeMap, HashMap};

use disk_format::varint::put_uvarint;
use regex::Regex;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::model::{MatchOp, Matcher};
use crate::{Error, Result};

/// A series: a metric and its sorted tag pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub metric: String,
    pub tags: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn new(metric: &str, tags: &BTreeMap<String, String>) -> Self {
        Self { metric: metric.to_owned(), tags: tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect() }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Postings of one metric: tag key -> tag value -> series ids.
#[derive(Debug, Default, Clone)]
struct MetricPostings {
    all: RoaringBitmap,
    by_tag: HashMap<String, HashMap<String, RoaringBitmap>>,
}

/// All series and their postings.
#[derive(Debug, Default)]
pub struct SeriesIndex {
    ids: HashMap<SeriesKey, u32>,
    keys: Vec<SeriesKey>,
    metrics: HashMap<String, MetricPostings>,
}

impl SeriesIndex {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, key: &SeriesKey) -> Option<u32> {
        self.ids.get(key).copied()
    }

    pub fn key(&self, id: u32) -> Option<&SeriesKey> {
        self.keys.get(id as usize)
    }

    /// The id the next new series gets.
    pub fn next_id(&self) -> u32 {
        self.keys.len() as u32
    }

    /// Adds a series under the next id (ids are dense and never reused).
    pub fn insert(&mut self, key: SeriesKey) -> u32 {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.keys.len() as u32;
        let postings = self.metrics.entry(key.metric.clone()).or_default();
        postings.all.insert(id);
        for (k, v) in &key.tags {
            postings.by_tag.entry(k.clone()).or_default().entry(v.clone()).or_default().insert(id);
        }
        self.ids.insert(key.clone(), id);
        self.keys.push(key);
        id
    }

    /// Series of `metric` that satisfy every matcher. A series without the
    /// key counts as having the empty value (so `k!=v` matches it).
    pub fn select(&self, metric: &str, matchers: &[Matcher]) -> Result<RoaringBitmap> {
        let Some(p) = self.metrics.get(metric) else { return Ok(RoaringBitmap::new()) };
        let mut out = p.all.clone();
        for m in matchers {
            let values = p.by_tag.get(&m.key);
            let union_where = |pred: &dyn Fn(&str) -> bool| -> RoaringBitmap {
                let mut u = RoaringBitmap::new();
                if let Some(values) = values {
                    for (v, ids) in values {
                        if pred(v) {
                            u |= ids;
                        }
                    }
                }
                if pred("") {
                    // series that lack the key
                    let mut with_key = RoaringBitmap::new();
                    for ids in values.into_iter().flat_map(HashMap::values) {
                        with_key |= ids;
                    }
                    u |= &p.all - &with_key;
                }
                u
            };
            let selected = match &m.op {
                MatchOp::Eq(v) => union_where(&|x| x == v),
                MatchOp::Ne(v) => union_where(&|x| x != v),
                MatchOp::In(set) => union_where(&|x| set.iter().any(|s| s == x)),
                MatchOp::Regex(re) => {
                    let re = anchored(re)?;
                    union_where(&|x| re.is_match(x))
                }
                MatchOp::NotRegex(re) => {
                    let re = anchored(re)?;
                    union_where(&|x| !re.is_match(x))
                }
            };
            out &= selected;
        }
        Ok(out)
    }

    /// Metric names and their series counts, sorted.
    pub fn metrics(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self.metrics.iter().map(|(m, p)| (m.clone(), p.all.len())).collect();
        v.sort();
        v
    }

    /// The index as bytes: a string table, then each series key as
    /// string numbers, all as LEB128 varints. Posting lists are not
    /// stored: they are derived from the keys, and rebuilding them on load
    /// costs less than the bytes (they were about half of the index).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut table = StringTable::default();
        let mut keys = Vec::with_capacity(self.keys.len() * 12);
        for k in &self.keys {
            put_uvarint(&mut keys, u64::from(table.intern(&k.metric)));
            put_uvarint(&mut keys, k.tags.len() as u64);
            for (tk, tv) in &k.tags {
                put_uvarint(&mut keys, u64::from(table.intern(tk)));
                put_uvarint(&mut keys, u64::from(table.intern(tv)));
            }
        }
        let mut out = Vec::with_capacity(keys.len() + table.strings.len() * 12);
        put_uvarint(&mut out, table.strings.len() as u64);
        for s in &table.strings {
            put_uvarint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        put_uvarint(&mut out, self.keys.len() as u64);
        out.extend_from_slice(&keys);
        Ok(out)
    }

    /// Reads what [`SeriesIndex::to_bytes`] wrote, rebuilding the postings;
    /// series keep their ids.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = disk_format::ByteReader::new(bytes, "series index");
        let n = r.uvarint32()? as usize;
        let mut table = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let len = r.uvarint32()? as usize;
            let offset = r.offset();
            let text = std::str::from_utf8(r.take(len)?).map_err(|source| disk_format::ReadError::Utf8 {
                what: "series index",
                offset,
                source,
            })?;
            table.push(text.to_owned());
        }
        let s = |i: u32| {
            table.get(i as usize).cloned().ok_or_else(|| Error::Codec(format!("string {i} is not in the index table")))
        };
        let count = r.uvarint32()? as usize;
        let mut index = Self::default();
        for id in 0..count {
            let metric = s(r.uvarint32()?)?;
            let ntags = r.uvarint32()? as usize;
            let mut tags = Vec::with_capacity(ntags.min(256));
            for _ in 0..ntags {
                tags.push((s(r.uvarint32()?)?, s(r.uvarint32()?)?));
            }
            if index.insert(SeriesKey { metric, tags }) as usize != id {
                return Err(Error::Codec(format!("series {id} repeats an earlier series key")));
            }
        }
        r.finish()?;
        Ok(index)
    }
}

/// Distinct strings in first-seen order, each written once.
#[derive(Default)]
struct StringTable<'a> {
    strings: Vec<&'a str>,
    slots: HashMap<&'a str, u32>,
}

impl<'a> StringTable<'a> {
    fn intern(&mut self, s: &'a str) -> u32 {
        let next = self.strings.len() as u32;
        let slot = *self.slots.entry(s).or_insert(next);
        if slot == next {
            self.strings.push(s);
        }
        slot
    }
}

fn anchored(re: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{re})$"))
        .map_err(|e| Error::InvalidRegex { pattern: re.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: &str, location: &str) -> SeriesKey {
        let tags: BTreeMap<String, String> =
            [("device_id", device), ("location", location)].iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        SeriesKey::new("sensor_temperature", &tags)
    }

    fn index() -> SeriesIndex {
        let mut idx = SeriesIndex::default();
        for d in ["device_001", "device_002", "device_003"] {
            for l in ["beijing", "shanghai", "guangzhou"] {
                idx.insert(key(d, l));
            }
        }
        idx.insert(SeriesKey {
            metric: "sensor_temperature".into(),
            tags: vec![("device_id".into(), "device_009".into())],
        });
        idx
    }

    #[test]
    fn matchers_select_the_right_series() {
        let idx = index();
        let sel = |ms: &[Matcher]| idx.select("sensor_temperature", ms).expect("select");
        assert_eq!(sel(&[Matcher::eq("location", "beijing")]).len(), 3);
        assert_eq!(sel(&[Matcher::eq("location", "beijing"), Matcher::eq("device_id", "device_002")]).len(), 1);
        assert_eq!(
            sel(&[Matcher::parse("location!=beijing").expect("m")]).len(),
            7,
            "includes the series without the key"
        );
        assert_eq!(sel(&[Matcher::parse("location=~shang.*|guang.*").expect("m")]).len(), 6);
        assert_eq!(sel(&[Matcher::parse("location!~.*").expect("m")]).len(), 0);
        assert_eq!(sel(&[Matcher::parse("device_id=in(device_001|device_009)").expect("m")]).len(), 4);
        assert_eq!(sel(&[Matcher::eq("location", "nowhere")]).len(), 0);
        assert!(idx.select("unknown", &[]).expect("select").is_empty());
        assert!(matches!(
            idx.select("sensor_temperature", &[Matcher::parse("a=~(").expect("m")]),
            Err(Error::InvalidRegex { .. })
        ));
    }

    #[test]
    fn ids_are_stable_and_the_index_round_trips() {
        let mut idx = index();
        assert_eq!(idx.insert(key("device_001", "beijing")), 0, "same key, same id");
        assert_eq!(idx.len(), 10);
        let copy = SeriesIndex::from_bytes(&idx.to_bytes().expect("bytes")).expect("read");
        assert_eq!(copy.len(), idx.len());
        for id in 0..idx.len() as u32 {
            assert_eq!(copy.key(id), idx.key(id));
            assert_eq!(copy.get(idx.key(id).expect("key")), Some(id));
        }
        let m = [Matcher::eq("location", "shanghai")];
        assert_eq!(copy.select("sensor_temperature", &m).expect("s"), idx.select("sensor_temperature", &m).expect("s"));
        assert!(SeriesIndex::from_bytes(&[1, 2, 3]).is_err());
    }

    #[test]
    fn damaged_index_bytes_are_refused() {
        // Strings "m", "k", "v"; then the same key twice.
        let mut bytes = vec![3, 1, b'm', 1, b'k', 1, b'v'];
        bytes.extend([2, 0, 1, 1, 2, 0, 1, 1, 2]);
        let err = SeriesIndex::from_bytes(&bytes).expect_err("repeated key");
        assert!(err.to_string().contains("repeats"), "{err}");
        let mut one = bytes[..7].to_vec();
        one.extend([1, 0, 1, 1, 2]);
        assert_eq!(SeriesIndex::from_bytes(&one).expect("one key").len(), 1);
        let mut trailing = one.clone();
        trailing.push(0);
        assert!(SeriesIndex::from_bytes(&trailing).is_err(), "bytes after the last key");
        let mut unknown_string = one.clone();
        unknown_string[10] = 7;
        let err = SeriesIndex::from_bytes(&unknown_string).expect_err("string number out of the table");
        assert!(err.to_string().contains("string 7"), "{err}");
        assert!(SeriesIndex::from_bytes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err(), "varint past 32 bits");
    }
}
