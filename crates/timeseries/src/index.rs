//! Series identity and the inverted tag index: every distinct
//! (metric, tag set) gets a dense id, and each tag key/value has a roaring
//! bitmap of the series that carry it, so a query finds its series by
//! intersecting posting lists instead of scanning points.

use std::collections::{BTreeMap, HashMap};

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

    /// Serializes the postings (roaring's portable format) and keys.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let keys = serde_json::to_vec(&self.keys).map_err(|e| Error::Codec(e.to_string()))?;
        out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
        out.extend_from_slice(&keys);
        let mut metrics: Vec<_> = self.metrics.iter().collect();
        metrics.sort_by(|a, b| a.0.cmp(b.0));
        out.extend_from_slice(&(metrics.len() as u64).to_le_bytes());
        for (metric, p) in metrics {
            write_str(&mut out, metric);
            write_bitmap(&mut out, &p.all)?;
            out.extend_from_slice(&(p.by_tag.len() as u64).to_le_bytes());
            for (k, values) in &p.by_tag {
                write_str(&mut out, k);
                out.extend_from_slice(&(values.len() as u64).to_le_bytes());
                for (v, ids) in values {
                    write_str(&mut out, v);
                    write_bitmap(&mut out, ids)?;
                }
            }
        }
        Ok(out)
    }

    /// Reads what [`SeriesIndex::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Cursor { bytes, at: 0 };
        let n = r.u64()? as usize;
        let keys: Vec<SeriesKey> = serde_json::from_slice(r.take(n)?).map_err(|e| Error::Codec(e.to_string()))?;
        let mut metrics = HashMap::new();
        for _ in 0..r.u64()? {
            let metric = r.str()?;
            let mut p = MetricPostings { all: r.bitmap()?, by_tag: HashMap::new() };
            for _ in 0..r.u64()? {
                let k = r.str()?;
                let mut values = HashMap::new();
                for _ in 0..r.u64()? {
                    let v = r.str()?;
                    values.insert(v, r.bitmap()?);
                }
                p.by_tag.insert(k, values);
            }
            metrics.insert(metric, p);
        }
        let ids = keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u32)).collect();
        Ok(Self { ids, keys, metrics })
    }
}

fn anchored(re: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{re})$"))
        .map_err(|e| Error::InvalidRegex { pattern: re.to_owned(), reason: e.to_string() })
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_bitmap(out: &mut Vec<u8>, b: &RoaringBitmap) -> Result<()> {
    out.extend_from_slice(&(b.serialized_size() as u64).to_le_bytes());
    b.serialize_into(&mut *out).map_err(|e| Error::Codec(e.to_string()))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| Error::Codec("index file is cut short".into()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u64()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| Error::Codec(e.to_string()))
    }
    fn bitmap(&mut self) -> Result<RoaringBitmap> {
        let n = self.u64()? as usize;
        RoaringBitmap::deserialize_from(self.take(n)?).map_err(|e| Error::Codec(e.to_string()))
    }
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
}
