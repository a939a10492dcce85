//! Series identity and the inverted tag index: every distinct
//! (metric, tag set) gets a dense id, and each tag key/value has a posting
//! list of the series that carry it, so a query finds its series by
//! intersecting posting lists instead of scanning points.
//!
//! Built for millions of series: every distinct string is kept once
//! ([`Strings`]); a series' key is a few varint string numbers in one shared
//! byte arena ([`SeriesIds`]); a posting that holds one series (a host name,
//! say) is that id itself, and only a value shared by several series gets a
//! roaring bitmap.

use std::hash::{Hash, Hasher};

use disk_format::varint::put_uvarint;
use hashbrown::HashTable;
use regex::Regex;
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
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
    pub fn new(metric: &str, tags: &std::collections::BTreeMap<String, String>) -> Self {
        Self { metric: metric.to_owned(), tags: tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect() }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Strings are hashed with foldhash (fixed seed: the hashes never leave the
/// process). FxHash was tried first: its weak high bits, which the table's
/// probe tags come from, made a lookup compare about a dozen stored keys at
/// a million series.
fn hasher() -> impl Hasher {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x7469_6d65_7365_7269).build_hasher()
}

/// The hash a series is found by, of the metric and its tag pairs in
/// order. Collisions only cost a comparison; keys are always compared.
pub fn key_hash<'a>(metric: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = hasher();
    // `str`'s `Hash` ends each string, so `ab`,`c` and `a`,`bc` differ.
    metric.hash(&mut h);
    for (k, v) in tags {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn str_hash(s: &str) -> u64 {
    let mut h = hasher();
    s.hash(&mut h);
    h.finish()
}

/// Distinct strings, each stored once and numbered in first-seen order.
#[derive(Debug, Default)]
struct Strings {
    list: Vec<Box<str>>,
    table: HashTable<u32>,
}

impl Strings {
    fn find(&self, s: &str) -> Option<u32> {
        self.table.find(str_hash(s), |i| &*self.list[*i as usize] == s).copied()
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(i) = self.find(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s.into());
        let list = &self.list;
        self.table.insert_unique(str_hash(s), i, |j| str_hash(&list[*j as usize]));
        i
    }

    fn get(&self, i: u32) -> &str {
        self.list.get(i as usize).map_or("", |s| s)
    }

    fn heap_bytes(&self) -> usize {
        self.list.capacity() * 16 + self.list.iter().map(|s| s.len()).sum::<usize>() + self.table.capacity() * 5
    }
}

/// One series' key as stored: string numbers in the arena.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    strings: &'a Strings,
    bytes: &'a [u8],
}

impl<'a> KeyRef<'a> {
    fn numbers(&self) -> impl Iterator<Item = u32> + 'a {
        let mut r = disk_format::ByteReader::new(self.bytes, "series key");
        std::iter::from_fn(move || r.uvarint32().ok())
    }

    fn metric_number(&self) -> u32 {
        self.numbers().next().unwrap_or(u32::MAX)
    }

    pub fn metric(&self) -> &'a str {
        self.strings.get(self.metric_number())
    }

    /// Tag pairs in key order.
    pub fn tags(&self) -> Tags<'a> {
        let mut reader = disk_format::ByteReader::new(self.bytes, "series key");
        let _metric = reader.uvarint32();
        Tags { strings: self.strings, reader }
    }

    pub fn tag(&self, key: &str) -> Option<&'a str> {
        self.tags().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The tags as owned pairs.
    pub fn tag_pairs(&self) -> Vec<(String, String)> {
        self.tags().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    pub fn to_key(&self) -> SeriesKey {
        SeriesKey { metric: self.metric().to_owned(), tags: self.tag_pairs() }
    }

    fn equals<'b>(&self, metric: &str, tags: impl IntoIterator<Item = (&'b str, &'b str)>) -> bool {
        if self.metric() != metric {
            return false;
        }
        let mut mine = self.tags();
        for (k, v) in tags {
            match mine.next() {
                Some((a, b)) if a == k && b == v => {}
                _ => return false,
            }
        }
        mine.next().is_none()
    }
}

/// A stored key's tag pairs, decoded as they are read.
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    strings: &'a Strings,
    reader: disk_format::ByteReader<'a>,
}

