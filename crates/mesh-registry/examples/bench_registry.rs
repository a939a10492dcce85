//! `cargo xtask bench registry`: the data-mesh registry.
//!
//! Parts (all by default; pick with `--only PART`, repeatable):
//! - `search`: 50,000 fixed-seed products (`--quick` 10,000) indexed in RAM,
//!   (best of three builds), then latency of a realistic mix of queries
//!   (400 of each kind, `--quick` 100: one word, two words, a prefix, a
//!   word with a facet filter, a word nearly every product has, and
//!   browsing a facet with no words), every one returning 20 hits plus the
//!   counts of all four facets over all matches. Baseline: the seed's
//!   `search_products` (is the lowercased query a substring of the name,
//!   the description or a tag) over the same products in memory, on the
//!   same queries in the same run, each side running a kind warm; it is
//!   given its text lowercased in advance and does less work (no ranking,
//!   no facets). Also: 10,000 upserts one at a time, and what a search pays
//!   right after a single write (it commits first).
//! - `validate`: one core validating and measuring 1,000,000 customer
//!   records (10% invalid, fixed seed) against the contract orders
//!   announces, on parsed records and with JSON parsing. Baseline: the
//!   seed's `validate_contract` (are the required fields there).
//! - `register`: 10,000 products with their contracts, one file at a time
//!   (each a durable catalogue write, semver gate, search indexing) and all
//!   in one file, then reopening (re-indexing). Baseline: the seed's
//!   `register_product` (a dict insert).
//!
//! Usage: bench_registry [--quick] [--only PART]...

use std::time::Instant;

use domain_core::seeded::SplitMix64;
use domain_core::testkit::bench;
use mesh_registry::search::{SearchDoc, SearchFilter, SearchIndex};
use serde_json::Value;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAME: &str = "registry";

/// The parts `--only` can pick.
const PARTS: [&str; 3] = ["search", "validate", "register"];

struct Args {
    quick: bool,
    /// Run only these parts (all when empty).
    only: Vec<String>,
}

impl Args {
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

fn args() -> Result<Args, String> {
    let mut a = Args { quick: false, only: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => a.quick = true,
            "--only" => {
                let part = it.next().ok_or("--only needs a part")?;
                if !PARTS.contains(&part.as_str()) {
                    return Err(format!("unknown part `{part}`; parts: {}", PARTS.join(", ")));
                }
                a.only.push(part);
            }
            "--bench" => {}
            other => return Err(format!("unknown argument {other}; usage: bench_registry [--quick] [--only PART]...")),
        }
    }
    Ok(a)
}

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

// ---- synthetic products ----

const DOMAINS: [&str; 12] = [
    "sales",
    "finance",
    "logistics",
    "marketing",
    "people",
    "risk",
    "supply",
    "customer-care",
    "payments",
    "inventory",
    "analytics",
    "compliance",
];
const ENTITIES: [&str; 60] = [
    "customer",
    "order",
    "invoice",
    "payment",
    "shipment",
    "product",
    "supplier",
    "account",
    "ledger",
    "transaction",
    "refund",
    "return",
    "campaign",
    "lead",
    "employee",
    "contract",
    "price",
    "stock",
    "warehouse",
    "carrier",
    "route",
    "claim",
    "policy",
    "exposure",
    "fraud",
    "session",
    "click",
    "subscription",
    "churn",
    "forecast",
    "budget",
    "cost",
    "revenue",
    "margin",
    "tax",
    "currency",
    "address",
    "store",
    "region",
    "channel",
    "promotion",
    "coupon",
    "review",
    "rating",
    "ticket",
    "agent",
    "call",
    "survey",
    "loyalty",
    "member",
    "partner",
    "vendor",
    "asset",
    "device",
    "sensor",
    "payroll",
    "audit",
    "merchant",
    "basket",
    "delivery",
];
const QUALIFIERS: [&str; 18] = [
    "Daily",
    "Monthly",
    "Master",
    "Raw",
    "Curated",
    "Enriched",
    "Aggregated",
    "Realtime",
    "Historical",
    "Consolidated",
    "Global",
    "Regional",
    "Unified",
    "Core",
    "Golden",
    "Reference",
    "Weekly",
    "Staging",
];
const SUFFIXES: [&str; 16] = [
    "Data",
    "Events",
    "Facts",
    "Dimension",
    "Summary",
    "Feed",
    "Stream",
    "View",
    "Metrics",
    "Records",
    "Snapshot",
    "History",
    "Lines",
    "Profiles",
    "Index",
    "Report",
];
const TAGS: [&str; 20] = [
    "pii",
    "gdpr",
    "master_data",
    "kpi",
    "realtime",
    "batch",
    "gold",
    "silver",
    "bronze",
    "certified",
    "experimental",
    "sla-critical",
    "external",
    "internal",
    "ml-feature",
    "reporting",
    "finance",
    "regulatory",
    "streaming",
    "deprecated-soon",
];
const FIELD_SUFFIXES: [&str; 12] =
    ["_id", "_name", "_code", "_amount", "_status", "_type", "_date", "At", "Count", "_total", "_region", "_key"];
