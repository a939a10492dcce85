//! Discovery over data products: full-text search over name, tags, field
//! names, description, owner and domain, four facets (domain, owner, tag,
//! status), ranked by text relevance and live quality.
//!
//! The index lives in RAM ([`tantivy`]'s RAM directory, no features needed
//! beyond the defaults-off build); the registry rebuilds it from its durable
//! catalogue on start with [`SearchIndex::upsert_many`] (50,000 products
//! in about half a second on two cores). It holds a [`SearchDoc`] per
//! product, a shape of its own: the registry maps its products onto it.
//!
//! # Matching
//!
//! A query is words, not syntax: anything that is not a letter or digit
//! separates words (`master_data` is `master data`; `AND`, `(`, `:`, `*`
//! are ignored), camelCase splits (`customerId` is `customer id`, and also
//! matches `customerid`), case and English plurals are folded (`Customers`
//! matches `customer`). Every word must occur in some field, as a word or
//! as the start of one: `cust` finds "Customer Master Data". (A word is
//! looked up as a prefix in names and tags always, and in the other fields
//! where it is not a word of its own, so a complete word does not also
//! drag in every `customerId` of every field list.) Only when no product
//! has all the words are products with any of them returned, and
//! [`SearchResults::partial`] says so. Common English words (`the`, `of`,
//! `and`, ...) are dropped from a query that has other words. CJK text
//! (Chinese, Japanese, Korean) is indexed as single characters and pairs
//! of adjacent characters: every character of the query must occur, and
//! pairs that also occur in the product add to its score, so `主数据` and
//! `客户数据` both find `客户主数据`.
//!
//! # Ranking
//!
//! ```text
//! score = relevance × (0.5 + 0.5 × quality) × (0.5 if deprecated else 1)
//! relevance = Σ over query words, over fields:
//!               boost(field) × BM25(word, field)          the word itself
//!             + boost(field) × 0.5                        a word starting with it
//! boost: name 5, tags 3, field names 2, description 1, owner and domain 0.5
//! ```
//!
//! A quality not measured yet counts as [`UNMEASURED_QUALITY`] (0.8), so a
//! new product is neither buried nor promoted. Retired products are never
//! returned unless the filter asks for `status = retired`. An empty query
//! (or one without a single word, like `*`) lists everything the filter
//! lets through with relevance 1: by quality (with the deprecated factor),
//! then by name. Ties are broken by name, then id, so an order never
//! depends on how the index happens to be segmented.
//!
//! # Facets
//!
//! Counted over every product that matched (not only the returned hits),
//! after the filter, by the collector that ranks them. Facet values are
//! numbered as they are first indexed, and each segment's numbers, sort
//! keys and rank factors are decoded from its fast fields once into plain
//! arrays, so counting is array increments.
//!
//! # Writes and visibility
//!
//! One tantivy writer behind a mutex. An upsert only queues its document
//! (the writer's threads tokenize it); the commit that makes writes
//! visible happens on [`SearchIndex::commit`], at the end of
//! [`SearchIndex::upsert_many`], or lazily at the start of the next search
//! that finds uncommitted writes. So registering 10,000 products one by one
//! costs 10,000 queued documents and as many commits as there were searches
//! in between, never one commit per product, and a search always sees every
//! write that returned before it began. A commit costs a few milliseconds
//! whatever it holds (tantivy starts a new segment writer), so that is what
//! the first search after a write pays. Upserting a document identical to
//! the indexed one does nothing. The methods block; call them from
//! `spawn_blocking` in latency-sensitive async code. A search waits while
//! an `upsert_many` holds the writer.

mod directory;
mod rank;
mod text;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, FuzzyTermQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::{Error, Result};
use rank::{RankCollector, Ranked, SegmentCache, Tally};
use text::{MeshTokenizer, QueryTerm};

/// The quality a product not measured yet is ranked with.
pub const UNMEASURED_QUALITY: f64 = 0.8;

/// One product as the index sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchDoc {
    pub id: String,
    pub name: String,
    pub description: String,
    pub domain: String,
    pub owner: String,
    /// `draft`, `active`, `deprecated` or `retired` (case does not matter).
    pub status: String,
    pub tags: Vec<String>,
    /// The property names of the product's contracts.
    pub fields: Vec<String>,
    /// Live quality in `0..=1` (clamped); `None` (or NaN) = not measured yet.
    pub quality: Option<f64>,
}