impl<'a> Iterator for Tags<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let k = self.reader.uvarint32().ok()?;
        let v = self.reader.uvarint32().ok()?;
        Some((self.strings.get(k), self.strings.get(v)))
    }
}

impl PartialEq<SeriesKey> for KeyRef<'_> {
    fn eq(&self, other: &SeriesKey) -> bool {
        self.equals(&other.metric, other.pairs())
    }
}

fn key_at<'a>(strings: &'a Strings, arena: &'a [u8], starts: &[u64], id: u32) -> Option<KeyRef<'a>> {
    let (lo, hi) = (*starts.get(id as usize)?, *starts.get(id as usize + 1)?);
    Some(KeyRef { strings, bytes: arena.get(lo as usize..hi as usize)? })
}

/// Series identities: (metric, tags) to a dense id and back, about 25 bytes
/// of key a series plus its strings' share.
#[derive(Debug, Default)]
pub struct SeriesIds {
    strings: Strings,
    /// Series `i`'s key is `arena[starts[i]..starts[i + 1]]`: metric, then
    /// key and value string numbers, as varints.
    arena: Vec<u8>,
    starts: Vec<u64>,
    table: HashTable<u32>,
}

impl SeriesIds {
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn key(&self, id: u32) -> Option<KeyRef<'_>> {
        key_at(&self.strings, &self.arena, &self.starts, id)
    }

    /// The id of a series, `hash` being its [`key_hash`].
    pub fn find<'b, I>(&self, hash: u64, metric: &str, tags: I) -> Option<u32>
    where
        I: IntoIterator<Item = (&'b str, &'b str)> + Clone,
    {
        self.table.find(hash, |id| self.key(*id).is_some_and(|k| k.equals(metric, tags.clone()))).copied()
    }

    /// The series' id, registering it under the next id if it is new;
    /// `true` when it was new.
    pub fn insert<'b, I>(&mut self, hash: u64, metric: &str, tags: I) -> (u32, bool)
    where
        I: IntoIterator<Item = (&'b str, &'b str)> + Clone,
    {
        if let Some(id) = self.find(hash, metric, tags.clone()) {
            return (id, false);
        }
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        let id = self.len() as u32;
        put_uvarint(&mut self.arena, u64::from(self.strings.intern(metric)));
        for (k, v) in tags {
            put_uvarint(&mut self.arena, u64::from(self.strings.intern(k)));
            put_uvarint(&mut self.arena, u64::from(self.strings.intern(v)));
        }
        self.starts.push(self.arena.len() as u64);
        let (strings, arena, starts) = (&self.strings, &self.arena, &self.starts);
        let rehash = |id: &u32| key_at(strings, arena, starts, *id).map_or(0, |k| key_hash(k.metric(), k.tags()));
        self.table.insert_unique(hash, id, rehash);
        (id, true)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.strings.heap_bytes() + self.arena.capacity() + self.starts.capacity() * 8 + self.table.capacity() * 5
    }
}

/// A posting of one series is its id; one of several is `MANY | n`, the
/// n-th bitmap.
const MANY: u32 = 1 << 31;

/// All series and their postings.
#[derive(Debug, Default)]
pub struct SeriesIndex {
    ids: SeriesIds,
    /// (metric, tag key, tag value) string numbers to a posting.
    postings: FxHashMap<(u32, u32, u32), u32>,
    bitmaps: Vec<RoaringBitmap>,
    /// The values each (metric, tag key) has, for scans by predicate.
    values: FxHashMap<(u32, u32), Vec<u32>>,
    /// Every series of a metric.
    all: FxHashMap<u32, RoaringBitmap>,
}

