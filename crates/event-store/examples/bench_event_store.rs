//! `cargo xtask bench event-store`: the embedded store against the raw
//! limit of this disk, group commit, aggregate replay, and the PostgreSQL
//! adapter against plain INSERTs, each measured in the same run.
//!
//! Usage: bench_event_store [--database-url URL] [--quick] [--only PART]...
//! (parts: append, group-commit, replay, postgres)

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain_core::testkit::bench::{self, median};
use domain_core::{Aggregate, DomainEvent, Envelope, EventType, codec};
use event_store::{EmbeddedEventStore, EventStore, ExpectedVersion, PostgresEventStore, Repository, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const NAME: &str = "event-store";

struct Args {
    database_url: Option<String>,
    quick: bool,
    /// Run only these parts (all when empty).
    only: Vec<String>,
}

/// The parts `--only` can pick.
const PARTS: [&str; 4] = ["append", "group-commit", "replay", "postgres"];

impl Args {
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

fn args() -> Result<Args, String> {
    let mut a = Args { database_url: std::env::var("DATABASE_URL").ok(), quick: false, only: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--database-url" => a.database_url = Some(it.next().ok_or("--database-url needs a URL")?),
            "--quick" => a.quick = true,
            "--only" => {
                let part = it.next().ok_or("--only needs a part")?;
                if !PARTS.contains(&part.as_str()) {
                    return Err(format!("unknown part `{part}`; parts: {}", PARTS.join(", ")));
                }
                a.only.push(part);
            }
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: bench_event_store [--database-url URL] [--quick] [--only PART]..."
                ));
            }
        }
    }
    Ok(a)
}

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

/// An event with a 256-byte payload.
fn event(subject: &str, i: u64) -> Envelope {
    let ty: EventType = "bench.Added.v1".parse().unwrap_or_else(|e| panic!("{e}"));
    let pad = "x".repeat(256 - 22);
    Envelope::raw("bench", ty, subject, 0, json!({ "n": i, "pad": pad }))
}