const PURPOSES: [&str; 10] = [
    "monthly reporting",
    "fraud detection",
    "demand forecasting",
    "regulatory filings",
    "customer segmentation",
    "pricing decisions",
    "capacity planning",
    "churn models",
    "reconciliation",
    "operational dashboards",
];
const FREQUENCIES: [&str; 5] = ["every hour", "every night", "every week", "in real time", "every fifteen minutes"];
const CJK_ENTITIES: [&str; 8] = ["客户", "订单", "发票", "支付", "库存", "供应商", "产品", "门店"];
const CJK_SUFFIXES: [&str; 5] = ["主数据", "明细", "汇总", "快照", "事件"];

fn owners() -> Vec<String> {
    DOMAINS.iter().flat_map(|d| (0..20).map(move |n| format!("team-{d}-{n:02}"))).collect()
}

/// `n` products with a fixed seed.
fn products(n: usize) -> Vec<SearchDoc> {
    let mut rng = SplitMix64::new(20_261_207);
    let owners = owners();
    (0..n)
        .map(|i| {
            let domain = *rng.pick(&DOMAINS);
            let entity = *rng.pick(&ENTITIES);
            let other = *rng.pick(&ENTITIES);
            let name = if rng.chance(0.05) {
                format!("{}{}", rng.pick(&CJK_ENTITIES), rng.pick(&CJK_SUFFIXES))
            } else if rng.chance(0.3) {
                format!("{} {} {} {}", rng.pick(&QUALIFIERS), capital(entity), capital(other), rng.pick(&SUFFIXES))
            } else {
                format!("{} {} {}", rng.pick(&QUALIFIERS), capital(entity), rng.pick(&SUFFIXES))
            };
            let owner = owners[(DOMAINS.iter().position(|d| *d == domain).unwrap_or(0) * 20)
                + rng.below(20) as usize]
                .clone();
            let description = format!(
                "{} {} records for the {domain} domain, refreshed {}, built from {} and {} sources; used by {owner} for {}.",
                rng.pick(&QUALIFIERS),
                entity,
                rng.pick(&FREQUENCIES),
                rng.pick(&ENTITIES),
                rng.pick(&ENTITIES),
                rng.pick(&PURPOSES),
            );
            let mut tags: Vec<String> = (0..1 + rng.below(4)).map(|_| (*rng.pick(&TAGS)).to_owned()).collect();
            tags.sort();
            tags.dedup();
            let fields = (0..5 + rng.below(11))
                .map(|_| format!("{}{}", rng.pick(&ENTITIES), rng.pick(&FIELD_SUFFIXES)))
                .collect();
            let status = match rng.below(100) {
                0..70 => "active",
                70..85 => "draft",
                85..95 => "deprecated",
                _ => "retired",
            };
            let quality = rng.chance(0.7).then(|| rng.uniform(0.5, 1.0));
            SearchDoc {
                id: format!("dp-{i:06}"),
                name,
                description,
                domain: domain.to_owned(),
                owner,
                status: status.to_owned(),
                tags,
                fields,
                quality,
            }
        })
        .collect()
}