impl SeriesIndex {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, key: &SeriesKey) -> Option<u32> {
        self.ids.find(key_hash(&key.metric, key.pairs()), &key.metric, key.pairs())
    }

    pub fn key(&self, id: u32) -> Option<KeyRef<'_>> {
        self.ids.key(id)
    }

    /// The id the next new series gets.
    pub fn next_id(&self) -> u32 {
        self.ids.len() as u32
    }

    /// Adds a series under the next id (ids are dense and never reused).
    pub fn insert(&mut self, key: SeriesKey) -> u32 {
        let hash = key_hash(&key.metric, key.pairs());
        let (id, new) = self.ids.insert(hash, &key.metric, key.pairs());
        if !new {
            return id;
        }
        let Some(stored) = self.ids.key(id) else { return id };
        let numbers: Vec<u32> = stored.numbers().collect();
        let metric = numbers[0];
        self.all.entry(metric).or_default().insert(id);
        for pair in numbers[1..].chunks_exact(2) {
            let (k, v) = (pair[0], pair[1]);
            match self.postings.get(&(metric, k, v)).copied() {
                None => {
                    self.postings.insert((metric, k, v), id);
                    self.values.entry((metric, k)).or_default().push(v);
                }
                Some(p) if p & MANY == 0 => {
                    let bitmap: RoaringBitmap = [p, id].into_iter().collect();
                    self.postings.insert((metric, k, v), MANY | self.bitmaps.len() as u32);
                    self.bitmaps.push(bitmap);
                }
                Some(p) => {
                    if let Some(b) = self.bitmaps.get_mut((p & !MANY) as usize) {
                        b.insert(id);
                    }
                }
            }
        }
        id
    }

    fn or_posting(&self, posting: u32, into: &mut RoaringBitmap) {
        if posting & MANY == 0 {
            into.insert(posting);
        } else if let Some(b) = self.bitmaps.get((posting & !MANY) as usize) {
            *into |= b;
        }
    }

    /// Series of `metric` that satisfy every matcher. A series without the
    /// key counts as having the empty value (so `k!=v` matches it).
    pub fn select(&self, metric: &str, matchers: &[Matcher]) -> Result<RoaringBitmap> {
        let Some(m) = self.ids.strings.find(metric) else { return Ok(RoaringBitmap::new()) };
        let Some(all) = self.all.get(&m) else { return Ok(RoaringBitmap::new()) };
        let mut out = all.clone();
        for matcher in matchers {
            let key = self.ids.strings.find(&matcher.key);
            let values = key.and_then(|k| self.values.get(&(m, k)).map(|v| (k, v)));
            let union_where = |pred: &dyn Fn(&str) -> bool| -> RoaringBitmap {
                let mut u = RoaringBitmap::new();
                let mut with_key = RoaringBitmap::new();
                if let Some((k, vs)) = values {
                    for v in vs {
                        let Some(p) = self.postings.get(&(m, k, *v)).copied() else { continue };
                        if pred(self.ids.strings.get(*v)) {
                            self.or_posting(p, &mut u);
                        }
                        self.or_posting(p, &mut with_key);
                    }
                }
                if pred("") {
                    // series that lack the key
                    u |= all - &with_key;
                }
                u
            };
            // An equality needs only its own posting (and, for "", the scan).
            let exact = |v: &str| -> RoaringBitmap {
                let mut u = RoaringBitmap::new();
                if let (Some((k, _)), Some(vn)) = (values, self.ids.strings.find(v))
                    && let Some(p) = self.postings.get(&(m, k, vn)).copied()
                {
                    self.or_posting(p, &mut u);
                }
                u
            };
            let selected = match &matcher.op {
                MatchOp::Eq(v) if !v.is_empty() => exact(v),
                MatchOp::In(set) if set.iter().all(|v| !v.is_empty()) => {
                    let mut u = RoaringBitmap::new();
                    for v in set {
                        u |= exact(v);
                    }
                    u
                }
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
        let mut v: Vec<_> = self.all.iter().map(|(m, p)| (self.ids.strings.get(*m).to_owned(), p.len())).collect();
        v.sort();
        v
    }

    /// Heap bytes held by the identities and postings.
    pub fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes()
            + self.postings.capacity() * 17
            + self.bitmaps.iter().map(|b| b.serialized_size() + 48).sum::<usize>()
            + self.values.values().map(|v| v.capacity() * 4 + 40).sum::<usize>()
            + self.all.values().map(|b| b.serialized_size()).sum::<usize>()
    }

    /// The index as bytes: a string table, then each series key as
    /// string numbers, all as LEB128 varints. Posting lists are not
    /// stored: they are derived from the keys, and rebuilding them on load
    /// costs less than the bytes (they were about half of the index).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let strings = &self.ids.strings.list;
        let mut out = Vec::with_capacity(self.ids.arena.len() + strings.len() * 12);
        put_uvarint(&mut out, strings.len() as u64);
        for s in strings {
            put_uvarint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        put_uvarint(&mut out, self.len() as u64);
        for id in 0..self.len() as u32 {
            let Some(k) = self.ids.key(id) else { continue };
            let numbers: Vec<u32> = k.numbers().collect();
            put_uvarint(&mut out, u64::from(numbers[0]));
            put_uvarint(&mut out, (numbers.len() / 2) as u64);
            for n in &numbers[1..] {
                put_uvarint(&mut out, u64::from(*n));
            }
        }
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
            table.push(text);
        }
        let s = |i: u32| {
            table.get(i as usize).copied().ok_or_else(|| Error::Codec(format!("string {i} is not in the index table")))
        };
        let count = r.uvarint32()? as usize;
        let mut index = Self::default();
        let mut tags: Vec<(&str, &str)> = Vec::new();
        for id in 0..count {
            let metric = s(r.uvarint32()?)?;
            let ntags = r.uvarint32()? as usize;
            tags.clear();
            for _ in 0..ntags {
                tags.push((s(r.uvarint32()?)?, s(r.uvarint32()?)?));
            }
            let key = SeriesKey {
                metric: metric.to_owned(),
                tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            };
            if index.insert(key) as usize != id {
                return Err(Error::Codec(format!("series {id} repeats an earlier series key")));
            }
        }
        r.finish()?;
        Ok(index)
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
        let tags: std::collections::BTreeMap<String, String> =
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
            let key = idx.key(id).expect("key").to_key();
            assert_eq!(copy.key(id).expect("key").to_key(), key);
            assert_eq!(copy.get(&key), Some(id));
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

    fn naive_match(m: &Matcher, x: &str) -> bool {
        match &m.op {
            MatchOp::Eq(v) => x == v,
            MatchOp::Ne(v) => x != v,
            MatchOp::In(set) => set.iter().any(|v| v == x),
            MatchOp::Regex(re) => anchored(re).expect("regex").is_match(x),
            MatchOp::NotRegex(re) => !anchored(re).expect("regex").is_match(x),
        }
    }

    proptest::proptest! {
        /// Every matcher kind selects what a scan over the keys selects,
        /// whether a value has one series (an id as posting) or many.
        #[test]
        fn select_equals_a_scan_of_the_keys(
            series in proptest::collection::vec((0u8..3, 0u8..40, proptest::option::of(0u8..3)), 1..200),
            value in 0u8..40,
        ) {
            let mut idx = SeriesIndex::default();
            let mut keys = Vec::new();
            for (metric, host, rack) in series {
                let mut tags = vec![("host".to_owned(), format!("h{host}"))];
                if let Some(r) = rack {
                    tags.push(("rack".to_owned(), format!("r{r}")));
                }
                let key = SeriesKey { metric: format!("m{metric}"), tags };
                let id = idx.insert(key.clone());
                if id as usize == keys.len() {
                    keys.push(key);
                }
                proptest::prop_assert_eq!(&keys[id as usize], &idx.key(id).expect("key").to_key());
            }
            let host = format!("h{value}");
            let matchers = [
                Matcher::eq("host", &host),
                Matcher { key: "host".into(), op: MatchOp::Ne(host.clone()) },
                Matcher::eq("rack", "r1"),
                Matcher::eq("rack", ""),
                Matcher { key: "rack".into(), op: MatchOp::Ne("r1".into()) },
                Matcher { key: "host".into(), op: MatchOp::In(vec![host.clone(), "h1".into()]) },
                Matcher { key: "host".into(), op: MatchOp::Regex("h1.*".into()) },
                Matcher { key: "rack".into(), op: MatchOp::NotRegex("r[01]".into()) },
                Matcher::eq("nokey", "x"),
            ];
            for m in &matchers {
                let want: Vec<u32> = keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| k.metric == "m1" && naive_match(m, k.tag(&m.key).unwrap_or("")))
                    .map(|(i, _)| i as u32)
                    .collect();
                let got: Vec<u32> = idx.select("m1", std::slice::from_ref(m)).expect("select").iter().collect();
                proptest::prop_assert_eq!(got, want, "{:?}", m);
            }
        }
    }
}