fn temp_dir(what: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("bench-es-{what}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).map_err(e)?;
    Ok(dir)
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The raw limit: the same bytes, the same batches, write + fdatasync each,
/// appended to one file that grows across rounds as the store's log does
/// (appending to a large file costs more than to a fresh one).
fn raw_fsync(dir: &Path, batches: &[Vec<u8>]) -> Result<Duration, String> {
    let path = dir.join("raw.log");
    let mut f: File = OpenOptions::new().create(true).append(true).open(&path).map_err(e)?;
    let start = Instant::now();
    for b in batches {
        f.write_all(b).map_err(e)?;
        f.sync_data().map_err(e)?;
    }
    Ok(start.elapsed())
}

async fn store_batches(store: &dyn EventStore, s: &StreamId, batches: &[Vec<Envelope>]) -> Result<Duration, String> {
    let mut v = store.stream_version(s).await.map_err(e)?;
    let start = Instant::now();
    for b in batches {
        let r = store.append(s, ExpectedVersion::Exact(v), b).await.map_err(e)?;
        v = r.last_version;
    }
    Ok(start.elapsed())
}

/// Appends the batches numbered `which`, each made by `make` just before it
/// is appended (as a command handler makes its events), timing only the
/// appends.
async fn store_fresh_batches(
    store: &dyn EventStore,
    s: &StreamId,
    which: std::ops::Range<u64>,
    make: &impl Fn(u64) -> Vec<Envelope>,
) -> Result<Duration, String> {
    let mut v = store.stream_version(s).await.map_err(e)?;
    let mut took = Duration::ZERO;
    for b in which {
        let events = make(b);
        let start = Instant::now();
        v = store.append(s, ExpectedVersion::Exact(v), &events).await.map_err(e)?.last_version;
        took += start.elapsed();
    }
    Ok(took)
}

async fn batched_append(n: u64, batch: u64, figures: &mut Vec<Value>) -> Result<(), String> {
    let dir = temp_dir("batched")?;
    let store = EmbeddedEventStore::open(dir.join("store")).map_err(e)?;
    let s = StreamId::new("bench-batched").map_err(e)?;
    let (mut ratios, mut store_rates, mut raw_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3u64 {
        let events: Vec<Vec<Envelope>> = (0..n / batch)
            .map(|b| (0..batch).map(|i| event(s.as_str(), round * n + b * batch + i)).collect())
            .collect();
        let bytes: Vec<Vec<u8>> = events
            .iter()
            .map(|b| EmbeddedEventStore::log_bytes_of(&s, b, usize::MAX).map_err(e))
            .collect::<Result<_, _>>()?;
        drop(events);
        let make = |b: u64| (0..batch).map(|i| event(s.as_str(), round * n + b * batch + i)).collect();
        // Store and raw take turns every ~10k events, so both see the same
        // disk: on a shared machine fsync times drift by 2x within seconds.
        let (mut st, mut raw) = (Duration::ZERO, Duration::ZERO);
        let per_block = (10_000 / batch).max(1);
        for (k, first) in (0..n / batch).step_by(per_block as usize).enumerate() {
            let which = first..(first + per_block).min(n / batch);
            let raw_bytes = &bytes[which.start as usize..which.end as usize];
            if (round as usize + k).is_multiple_of(2) {
                st += store_fresh_batches(&store, &s, which, &make).await?;
                // The writer indexes ids after answering; let it finish (a
                // checkpoint queues behind that work) so the raw writes get
                // the CPU to themselves.
                store.save_checkpoint("bench-barrier", 0).await.map_err(e)?;
                raw += raw_fsync(&dir, raw_bytes)?;
            } else {
                raw += raw_fsync(&dir, raw_bytes)?;
                st += store_fresh_batches(&store, &s, which, &make).await?;
            }
        }
        let (sr, rr) = (rate(n, st), rate(n, raw));
        eprintln!(
            "  batched x{batch} round {round}: store {sr:>10.0} ev/s   raw fsync {rr:>10.0} ev/s   ratio {:.3}",
            sr / rr
        );
        ratios.push(sr / rr);
        store_rates.push(sr);
        raw_rates.push(rr);
    }
    figures.push(bench::figure(
        NAME,
        &format!("embedded_append_batch{batch}"),
        median(store_rates),
        "events/s",
        Some("write+fdatasync of the same bytes in the same batches"),
        Some(median(ratios)),
        ">=0.5",
    ));
    figures.push(bench::figure(
        NAME,
        &format!("raw_fsync_batch{batch}"),
        median(raw_rates),
        "events/s",
        None,
        None,
        "baseline",
    ));
    drop(store);
    if batch == 1000 {
        reopen(&dir.join("store"), figures).await?;
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// Opening rebuilds the indexes by scanning the whole log (page cache warm):
/// how long a restart takes per event stored.
async fn reopen(dir: &Path, figures: &mut Vec<Value>) -> Result<(), String> {
    let start = Instant::now();
    let store = EmbeddedEventStore::open(dir).map_err(e)?;
    let took = start.elapsed();
    let events = store.head_position().await.map_err(e)?;
    let bytes = std::fs::metadata(store.path()).map_err(e)?.len();
    eprintln!("  reopen: {events} events ({} MB) scanned in {:.0} ms", bytes >> 20, took.as_secs_f64() * 1e3);
    figures.push(bench::figure(NAME, "embedded_open_scan", rate(events, took), "events/s", None, None, "report"));
    Ok(())
}

async fn single_appends(store: &Arc<dyn EventStore>, writers: u64, per_writer: u64, tag: &str) -> Result<f64, String> {
    // Events are made before the clock starts: this measures the store.
    let mut work = Vec::new();
    for t in 0..writers {
        let s = StreamId::new(format!("{tag}-{t}")).map_err(e)?;
        let events: Vec<Envelope> = (0..per_writer).map(|i| event(s.as_str(), i)).collect();
        work.push((s, events));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, events) in work {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            for ev in events.chunks(1) {
                store.append(&s, ExpectedVersion::Any, ev).await.map_err(e)?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(e)??;
    }
    Ok(rate(writers * per_writer, start.elapsed()))
}

async fn group_commit(single: u64, per_task: u64, figures: &mut Vec<Value>) -> Result<(), String> {
    let dir = temp_dir("group")?;
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::open(&dir).map_err(e)?);
    let (mut ones, mut manys, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let one = single_appends(&store, 1, single, &format!("solo{round}")).await?;
        let many = single_appends(&store, 64, per_task, &format!("writer{round}")).await?;
        eprintln!(
            "  single-event appends round {round}: 1 writer {one:.0} ev/s, 64 writers {many:.0} ev/s, ratio {:.1}",
            many / one
        );
        ones.push(one);
        manys.push(many);
        ratios.push(many / one);
    }
    figures.push(bench::figure(
        NAME,
        "embedded_single_appends_1_writer",
        median(ones),
        "events/s",
        None,
        None,
        "baseline",
    ));
    figures.push(bench::figure(
        NAME,
        "embedded_single_appends_64_writers",
        median(manys),
        "events/s",
        Some("1 writer, same run"),
        Some(median(ratios)),
        ">=20",
    ));
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TallyEvent {
    Added { n: u64, pad: String },
}

impl DomainEvent for TallyEvent {
    const CONTEXT: &'static str = "bench";
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Tally {
    sum: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Tally {
    const TYPE: &'static str = "Tally";
    type Command = u64;
    type Event = TallyEvent;
    type Error = Never;
    fn handle(&self, n: u64) -> Result<Vec<TallyEvent>, Never> {
        Ok(vec![TallyEvent::Added { n, pad: String::new() }])
    }
    fn apply(&mut self, TallyEvent::Added { n, .. }: &TallyEvent) {
        self.sum += n;
    }
}

async fn aggregate_load(n: u64, figures: &mut Vec<Value>) -> Result<(), String> {
    let dir = temp_dir("load")?;
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::open(&dir).map_err(e)?);
    let s = Repository::<Tally>::stream_of("t1").map_err(e)?;
    let batches: Vec<Vec<Envelope>> =
        (0..n / 1000).map(|b| (0..1000).map(|i| event("t1", b * 1000 + i)).collect()).collect();
    store_batches(store.as_ref(), &s, &batches).await?;
    let plain = Repository::<Tally>::new(Arc::clone(&store));
    plain.load("t1").await.map_err(e)?; // warm the page cache
    let mut times = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let root = plain.load("t1").await.map_err(e)?;
        times.push(start.elapsed().as_secs_f64());
        if root.version() != n {
            return Err(format!("loaded version {} of {n}", root.version()));
        }
    }
    let replay = n as f64 / median(times);
    let state = serde_json::to_value(plain.load("t1").await.map_err(e)?.state()).map_err(e)?;
    let version = store.stream_version(&s).await.map_err(e)?;
    store
        .save_snapshot(&event_store::Snapshot {
            stream: s.clone(),
            aggregate_type: "Tally".into(),
            schema_version: 1,
            version,
            state,
            taken_at: chrono::Utc::now(),
        })
        .await
        .map_err(e)?;
    let mut snap_times = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let root = plain.load("t1").await.map_err(e)?;
        snap_times.push(start.elapsed().as_secs_f64() * 1e6);
        if root.version() != version {
            return Err("snapshot load lost events".into());
        }
    }
    let with_snapshot_us = median(snap_times);
    eprintln!("  load of {n} events: replay {replay:.0} ev/s; with snapshot {with_snapshot_us:.0} us");
    figures.push(bench::figure(NAME, "aggregate_replay_10k_no_snapshot", replay, "events/s", None, None, ">=1000000"));
    figures.push(bench::figure(
        NAME,
        "aggregate_load_10k_with_snapshot",
        with_snapshot_us,
        "us",
        Some("replay without snapshot"),
        Some((n as f64 / replay * 1e6) / with_snapshot_us),
        "report",
    ));
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

async fn postgres(url: &str, n: u64, batch: u64, figures: &mut Vec<Value>) -> Result<(), String> {
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresEventStore::connect(url, &schema).await.map_err(e)?;
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(e)?;
    tokio::spawn(conn);
    let plain = format!("\"{schema}\".plain");
    client
        .batch_execute(&format!(
            "CREATE TABLE {plain} (position bigint PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL,
             event_id uuid NOT NULL UNIQUE, body bytea NOT NULL, recorded_at timestamptz NOT NULL, UNIQUE (stream, version))"
        ))
        .await
        .map_err(e)?;
    let insert = client
        .prepare(&format!(
            "INSERT INTO {plain} (position, stream, version, event_id, body, recorded_at)
             SELECT $1 + t.i - 1, $2, $1 + t.i - 1, t.id, t.body, now()
             FROM unnest($3::uuid[], $4::bytea[]) WITH ORDINALITY AS t(id, body, i)"
        ))
        .await
        .map_err(e)?;
    let s = StreamId::new("pg-bench").map_err(e)?;
    let (mut ratios, mut store_rates, mut plain_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3u64 {
        let events: Vec<Vec<Envelope>> = (0..n / batch)
            .map(|b| (0..batch).map(|i| event(s.as_str(), round * n + b * batch + i)).collect())
            .collect();
        let st = store_batches(&store, &s, &events).await?;
        let start = Instant::now();
        for (b, evs) in events.iter().enumerate() {
            let ids: Vec<uuid::Uuid> = evs.iter().map(|ev| ev.id).collect();
            let bodies: Vec<Vec<u8>> = evs.iter().map(|ev| codec::to_json(ev).map_err(e)).collect::<Result<_, _>>()?;
            let first = (round * n + b as u64 * batch + 1) as i64;
            client.execute("BEGIN", &[]).await.map_err(e)?;
            client.execute(&insert, &[&first, &s.as_str(), &ids, &bodies]).await.map_err(e)?;
            client.execute("COMMIT", &[]).await.map_err(e)?;
        }
        let pt = start.elapsed();
        let (sr, pr) = (rate(n, st), rate(n, pt));
        eprintln!(
            "  postgres x{batch} round {round}: adapter {sr:>9.0} ev/s   plain INSERT {pr:>9.0} ev/s   ratio {:.3}",
            sr / pr
        );
        ratios.push(sr / pr);
        store_rates.push(sr);
        plain_rates.push(pr);
    }
    figures.push(bench::figure(
        NAME,
        &format!("postgres_append_batch{batch}"),
        median(store_rates),
        "events/s",
        Some("plain INSERT of the same rows, same batches, one transaction each"),
        Some(median(ratios)),
        "report",
    ));
    figures.push(bench::figure(
        NAME,
        &format!("postgres_plain_insert_batch{batch}"),
        median(plain_rates),
        "events/s",
        None,
        None,
        "baseline",
    ));
    store.drop_schema().await.map_err(e)?;
    Ok(())
}

/// The allocator the `platform` binary ships with, so the figures are the deployed ones.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let a = args()?;
    let (n, single, per_task) = if a.quick { (10_000, 100, 10) } else { (100_000, 300, 40) };
    eprintln!("event-store bench: {n} events of 256-byte payloads; data in {}", std::env::temp_dir().display());
    let mut figures = Vec::new();
    if a.runs("append") {
        batched_append(n / 10, 10, &mut figures).await?;
        batched_append(n, 100, &mut figures).await?;
        batched_append(n, 1000, &mut figures).await?;
    }
    if a.runs("group-commit") {
        group_commit(single, per_task, &mut figures).await?;
    }
    if a.runs("replay") {
        aggregate_load(10_000, &mut figures).await?;
    }
    match &a.database_url {
        Some(url) if a.runs("postgres") => postgres(url, n / 5, 100, &mut figures).await?,
        Some(_) => {}
        None => eprintln!("  no --database-url: PostgreSQL figures skipped (cargo xtask bench event-store starts one)"),
    }
    print!("{}", bench::report(&figures));
    Ok(())
}