fn capital(word: &str) -> String {
    let mut c = word.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

// ---- the query mix ----

struct Query {
    text: String,
    filter: SearchFilter,
}

/// The kinds of query in the mix, each `per_kind` times.
const KINDS: [&str; 6] = ["one_word", "two_words", "prefix", "word_and_facet", "broad", "browse_facet"];

fn queries(kind: &str, per_kind: usize, rng: &mut SplitMix64) -> Vec<Query> {
    let owners = owners();
    (0..per_kind)
        .map(|_| {
            let none = SearchFilter::default();
            match kind {
                "one_word" => Query { text: (*rng.pick(&ENTITIES)).to_owned(), filter: none },
                "two_words" => {
                    let text = if rng.chance(0.5) {
                        format!("{} {}", rng.pick(&ENTITIES), rng.pick(&SUFFIXES).to_lowercase())
                    } else {
                        format!("{} {}", rng.pick(&QUALIFIERS).to_lowercase(), rng.pick(&ENTITIES))
                    };
                    Query { text, filter: none }
                }
                "prefix" => {
                    let word = rng.pick(&ENTITIES);
                    let cut = 3 + rng.below(2) as usize;
                    Query { text: word.chars().take(cut).collect(), filter: none }
                }
                "word_and_facet" => {
                    let filter = match rng.below(3) {
                        0 => SearchFilter { domain: Some((*rng.pick(&DOMAINS)).to_owned()), ..none },
                        1 => SearchFilter { tag: Some((*rng.pick(&TAGS)).to_owned()), ..none },
                        _ => SearchFilter { owner: Some(rng.pick(&owners).clone()), ..none },
                    };
                    Query { text: (*rng.pick(&ENTITIES)).to_owned(), filter }
                }
                "broad" => {
                    Query { text: (*rng.pick(&["records", "domain", "sources", "data"])).to_owned(), filter: none }
                }
                _ => Query {
                    text: String::new(),
                    filter: SearchFilter { domain: Some((*rng.pick(&DOMAINS)).to_owned()), ..none },
                },
            }
        })
        .collect()
}

// ---- the seed's search, as the baseline ----

/// A product with its text lowercased once (the seed lowercases on every
/// search; this gives the baseline its best case).
struct Lowered<'a> {
    doc: &'a SearchDoc,
    name: String,
    description: String,
    tags: Vec<String>,
}

fn seed_search<'a>(products: &'a [Lowered<'a>], q: &Query, limit: usize) -> (usize, Vec<&'a str>) {
    let needle = q.text.to_lowercase();
    let f = &q.filter;
    let keep = |p: &Lowered<'_>| {
        f.domain.as_ref().is_none_or(|d| *d == p.doc.domain)
            && f.owner.as_ref().is_none_or(|o| *o == p.doc.owner)
            && f.tag.as_ref().is_none_or(|t| p.doc.tags.contains(t))
            && p.doc.status != "retired"
    };
    let mut total = 0;
    let mut hits = Vec::new();
    for p in products {
        if keep(p)
            && (p.name.contains(&needle)
                || p.description.contains(&needle)
                || p.tags.iter().any(|t| t.contains(&needle)))
        {
            total += 1;
            if hits.len() < limit {
                hits.push(p.doc.id.as_str());
            }
        }
    }
    (total, hits)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len().saturating_sub(1)) as f64 * q) as usize).copied().unwrap_or(f64::NAN)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

// ---- parts ----