/// Restricts a search to products with these exact facet values (status
/// ignores case). `Default` filters nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub domain: Option<String>,
    pub owner: Option<String>,
    pub tag: Option<String>,
    pub status: Option<String>,
}

/// One product found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub name: String,
    /// The final score (see the module documentation); higher is better.
    pub score: f32,
}

/// Per facet, the values among the matches and how many matches have each,
/// by count (highest first), then value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    pub domain: Vec<(String, u64)>,
    pub owner: Vec<(String, u64)>,
    pub tag: Vec<(String, u64)>,
    pub status: Vec<(String, u64)>,
}

/// The answer to a search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// The best `limit` matches, best first.
    pub hits: Vec<Hit>,
    /// How many products matched in all.
    pub total: usize,
    pub facets: Facets,
    /// No product had every word of the query, so these are the products
    /// with some of them.
    pub partial: bool,
}

/// The four statuses, numbered in this order in the status facet.
const STATUSES: [&str; 4] = ["draft", "active", "deprecated", "retired"];
/// The facet numbers of `deprecated` and `retired`.
const DEPRECATED: u64 = 2;
const RETIRED: u64 = 3;

/// A prefix-only match scores this times the field's boost.
const PREFIX_SCORE: f32 = 0.5;

/// Memory each indexing thread may buffer before it writes a segment by
/// itself.
const WRITER_MEMORY: usize = 64 << 20;

/// Indexing threads, each with its own segment: two where there are two
/// cores (a rebuild of 50,000 products then takes about 0.4 s, not 0.8 s).
fn indexing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Schema field names.
mod fields {
    pub const ID: &str = "id";
    pub const NAME: &str = "name";
    pub const TAGS: &str = "tags";
    pub const FIELDS: &str = "fields";
    pub const DESCRIPTION: &str = "description";
    /// Owner and domain as text.
    pub const ORG: &str = "org";
    pub const DOMAIN: &str = "domain";
    pub const OWNER: &str = "owner";
    pub const TAG: &str = "tag";
    pub const STATUS: &str = "status";
    pub const DOMAIN_ORD: &str = "domain_ord";
    pub const OWNER_ORD: &str = "owner_ord";
    pub const TAG_ORD: &str = "tag_ord";
    pub const STATUS_ORD: &str = "status_ord";
    pub const QUALITY: &str = "quality";
    /// `lowercase name \0 name \0 id`: sorts ties and gives back the hit.
    pub const KEY: &str = "key";
}

/// The schema's fields.
#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    name: Field,
    tags: Field,
    fields: Field,
    description: Field,
    org: Field,
    domain: Field,
    owner: Field,
    tag: Field,
    status: Field,
    domain_ord: Field,
    owner_ord: Field,
    tag_ord: Field,
    status_ord: Field,
    quality: Field,
    key: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        // Term frequencies only where a word can matter more by occurring
        // again (name, description); in lists of tags, field names and the
        // owner a word counts once (a missing frequency reads as 1).
        let text = |record| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default().set_tokenizer(text::TOKENIZER).set_index_option(record),
            )
        };
        let (counted, listed) = (IndexRecordOption::WithFreqs, IndexRecordOption::Basic);
        let exact = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_fieldnorms(false)
                .set_index_option(IndexRecordOption::Basic),
        );
        let f = Fields {
            id: b.add_text_field(fields::ID, exact.clone()),
            name: b.add_text_field(fields::NAME, text(counted)),
            tags: b.add_text_field(fields::TAGS, text(listed)),
            fields: b.add_text_field(fields::FIELDS, text(listed)),
            description: b.add_text_field(fields::DESCRIPTION, text(counted)),
            org: b.add_text_field(fields::ORG, text(listed)),
            domain: b.add_text_field(fields::DOMAIN, exact.clone()),
            owner: b.add_text_field(fields::OWNER, exact.clone()),
            tag: b.add_text_field(fields::TAG, exact.clone()),
            status: b.add_text_field(fields::STATUS, exact),
            domain_ord: b.add_u64_field(fields::DOMAIN_ORD, FAST),
            owner_ord: b.add_u64_field(fields::OWNER_ORD, FAST),
            tag_ord: b.add_u64_field(fields::TAG_ORD, FAST),
            status_ord: b.add_u64_field(fields::STATUS_ORD, FAST),
            quality: b.add_f64_field(fields::QUALITY, FAST),
            key: b.add_text_field(fields::KEY, TextOptions::default().set_fast("raw")),
        };
        (b.build(), f)
    }

    /// The text fields a word is looked up in, with their boosts and
    /// whether a prefix is always looked up there too.
    fn boosted(&self) -> [(Field, f32, bool); 5] {
        [
            (self.name, 5.0, true),
            (self.tags, 3.0, true),
            (self.fields, 2.0, false),
            (self.description, 1.0, false),
            (self.org, 0.5, false),
        ]
    }
}

