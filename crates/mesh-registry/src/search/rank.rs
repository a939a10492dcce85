//! The one collector a search runs: over the matching products it keeps
//! the best `limit` by final score (text relevance × quality × status),
//! ties broken by name and then id, and remembers the matches; at harvest
//! it tallies their four facets in one tight loop.
//!
//! The facet numbers, sort-key ordinal and rank factor of each document
//! are read from the fast fields once per segment and kept in a
//! [`SegmentCache`] (a segment never changes; a merge makes a new one), so
//! the per-match work is array lookups instead of six column decodes.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::index::SegmentId;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, TantivyError};

use super::{DEPRECATED, RETIRED, fields};

/// A number that does not fit.
const NONE: u32 = u32::MAX;

/// The multiplier quality gives a score: `0.5 + 0.5 × quality`, with an
/// unmeasured quality (stored as a negative number) counted as
/// [`super::UNMEASURED_QUALITY`].
pub(super) fn quality_factor(stored: f64) -> f32 {
    let q = if stored < 0.0 { super::UNMEASURED_QUALITY } else { stored.min(1.0) };
    (0.5 + 0.5 * q) as f32
}

/// Per facet, the number of matching products for each value ordinal.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub domain: Vec<u64>,
    pub owner: Vec<u64>,
    pub tag: Vec<u64>,
    pub status: Vec<u64>,
}

fn add(into: &mut Vec<u64>, from: &[u64]) {
    if from.len() > into.len() {
        into.resize(from.len(), 0);
    }
    into.iter_mut().zip(from).for_each(|(a, b)| *a += b);
}

/// What a search collected.
#[derive(Debug, Default)]
pub(super) struct Ranked {
    /// The best products, best first: final score and sort key.
    pub top: Vec<(Score, String)>,
    /// How many products matched.
    pub total: u64,
    pub tally: Tally,
}

/// Collects [`Ranked`]. Without `scoring` (an empty query) every match has
/// text relevance 1, so the order is quality × status, then name.
#[derive(Debug)]
pub(super) struct RankCollector<'a> {
    pub limit: usize,
    pub scoring: bool,
    /// Skip retired products.
    pub hide_retired: bool,
    pub cache: &'a SegmentCache,
}

/// One kept candidate of a segment. `Ord` puts the worst on top of the heap.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: Score,
    /// The segment's ordinal of the sort key; segment dictionaries are
    /// sorted, so within a segment ordinals compare like the keys.
    key: u32,
    doc: DocId,
}

impl Candidate {
    /// `Less` when `self` ranks before `other`.
    fn rank(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then(self.key.cmp(&other.key)).then(self.doc.cmp(&other.doc))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

/// One document's facet numbers and the factor quality and status give
/// its score.
#[derive(Debug, Clone, Copy)]
struct DocFacets {
    domain: u32,
    owner: u32,
    /// The sort key's ordinal in the segment's (sorted) dictionary.
    key: u32,
    factor: f32,
    /// Its tags are `tags[tags_from..tags_from + tag_count]`.
    tags_from: u32,
    tag_count: u16,
    status: u16,
}

/// The facets of every document of one segment. A document without a
/// value for a facet has that facet's `sink` number: one past the largest
/// real one, so counting never needs a test.
pub(super) struct SegmentFacets {
    /// The sort keys, to turn the kept ordinals back into keys.
    keys: StrColumn,
    docs: Vec<DocFacets>,
    tags: Vec<u32>,
    /// Per facet (domain, owner, tag, status), the sink number.
    sinks: [u32; 4],
}

fn number(n: Option<u64>) -> Option<u32> {
    n.and_then(|n| u32::try_from(n).ok())
}

impl SegmentFacets {
    fn read(segment: &SegmentReader) -> tantivy::Result<SegmentFacets> {
        let ff = segment.fast_fields();
        let (domain, owner, status) =
            (ff.u64(fields::DOMAIN_ORD)?, ff.u64(fields::OWNER_ORD)?, ff.u64(fields::STATUS_ORD)?);
        let (tag, quality) = (ff.u64(fields::TAG_ORD)?, ff.f64(fields::QUALITY)?);
        let keys = ff
            .str(fields::KEY)?
            .ok_or_else(|| TantivyError::SchemaError(format!("fast field `{}` is missing", fields::KEY)))?;
        let max_doc = segment.max_doc();
        // Facet numbers are small (they count distinct values), so the sink
        // of each facet is one past its largest number in the segment.
        let sink = |c: &tantivy::columnar::Column<u64>| number(Some(c.max_value().saturating_add(1))).unwrap_or(NONE);
        let sinks = [sink(&domain), sink(&owner), sink(&tag), sink(&status).min(u32::from(u16::MAX))];
        let mut facets =
            SegmentFacets { keys: keys.clone(), docs: Vec::with_capacity(max_doc as usize), tags: Vec::new(), sinks };
        for doc in 0..max_doc {
            let status = number(status.first(doc)).filter(|&s| s < sinks[3]).unwrap_or(sinks[3]) as u16;
            let deprecated = if u64::from(status) == DEPRECATED { 0.5 } else { 1.0 };
            let factor = quality_factor(quality.first(doc).unwrap_or(-1.0)) * deprecated;
            let tags_from = facets.tags.len() as u32;
            facets.tags.extend(tag.values_for_doc(doc).filter_map(|t| number(Some(t))));
            facets.docs.push(DocFacets {
                domain: number(domain.first(doc)).unwrap_or(sinks[0]),
                owner: number(owner.first(doc)).unwrap_or(sinks[1]),
                key: number(keys.ords().first(doc)).unwrap_or(NONE),
                factor,
                tags_from,
                tag_count: (facets.tags.len() as u32 - tags_from).min(u32::from(u16::MAX)) as u16,
                status,
            });
        }
        Ok(facets)
    }
}

/// [`SegmentFacets`] of the segments searched so far.
#[derive(Default)]
pub(super) struct SegmentCache(Mutex<HashMap<SegmentId, Arc<SegmentFacets>>>);

impl std::fmt::Debug for SegmentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let segments = self.0.lock().map_or(0, |m| m.len());
        f.debug_struct("SegmentCache").field("segments", &segments).finish()
    }
}