fn search_part(quick: bool, figures: &mut Vec<Value>) -> Result<(), String> {
    let n = if quick { 10_000 } else { 50_000 };
    let per_kind = if quick { 100 } else { 400 };
    let limit = 20;
    let docs = products(n);

    // Build: best of three fresh indexes.
    let mut builds = Vec::new();
    let mut index = None;
    for _ in 0..3 {
        let started = Instant::now();
        let idx = SearchIndex::new().map_err(e)?;
        idx.upsert_many(&docs).map_err(e)?;
        builds.push(started.elapsed().as_secs_f64() * 1e3);
        index = Some(idx);
    }
    let index = index.ok_or("no index")?;
    let build_ms = sorted(builds)[0];
    eprintln!("search: {n} products indexed in {build_ms:.0} ms");
    figures.push(bench::figure(
        NAME,
        &format!("search_index_build_{}k", n / 1000),
        build_ms,
        "ms",
        None,
        None,
        "<1000",
    ));

    let lowered: Vec<Lowered<'_>> = docs
        .iter()
        .map(|d| Lowered {
            doc: d,
            name: d.name.to_lowercase(),
            description: d.description.to_lowercase(),
            tags: d.tags.iter().map(|t| t.to_lowercase()).collect(),
        })
        .collect();

    let mut rng = SplitMix64::new(7);
    let mut all_ours = Vec::new();
    let mut all_seed = Vec::new();
    for kind in KINDS {
        let qs = queries(kind, per_kind, &mut rng);
        // Each side runs the whole kind warm (interleaving them query by
        // query would have the seed's 50 MB scan evict the index each time).
        for q in qs.iter().take(20) {
            std::hint::black_box(index.search(&q.text, &q.filter, limit).map_err(e)?);
        }
        let (mut ours, mut seed, mut totals, mut partial) = (Vec::new(), Vec::new(), 0usize, 0usize);
        for q in &qs {
            let t = Instant::now();
            let r = index.search(&q.text, &q.filter, limit).map_err(e)?;
            ours.push(t.elapsed().as_secs_f64() * 1e6);
            totals += r.total;
            partial += usize::from(r.partial);
            std::hint::black_box(r);
        }
        for q in &qs {
            let t = Instant::now();
            std::hint::black_box(seed_search(&lowered, q, limit));
            seed.push(t.elapsed().as_secs_f64() * 1e6);
        }
        all_ours.extend_from_slice(&ours);
        all_seed.extend_from_slice(&seed);
        let (ours, seed) = (sorted(ours), sorted(seed));
        let (p50, p99, max) = (percentile(&ours, 0.5), percentile(&ours, 0.99), percentile(&ours, 1.0));
        let (s50, s99) = (percentile(&seed, 0.5), percentile(&seed, 0.99));
        eprintln!(
            "  {kind:<15} {:>6} matches on average ({partial} with some words only); p50 {p50:>5.0} us  p99 {p99:>5.0} us  max {max:>6.0} us; seed p50 {s50:.0} us  p99 {s99:.0} us",
            totals / qs.len().max(1)
        );
        let base = Some("the seed's substring scan, same queries, same run (us)");
        figures.push(bench::figure(NAME, &format!("search_{kind}_p50"), p50, "us", base, Some(p50 / s50), "report"));
        figures.push(bench::figure(NAME, &format!("search_{kind}_p99"), p99, "us", base, Some(p99 / s99), "<2000"));
        figures.push(bench::figure(NAME, &format!("search_{kind}_max"), max, "us", None, None, "report"));
    }
    let (ours, seed) = (sorted(all_ours), sorted(all_seed));
    let base = Some("the seed's substring scan over the whole mix (us)");
    for (label, q) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        let (o, s) = (percentile(&ours, q), percentile(&seed, q));
        let target = if label == "p99" { "<2000" } else { "report" };
        figures.push(bench::figure(NAME, &format!("search_mix_{label}"), o, "us", base, Some(o / s), target));
        figures.push(bench::figure(NAME, &format!("seed_scan_mix_{label}"), s, "us", None, None, "report"));
    }
    eprintln!(
        "  mix of {} queries: p50 {:.0} us, p99 {:.0} us",
        ours.len(),
        percentile(&ours, 0.5),
        percentile(&ours, 0.99)
    );

    // Writes one at a time (the register path), then what the next search
    // pays to commit a single write.
    let singles = if quick { 2_000 } else { 10_000 };
    let idx = SearchIndex::new().map_err(e)?;
    let started = Instant::now();
    for d in &docs[..singles] {
        idx.upsert(d).map_err(e)?;
    }
    let queued = started.elapsed().as_secs_f64();
    let t = Instant::now();
    idx.commit().map_err(e)?;
    let first_commit_ms = t.elapsed().as_secs_f64() * 1e3;
    let rate = singles as f64 / (queued + first_commit_ms / 1e3);
    eprintln!("  {singles} upserts one by one: {rate:.0}/s including the commit ({first_commit_ms:.1} ms)");
    figures.push(bench::figure(NAME, "search_upsert_one_by_one", rate, "docs/s", None, None, "report"));
    let mut commit_then_search = Vec::new();
    for (i, d) in docs[singles..singles + 200].iter().enumerate() {
        idx.upsert(d).map_err(e)?;
        let t = Instant::now();
        std::hint::black_box(idx.search(ENTITIES[i % ENTITIES.len()], &SearchFilter::default(), limit).map_err(e)?);
        commit_then_search.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let cts = sorted(commit_then_search);
    eprintln!(
        "  a search right after each of 200 single writes (it commits first): p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        percentile(&cts, 0.5),
        percentile(&cts, 0.9),
        percentile(&cts, 0.99),
        percentile(&cts, 1.0)
    );
    figures.push(bench::figure(NAME, "search_after_one_write_p50", percentile(&cts, 0.5), "us", None, None, "report"));
    figures.push(bench::figure(NAME, "search_after_one_write_p99", percentile(&cts, 0.99), "us", None, None, "report"));
    Ok(())
}

#[path = "support/registry_parts.rs"]
mod registry_parts;
use registry_parts::{register_part, validate_part};

fn main() -> Result<(), String> {
    let a = args()?;
    let mut figures = Vec::new();
    if a.runs("search") {
        search_part(a.quick, &mut figures)?;
    }
    if a.runs("validate") {
        validate_part(a.quick, &mut figures)?;
    }
    if a.runs("register") {
        register_part(a.quick, &mut figures)?;
    }
    print!("{}", bench::report(&figures));
    Ok(())
}