/// Facet values and their numbers. A value keeps its number for the life
/// of the index (numbers of values no product has any more just count 0).
#[derive(Debug, Default)]
struct Names {
    names: Vec<String>,
    numbers: HashMap<String, u64>,
}

impl Names {
    fn number(&mut self, value: &str) -> u64 {
        if let Some(&n) = self.numbers.get(value) {
            return n;
        }
        let n = self.names.len() as u64;
        self.names.push(value.to_owned());
        self.numbers.insert(value.to_owned(), n);
        n
    }

    /// The values with a non-zero count, by count then value.
    fn counted(&self, counts: &[u64]) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .filter_map(|(n, &c)| self.names.get(n).map(|name| (name.clone(), c)))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

#[derive(Debug, Default)]
struct Dictionaries {
    domain: Names,
    owner: Names,
    tag: Names,
    status: Names,
}

/// The writer and the documents it has indexed (kept to re-index one with
/// a new quality and to skip unchanged upserts).
struct Writer {
    writer: IndexWriter,
    docs: HashMap<String, SearchDoc>,
}

/// The search index. `Send + Sync`: share it behind an `Arc`.
pub struct SearchIndex {
    reader: IndexReader,
    f: Fields,
    writer: Mutex<Writer>,
    /// Writes since the last commit.
    dirty: AtomicBool,
    dictionaries: RwLock<Dictionaries>,
    segments: SegmentCache,
    len: AtomicUsize,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("len", &self.len())
            .field("uncommitted", &self.dirty.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The status as indexed: trimmed and lowercase.
fn status_of(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The quality as stored: clamped to `0..=1`, or -1 when unmeasured.
fn stored_quality(q: Option<f64>) -> f64 {
    match q {
        Some(q) if !q.is_nan() => q.clamp(0.0, 1.0),
        _ => -1.0,
    }
}

fn sort_key(doc: &SearchDoc) -> String {
    let name = doc.name.replace('\0', " ");
    format!("{}\0{name}\0{}", name.to_lowercase(), doc.id)
}

fn hit_of(score: f32, key: &str) -> Hit {
    let mut parts = key.splitn(3, '\0');
    let _lower = parts.next();
    let name = parts.next().unwrap_or_default().to_owned();
    let id = parts.next().unwrap_or_default().to_owned();
    Hit { id, name, score }
}

fn boxed(q: impl Query) -> Box<dyn Query> {
    Box::new(q)
}

impl SearchIndex {
    /// An empty index in RAM.
    pub fn new() -> Result<Self> {
        let (schema, f) = Fields::schema();
        let index = Index::create(directory::RamDir::default(), schema, IndexSettings::default())?;
        index.tokenizers().register(text::TOKENIZER, TextAnalyzer::from(MeshTokenizer::default()));
        let options = IndexWriterOptions::builder()
            .num_worker_threads(indexing_threads())
            .num_merge_threads(1)
            .memory_budget_per_thread(WRITER_MEMORY)
            .build();
        let writer = index.writer_with_options(options)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let mut dictionaries = Dictionaries::default();
        for s in STATUSES {
            dictionaries.status.number(s);
        }
        Ok(SearchIndex {
            reader,
            f,
            writer: Mutex::new(Writer { writer, docs: HashMap::new() }),
            dirty: AtomicBool::new(false),
            dictionaries: RwLock::new(dictionaries),
            segments: SegmentCache::default(),
            len: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves nothing half-done that a
        // later commit could not finish, so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a product, or replaces the one with the same id. Visible to the
    /// next search.
    pub fn upsert(&self, doc: &SearchDoc) -> Result<()> {
        let mut w = self.lock();
        self.queue(&mut w, doc)
    }

    /// Adds or replaces many products and commits once (the path for
    /// rebuilding the index on start).
    pub fn upsert_many(&self, docs: &[SearchDoc]) -> Result<()> {
        let mut w = self.lock();
        for doc in docs {
            self.queue(&mut w, doc)?;
        }
        if self.dirty.load(Ordering::Acquire) { self.commit_locked(&mut w) } else { Ok(()) }
    }

    /// Removes a product; removing one that is not indexed does nothing.
    pub fn remove(&self, id: &str) -> Result<()> {
        let mut w = self.lock();
        if w.docs.remove(id).is_some() {
            w.writer.delete_term(Term::from_field_text(self.f.id, id));
            self.len.store(w.docs.len(), Ordering::Relaxed);
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Re-indexes a product with a newly measured quality (clamped to
    /// `0..=1`; NaN makes it unmeasured again).
    pub fn set_quality(&self, id: &str, quality: f64) -> Result<()> {
        let mut w = self.lock();
        let Some(doc) = w.docs.get(id) else {
            return Err(Error::NotFound { kind: "product", id: id.to_owned() });
        };
        let mut doc = doc.clone();
        doc.quality = (!quality.is_nan()).then_some(quality);
        self.queue(&mut w, &doc)
    }

    /// Makes every write so far visible now (searches also do it lazily).
    pub fn commit(&self) -> Result<()> {
        let mut w = self.lock();
        if self.dirty.load(Ordering::Acquire) { self.commit_locked(&mut w) } else { Ok(()) }
    }

    /// How many products are indexed (committed or not).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn queue(&self, w: &mut Writer, doc: &SearchDoc) -> Result<()> {
        if w.docs.get(&doc.id) == Some(doc) {
            return Ok(());
        }
        let document = self.document(doc);
        // Only ids in `docs` are in the index (committed or queued).
        if w.docs.contains_key(&doc.id) {
            w.writer.delete_term(Term::from_field_text(self.f.id, &doc.id));
        }
        w.writer.add_document(document)?;
        w.docs.insert(doc.id.clone(), doc.clone());
        self.len.store(w.docs.len(), Ordering::Relaxed);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn commit_locked(&self, w: &mut Writer) -> Result<()> {
        w.writer.commit()?;
        self.reader.reload()?;
        self.segments.retain(self.reader.searcher().segment_readers());
        // Cleared only once the reader sees the commit: a search that finds
        // the flag clear can rely on its searcher holding every write.
        self.dirty.store(false, Ordering::Release);
        Ok(())
    }

    fn document(&self, doc: &SearchDoc) -> TantivyDocument {
        let f = &self.f;
        let mut dictionaries = self.dictionaries.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut d = TantivyDocument::default();
        d.add_text(f.id, &doc.id);
        d.add_text(f.name, &doc.name);
        d.add_text(f.description, &doc.description);
        d.add_text(f.org, &doc.owner);
        d.add_text(f.org, &doc.domain);
        for field in &doc.fields {
            d.add_text(f.fields, field);
        }
        let mut seen = HashSet::new();
        for tag in doc.tags.iter().filter(|t| !t.is_empty() && seen.insert(t.as_str())) {
            d.add_text(f.tags, tag);
            d.add_text(f.tag, tag);
            d.add_u64(f.tag_ord, dictionaries.tag.number(tag));
        }
        if !doc.domain.is_empty() {
            d.add_text(f.domain, &doc.domain);
            d.add_u64(f.domain_ord, dictionaries.domain.number(&doc.domain));
        }
        if !doc.owner.is_empty() {
            d.add_text(f.owner, &doc.owner);
            d.add_u64(f.owner_ord, dictionaries.owner.number(&doc.owner));
        }
        let status = status_of(&doc.status);
        if !status.is_empty() {
            d.add_text(f.status, &status);
            d.add_u64(f.status_ord, dictionaries.status.number(&status));
        }
        d.add_f64(f.quality, stored_quality(doc.quality));
        d.add_text(f.key, sort_key(doc));
        d
    }

    /// Commits if some write is not visible yet.
    fn refresh(&self) -> Result<()> {
        if self.dirty.load(Ordering::Acquire) {
            let mut w = self.lock();
            if self.dirty.load(Ordering::Acquire) {
                self.commit_locked(&mut w)?;
            }
        }
        Ok(())
    }

    /// The best `limit` products for `query` among those `filter` lets
    /// through, with the total and the facets of all matches. Never fails
    /// on what the user typed: a query is words, and anything else in it is
    /// ignored.
    pub fn search(&self, query: &str, filter: &SearchFilter, limit: usize) -> Result<SearchResults> {
        self.refresh()?;
        let searcher = self.reader.searcher();
        let terms = text::query_terms(query);
        let run = |text: Option<Box<dyn Query>>| -> Result<Ranked> {
            let scoring = text.is_some();
            let mut clauses = self.filter_clauses(filter);
            clauses.push((Occur::Must, text.unwrap_or_else(|| boxed(AllQuery))));
            let hide_retired = filter.status.is_none();
            let collector = RankCollector { limit, scoring, hide_retired, cache: &self.segments };
            Ok(searcher.search(&BooleanQuery::new(clauses), &collector)?)
        };
        let (ranked, partial) = if terms.is_empty() {
            (run(None)?, false)
        } else {
            let all = run(Some(self.text_query(&searcher, &terms, true)?))?;
            if all.total == 0 && terms.iter().filter(|t| t.required).count() > 1 {
                (run(Some(self.text_query(&searcher, &terms, false)?))?, true)
            } else {
                (all, false)
            }
        };
        let hits = ranked.top.iter().map(|(score, key)| hit_of(*score, key)).collect();
        Ok(SearchResults { hits, total: ranked.total as usize, facets: self.facets(&ranked.tally), partial })
    }

    fn facets(&self, tally: &Tally) -> Facets {
        let d = self.dictionaries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        Facets {
            domain: d.domain.counted(&tally.domain),
            owner: d.owner.counted(&tally.owner),
            tag: d.tag.counted(&tally.tag),
            status: d.status.counted(&tally.status),
        }
    }

    /// The filter as clauses that do not change scores. (Retired products
    /// are left out by the collector when the filter has no status: one
    /// comparison per match is cheaper than excluding them in the query.)
    fn filter_clauses(&self, filter: &SearchFilter) -> Vec<(Occur, Box<dyn Query>)> {
        let exact = |field: Field, value: &str| {
            boxed(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
        };
        let mut clauses = Vec::new();
        let status = filter.status.as_deref().map(status_of);
        for (field, value) in [
            (self.f.domain, filter.domain.as_deref()),
            (self.f.owner, filter.owner.as_deref()),
            (self.f.tag, filter.tag.as_deref()),
            (self.f.status, status.as_deref()),
        ] {
            if let Some(value) = value {
                clauses.push((Occur::Must, boxed(ConstScoreQuery::new(exact(field, value), 0.0))));
            }
        }
        clauses
    }

    /// The text part of a query: each term is looked up in every text
    /// field, exactly (BM25) and as a prefix (constant). The prefix is
    /// looked up in the name and tags always, and in the other fields only
    /// where the term is not a word of its own: `cust` finds `customer`
    /// everywhere, while `customer` does not also pay for the
    /// `customerid`s of every field list. With `all`, every required term
    /// must match somewhere, otherwise any term may.
    fn text_query(&self, searcher: &Searcher, terms: &[QueryTerm], all: bool) -> Result<Box<dyn Query>> {
        let mut clauses = Vec::with_capacity(terms.len());
        for t in terms {
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost, always_prefix) in self.f.boosted() {
                let term = Term::from_field_text(field, &t.text);
                let known = searcher.doc_freq(&term)? > 0;
                if t.prefix && (always_prefix || !known) {
                    let prefix = FuzzyTermQuery::new_prefix(term.clone(), 0, false);
                    alternatives.push((Occur::Should, boxed(BoostQuery::new(boxed(prefix), boost * PREFIX_SCORE))));
                }
                if known {
                    let exact = TermQuery::new(term, IndexRecordOption::WithFreqs);
                    alternatives.push((Occur::Should, boxed(BoostQuery::new(boxed(exact), boost))));
                }
            }
            let occur = if all && t.required { Occur::Must } else { Occur::Should };
            let clause =
                if alternatives.is_empty() { boxed(EmptyQuery) } else { boxed(BooleanQuery::new(alternatives)) };
            clauses.push((occur, clause));
        }
        Ok(boxed(BooleanQuery::new(clauses)))
    }
}