impl SegmentCache {
    fn get(&self, segment: &SegmentReader) -> tantivy::Result<Arc<SegmentFacets>> {
        let id = segment.segment_id();
        let lock = || self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = lock().get(&id) {
            return Ok(Arc::clone(found));
        }
        let read = Arc::new(SegmentFacets::read(segment)?);
        lock().insert(id, Arc::clone(&read));
        Ok(read)
    }

    /// Forgets the segments no longer in the index.
    pub fn retain(&self, live: &[SegmentReader]) {
        let live: HashSet<SegmentId> = live.iter().map(SegmentReader::segment_id).collect();
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|id, _| live.contains(id));
    }
}

/// The per-segment half of [`RankCollector`].
pub(super) struct SegmentRank {
    limit: usize,
    scoring: bool,
    hide_retired: bool,
    facets: Arc<SegmentFacets>,
    heap: BinaryHeap<Candidate>,
    /// The worst kept score once the heap is full: anything below it is out.
    floor: Score,
    /// The matching documents, in order.
    matched: Vec<DocId>,
}

/// A segment's harvest; an I/O error reading the keys fails the search.
pub(super) type SegmentFruit = Result<Ranked, std::io::Error>;

impl Collector for RankCollector<'_> {
    type Fruit = Ranked;
    type Child = SegmentRank;

    fn for_segment(&self, _: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<SegmentRank> {
        Ok(SegmentRank {
            limit: self.limit,
            scoring: self.scoring,
            hide_retired: self.hide_retired,
            facets: self.cache.get(segment)?,
            heap: BinaryHeap::with_capacity(self.limit.min(1024) + 1),
            floor: Score::NEG_INFINITY,
            matched: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scoring
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Ranked> {
        let mut all = Ranked::default();
        for fruit in fruits {
            let fruit = fruit?;
            all.total += fruit.total;
            all.top.extend(fruit.top);
            add(&mut all.tally.domain, &fruit.tally.domain);
            add(&mut all.tally.owner, &fruit.tally.owner);
            add(&mut all.tally.tag, &fruit.tally.tag);
            add(&mut all.tally.status, &fruit.tally.status);
        }
        all.top.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        all.top.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for SegmentRank {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Some(&d) = self.facets.docs.get(doc as usize) else { return };
        if self.hide_retired && u64::from(d.status) == RETIRED {
            return;
        }
        // Facets are tallied at harvest, in one tight loop each.
        self.matched.push(doc);
        if self.limit == 0 {
            return;
        }
        let score = if self.scoring { score * d.factor } else { d.factor };
        if self.heap.len() < self.limit {
            self.heap.push(Candidate { score, key: d.key, doc });
            self.floor = self.heap.peek().map_or(Score::NEG_INFINITY, |w| w.score);
        } else if score >= self.floor {
            let candidate = Candidate { score, key: d.key, doc };
            let replaced = match self.heap.peek_mut() {
                // Dropping the `PeekMut` moves the new candidate down into place.
                Some(mut worst) if candidate < *worst => {
                    *worst = candidate;
                    true
                }
                _ => false,
            };
            if replaced {
                self.floor = self.heap.peek().map_or(Score::NEG_INFINITY, |w| w.score);
            }
        }
    }

    fn harvest(self) -> SegmentFruit {
        let f = &*self.facets;
        let mut top = Vec::with_capacity(self.heap.len());
        for c in self.heap.into_vec() {
            let mut key = String::new();
            f.keys.ord_to_str(u64::from(c.key), &mut key)?;
            top.push((c.score, key));
        }
        let width = |sink: u32| sink as usize + 1;
        let mut domain = vec![0u64; width(f.sinks[0])];
        let mut owner = vec![0u64; width(f.sinks[1])];
        let mut status = vec![0u64; width(f.sinks[3])];
        let mut tag = vec![0u64; width(f.sinks[2])];
        for &doc in &self.matched {
            let d = f.docs[doc as usize];
            domain[d.domain as usize] += 1;
            owner[d.owner as usize] += 1;
            status[usize::from(d.status)] += 1;
            let from = d.tags_from as usize;
            for &t in &f.tags[from..from + usize::from(d.tag_count)] {
                tag[t as usize] += 1;
            }
        }
        // Drop the sinks.
        for (counts, sink) in [(&mut domain, f.sinks[0]), (&mut owner, f.sinks[1]), (&mut status, f.sinks[3])] {
            counts.truncate(sink as usize);
        }
        tag.truncate(f.sinks[2] as usize);
        Ok(Ranked { top, total: self.matched.len() as u64, tally: Tally { domain, owner, tag, status } })
    }
}
