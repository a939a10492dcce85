//! `cargo xtask bench timeseries`: a TSBS-like cpu-only dataset (10 fields
//! per host, 10 s interval, 100 hosts x 1 day by default) ingested pre-parsed
//! and as line protocol, bytes per point on disk, query latency for
//! single-groupby-1-1-1, single-groupby-1-8-1 and lastpoint, memory per
//! series; and, in the same run, the same line-protocol file ingested by
//! VictoriaMetrics on loopback for its ingest time and disk bytes.
//!
//! With `--series N` it measures high cardinality instead: N series (N/10
//! hosts), `--hours` of points each (default 4: the head then holds the
//! 2 hours a 1-hour out-of-order window keeps), pre-parsed ingest rate,
//! resident memory per series (and the head's and index's share of it), the
//! latency of a series lookup whose tag matcher selects 1% (`rack`), and the
//! time to reopen the engine (replaying its log).
//!
//! Usage: bench_timeseries [--hosts N] [--hours N] [--quick] [--no-vm] [--series N]
//! (set `KEEP_BENCH_DATA=1` to keep the data directory for inspection)

use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain_core::testkit::bench::{self, median};
use serde_json::Value;
use timeseries::aggregate::{Agg, Interval};
use timeseries::line_protocol::{BatchMode, Precision};
use timeseries::model::{Matcher, Point, SeriesSchema};
use timeseries::query::Query;
use timeseries::scenario::SplitMix64;
use timeseries::{Engine, ingest};

const NAME: &str = "timeseries";
const FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];
const TAG_KEYS: [&str; 10] = [
    "hostname",
    "region",
    "datacenter",
    "rack",
    "os",
    "arch",
    "team",
    "service",
    "service_version",
    "service_environment",
];
/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600_000_000_000;
const STEP: i64 = 10_000_000_000;

fn e<T: std::fmt::Display>(x: T) -> String {
    x.to_string()
}

struct Args {
    hosts: usize,
    hours: i64,
    vm: bool,
    /// High-cardinality mode: this many series.
    series: Option<usize>,
}

fn args() -> Result<Args, String> {
    let mut a = Args { hosts: 100, hours: 24, vm: true, series: None };
    let mut hours = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--hosts" => a.hosts = it.next().and_then(|h| h.parse().ok()).ok_or("--hosts needs a number")?,
            "--hours" => hours = Some(it.next().and_then(|h| h.parse().ok()).ok_or("--hours needs a number")?),
            "--series" => {
                a.series = Some(it.next().and_then(|h| h.parse().ok()).ok_or("--series needs a number")?);
            }
            "--quick" => {
                a.hosts = 10;
                a.hours = 12;
            }
            "--no-vm" => a.vm = false,
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: bench_timeseries [--hosts N] [--hours N] [--quick] [--no-vm] [--series N]"
                ));
            }
        }
    }
    a.hours = hours.unwrap_or(if a.series.is_some() { 4 } else { a.hours });
    if a.hours < 1 {
        return Err("--hours must be at least 1".into());
    }
    Ok(a)
}

/// The tags of host `h`, TSBS style.
fn host_tags(h: usize) -> Vec<(String, String)> {
    let regions = ["us-east-1", "us-west-1", "eu-west-1", "ap-southeast-1"];
    let values = [
        format!("host_{h}"),
        regions[h % 4].to_owned(),
        format!("{}{}", regions[h % 4], ["a", "b", "c"][h % 3]),
        (h % 100).to_string(),
        ["Ubuntu16.10", "Ubuntu15.10", "Ubuntu16.04"][h % 3].to_owned(),
        ["x86", "x64"][h % 2].to_owned(),
        ["SF", "NYC", "LON", "CHI"][h % 4].to_owned(),
        (h % 20).to_string(),
        (h % 2).to_string(),
        ["production", "staging", "test"][h % 3].to_owned(),
    ];
    TAG_KEYS.iter().map(|k| (*k).to_owned()).zip(values).collect()
}

/// Fixed-seed clamped random walks, integers 0..=100 like TSBS cpu-only.
struct Data {
    hosts: usize,
    steps: i64,
    walks: Vec<i64>,
    rng: SplitMix64,
    tags: Vec<Vec<(String, String)>>,
}

impl Data {
    fn new(hosts: usize, hours: i64) -> Self {
        let mut rng = SplitMix64(20_261_125);
        let walks = (0..hosts * FIELDS.len()).map(|_| (rng.next_u64() % 101) as i64).collect();
        Self { hosts, steps: hours * 360, walks, rng, tags: (0..hosts).map(host_tags).collect() }
    }

    /// Advances every walk one step and calls `f(host, field, value)`.
    fn step(&mut self, mut f: impl FnMut(usize, usize, i64)) {
        for h in 0..self.hosts {
            for (fi, _) in FIELDS.iter().enumerate() {
                let w = &mut self.walks[h * FIELDS.len() + fi];
                *w = (*w + (self.rng.next_u64() % 11) as i64 - 5).clamp(0, 100);
                f(h, fi, *w);
            }
        }
    }

    fn points(&self) -> u64 {
        self.hosts as u64 * FIELDS.len() as u64 * self.steps as u64
    }
}

fn schemas(engine: &Engine) -> Result<(), String> {
    for f in FIELDS {
        let s = SeriesSchema::new(&format!("cpu_{f}"), &TAG_KEYS, "percent", 3650, &["raw", "1min", "1hour", "1day"]);
        engine.create_series(s).map_err(e)?;
    }
    Ok(())
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|en| {
            let p = en.path();
            if p.is_dir() { dir_bytes(&p) } else { en.metadata().map(|m| m.len()).unwrap_or(0) }
        })
        .sum()
}

fn write_line_protocol(path: &Path, hosts: usize, hours: i64) -> Result<(), String> {
    let mut data = Data::new(hosts, hours);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).map_err(e)?);
    let prefixes: Vec<String> = data
        .tags
        .iter()
        .map(|t| format!("cpu,{}", t.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")))
        .collect();
    let mut row = vec![0i64; FIELDS.len()];
    for s in 0..data.steps {
        let ts = START + s * STEP;
        let mut lines = Vec::with_capacity(hosts);
        let mut current = usize::MAX;
        data.step(|h, fi, v| {
            if current != h {
                current = h;
            }
            row[fi] = v;
            if fi + 1 == FIELDS.len() {
                let fields: Vec<String> = FIELDS.iter().zip(&row).map(|(f, v)| format!("{f}={v}i")).collect();
                lines.push(format!("{} {} {ts}\n", prefixes[h], fields.join(",")));
            }
        });
        for l in lines {
            out.write_all(l.as_bytes()).map_err(e)?;
        }
    }
    out.flush().map_err(e)
}

fn ingest_pre_parsed(dir: &Path, hosts: usize, hours: i64) -> Result<(f64, f64, Engine), String> {
    let engine = Engine::open(dir).map_err(e)?;
    schemas(&engine)?;
    let mut data = Data::new(hosts, hours);
    let (mut busy, mut cpu) = (Duration::ZERO, 0.0);
    let batch_steps = (10_000 / (hosts * FIELDS.len())).max(1) as i64;
    let mut s = 0;
    while s < data.steps {
        let mut batch = Vec::with_capacity(10_000);
        for k in s..(s + batch_steps).min(data.steps) {
            let ts = START + k * STEP;
            let tags = data.tags.clone();
            data.step(|h, fi, v| {
                batch.push(Point {
                    series: format!("cpu_{}", FIELDS[fi]),
                    tags: tags[h].iter().cloned().collect(),
                    timestamp: ts,
                    value: v as f64,
                    quality: Default::default(),
                    unit: None,
                });
            });
        }
        let (t0, c0) = (Instant::now(), cpu_seconds());
        engine.write(&batch).map_err(e)?;
        busy += t0.elapsed();
        cpu += cpu_seconds() - c0;
        s += batch_steps;
    }
    let n = data.points() as f64;
    Ok((n / busy.as_secs_f64(), n / cpu.max(1e-9), engine))
}

fn latency(engine: &Engine, n: usize, mut make: impl FnMut(&mut SplitMix64) -> Query) -> Result<(f64, f64), String> {
    let mut rng = SplitMix64(7);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let q = make(&mut rng);
        let t0 = Instant::now();
        engine.query(&q).map_err(e)?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((median(times.clone()), times[(times.len() * 99 / 100).min(times.len() - 1)]))
}

/// VictoriaMetrics on loopback, stopped (by pid) when dropped.
struct Vm {
    child: Child,
    port: u16,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(e)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(body)).map_err(e)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(e)?;
    resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad HTTP response: {resp:.80}"))
}

fn victoria(lp: &Path, data_dir: &Path) -> Result<Option<(f64, u64)>, String> {
    let Ok(bin) = which("victoria-metrics") else {
        eprintln!("  victoria-metrics not found: apt-get install victoria-metrics to compare (skipped)");
        return Ok(None);
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(e)?.port();
    let child = Command::new(bin)
        .args([
            format!("-storageDataPath={}", data_dir.display()),
            format!("-httpListenAddr=127.0.0.1:{port}"),
            "-retentionPeriod=100y".into(),
            "-loggerLevel=ERROR".into(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(e)?;
    let vm = Vm { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(vm.port, "GET", "/health", b"").is_err() {
        if Instant::now() > deadline {
            return Err("victoria-metrics did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read(lp).map_err(e)?;
    let t0 = Instant::now();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + (4 << 20)).min(text.len());
        while end < text.len() && text[end - 1] != b'\n' {
            end += 1;
        }
        let code = http(vm.port, "POST", "/write", &text[at..end])?;
        if code / 100 != 2 {
            return Err(format!("victoria-metrics refused a write: HTTP {code}"));
        }
        at = end;
    }
    http(vm.port, "GET", "/internal/force_flush", b"")?;
    let took = t0.elapsed().as_secs_f64();
    drop(vm); // stop, so the disk size is final
    Ok(Some((took, dir_bytes(data_dir))))
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH").unwrap_or_default().split(':').map(|d| Path::new(d).join(name)).find(|p| p.exists()).ok_or(())
}

/// The allocator the `platform` binary ships with, so the figures are the deployed ones.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// High cardinality: `series` series, pre-parsed, then memory, lookups and reopen.
fn scale(root: &Path, series: usize, hours: i64) -> Result<Vec<Value>, String> {
    let hosts = series.div_ceil(FIELDS.len());
    let mut data = Data::new(hosts, hours);
    eprintln!(
        "timeseries bench, high cardinality: {} series ({hosts} hosts x 10 fields) x {hours} h at 10 s = {} points",
        hosts * FIELDS.len(),
        data.points()
    );
    // Every series' point is built once, before memory is measured; a step
    // only sets its time and value (building tag maps per point would cost
    // more than the writes measured).
    let mut batches: Vec<Vec<Point>> = Vec::new();
    {
        let tags: Vec<std::collections::BTreeMap<String, String>> =
            data.tags.iter().map(|t| t.iter().cloned().collect()).collect();
        let mut all = Vec::with_capacity(hosts * FIELDS.len());
        data.step(|h, fi, _| {
            all.push(Point {
                series: format!("cpu_{}", FIELDS[fi]),
                tags: tags[h].clone(),
                timestamp: START,
                value: 0.0,
                quality: Default::default(),
                unit: None,
            })
        });
        while !all.is_empty() {
            let rest = all.split_off(all.len().min(10_000));
            batches.push(std::mem::replace(&mut all, rest));
        }
    }
    let mut data = Data::new(hosts, hours);
    let dir = root.join("scale");
    let rss0 = rss_bytes();
    let engine = Engine::open(&dir).map_err(e)?;
    schemas(&engine)?;
    let (mut busy, mut cpu) = (Duration::ZERO, 0.0);
    let bar = indicatif::ProgressBar::new(data.steps as u64);
    let mut values = Vec::with_capacity(hosts * FIELDS.len());
    for step in 0..data.steps {
        let ts = START + step * STEP;
        values.clear();
        data.step(|_, _, v| values.push(v as f64));
        let mut next = values.iter();
        for batch in &mut batches {
            for p in batch.iter_mut() {
                p.timestamp = ts;
                p.value = next.next().copied().unwrap_or_default();
            }
            let (t0, c0) = (Instant::now(), cpu_seconds());
            engine.write(batch).map_err(e)?;
            busy += t0.elapsed();
            cpu += cpu_seconds() - c0;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rss = rss_bytes().saturating_sub(rss0);
    let stats = engine.stats();
    let n = data.points() as f64;
    let per_series = |b: u64| b as f64 / stats.series.max(1) as f64;
    eprintln!(
        "  ingest {:.0} points/s ({:.0} per CPU-second); RSS growth {:.0} bytes per series (head {:.0}, index {:.0})",
        n / busy.as_secs_f64(),
        n / cpu.max(1e-9),
        per_series(rss),
        per_series(stats.head_bytes),
        per_series(stats.index_bytes)
    );
    let mut rng = SplitMix64(11);
    let mut times = Vec::new();
    let mut selected = 0;
    for _ in 0..200 {
        let rack = (rng.next_u64() % 100).to_string();
        let t0 = Instant::now();
        selected = engine.series("cpu_usage_user", &[Matcher::eq("rack", &rack)]).map_err(e)?.len();
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let (p50, p99) = (median(times.clone()), times[times.len() * 99 / 100]);
    eprintln!("  1% lookup ({selected} of {} series of a metric): p50 {p50:.3} ms, p99 {p99:.3} ms", hosts);
    drop(engine);
    let t0 = Instant::now();
    let engine = Engine::open(&dir).map_err(e)?;
    let reopen = t0.elapsed().as_secs_f64();
    eprintln!("  reopen (log replay) {reopen:.2} s; {} series back", engine.stats().series);
    let label = |m: &str| format!("{m}_{series}_series");
    Ok(vec![
        bench::figure(NAME, &label("scale_ingest"), n / busy.as_secs_f64(), "points/s", None, None, "report"),
        bench::figure(NAME, &label("scale_ingest_per_core"), n / cpu.max(1e-9), "points/cpu-s", None, None, "report"),
        bench::figure(NAME, &label("memory_per_series"), per_series(rss), "bytes", None, None, "<=1536"),
        bench::figure(
            NAME,
            &label("head_bytes_per_series"),
            per_series(stats.head_bytes),
            "bytes",
            None,
            None,
            "report",
        ),
        bench::figure(
            NAME,
            &label("index_bytes_per_series"),
            per_series(stats.index_bytes),
            "bytes",
            None,
            None,
            "report",
        ),
        bench::figure(NAME, &label("lookup_1pct_p50"), p50, "ms", None, None, "report"),
        bench::figure(NAME, &label("lookup_1pct_p99"), p99, "ms", None, None, "report"),
        bench::figure(NAME, &label("reopen"), reopen, "s", None, None, "report"),
    ])
}

fn main() -> Result<(), String> {
    let a = args()?;
    let root = std::env::temp_dir().join(format!("bench-ts-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(e)?;
    if let Some(series) = a.series {
        let figures = scale(&root, series, a.hours)?;
        print!("{}", bench::report(&figures));
        if std::env::var_os("KEEP_BENCH_DATA").is_none() {
            std::fs::remove_dir_all(&root).ok();
        }
        return Ok(());
    }
    let points = Data::new(a.hosts, a.hours).points();
    eprintln!(
        "timeseries bench: {} hosts x 10 fields x {} h at 10 s = {points} points; data in {}",
        a.hosts,
        a.hours,
        root.display()
    );
    let lp = root.join("cpu.lp");
    write_line_protocol(&lp, a.hosts, a.hours)?;
    let mut figures: Vec<Value> = Vec::new();

    let rss0 = rss_bytes();
    let (rate, per_core, engine) = ingest_pre_parsed(&root.join("pre"), a.hosts, a.hours)?;
    let rss = rss_bytes().saturating_sub(rss0);
    // Like VictoriaMetrics' force_flush below: make what was written compact.
    engine.flush().map_err(e)?;
    let stats = engine.stats();
    eprintln!("  pre-parsed ingest: {rate:.0} points/s, {per_core:.0} points per CPU-second; {} series", stats.series);
    eprintln!(
        "  memory: RSS growth {} bytes per series; head points {} bytes per series",
        rss / stats.series.max(1),
        stats.head_bytes / stats.series.max(1)
    );
    eprintln!(
        "  on disk: log {} bytes, partitions {} bytes (blocks {} bytes for {} sealed points)",
        stats.log_bytes, stats.partition_bytes, stats.sealed_block_bytes, stats.sealed_points
    );
    figures.push(bench::figure(NAME, "ingest_pre_parsed", rate, "points/s", None, None, "report"));
    figures.push(bench::figure(NAME, "ingest_pre_parsed_per_core", per_core, "points/cpu-s", None, None, ">=250000"));
    figures.push(bench::figure(NAME, "bytes_per_point_on_disk", stats.bytes_per_point, "bytes", None, None, "<=1.5"));
    figures.push(bench::figure(
        NAME,
        "block_bytes_per_point",
        stats.block_bytes_per_point,
        "bytes",
        None,
        None,
        "report",
    ));
    figures.push(bench::figure(
        NAME,
        "memory_per_series",
        rss as f64 / stats.series.max(1) as f64,
        "bytes",
        None,
        None,
        "report",
    ));

    let hour = 3600 * 1_000_000_000i64;
    let span = a.hours * hour;
    let pick_hour = |rng: &mut SplitMix64| START + (rng.next_u64() % (a.hours as u64 - 1)) as i64 * hour;
    let (p50, p99) = latency(&engine, 200, |rng| {
        let from = pick_hour(rng);
        let host = format!("host_{}", rng.next_u64() % a.hosts as u64);
        Query::aggregate(
            "cpu_usage_user",
            from,
            from + hour,
            vec![Matcher::eq("hostname", &host)],
            Interval::MINUTE,
            vec![Agg::Max],
        )
    })?;
    figures.push(bench::figure(NAME, "single_groupby_1_1_1_p50", p50, "ms", None, None, "<5"));
    figures.push(bench::figure(NAME, "single_groupby_1_1_1_p99", p99, "ms", None, None, "report"));
    let (p50, p99) = latency(&engine, 200, |rng| {
        let from = pick_hour(rng);
        let hosts: Vec<String> = (0..8).map(|_| format!("host_{}", rng.next_u64() % a.hosts as u64)).collect();
        let m = Matcher { key: "hostname".into(), op: timeseries::model::MatchOp::In(hosts) };
        Query::aggregate("cpu_usage_user", from, from + hour, vec![m], Interval::MINUTE, vec![Agg::Max])
    })?;
    figures.push(bench::figure(NAME, "single_groupby_1_8_1_p50", p50, "ms", None, None, "report"));
    figures.push(bench::figure(NAME, "single_groupby_1_8_1_p99", p99, "ms", None, None, "report"));
    let mut times = Vec::new();
    for _ in 0..100 {
        let t0 = Instant::now();
        for f in FIELDS {
            engine.last(&format!("cpu_{f}"), &[]).map_err(e)?;
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    figures.push(bench::figure(NAME, "lastpoint_all_hosts_p50", median(times), "ms", None, None, "report"));
    let _ = span;
    let our_disk = stats.disk_bytes;
    drop(engine);

    let lp_engine = Engine::open(root.join("lp")).map_err(e)?;
    schemas(&lp_engine)?;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let file = std::fs::File::open(&lp).map_err(e)?;
    let report = ingest::load(
        &lp_engine,
        std::io::BufReader::with_capacity(1 << 20, file),
        Precision::Ns,
        BatchMode::Strict,
        1000,
    )
    .map_err(e)?;
    lp_engine.flush().map_err(e)?;
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let n = report.written.accepted as f64;
    eprintln!("  line-protocol ingest: {:.0} points/s, {:.0} points per CPU-second", n / wall, n / cpu.max(1e-9));
    figures.push(bench::figure(NAME, "ingest_line_protocol", n / wall, "points/s", None, None, "report"));
    figures.push(bench::figure(
        NAME,
        "ingest_line_protocol_per_core",
        n / cpu.max(1e-9),
        "points/cpu-s",
        None,
        None,
        "report",
    ));
    drop(lp_engine);

    if a.vm
        && let Some((vm_secs, vm_disk)) = victoria(&lp, &root.join("vm"))?
    {
        let vm_rate = points as f64 / vm_secs;
        eprintln!("  victoria-metrics: {vm_rate:.0} points/s, {vm_disk} bytes on disk (ours {our_disk})");
        figures.push(bench::figure(NAME, "vm_ingest_line_protocol", vm_rate, "points/s", None, None, "baseline"));
        figures.push(bench::figure(
            NAME,
            "ingest_line_protocol_vs_vm",
            n / wall,
            "points/s",
            Some("VictoriaMetrics /write, same file, same run"),
            Some(n / wall / vm_rate),
            "report",
        ));
        figures.push(bench::figure(NAME, "vm_disk_bytes", vm_disk as f64, "bytes", None, None, "baseline"));
        figures.push(bench::figure(
            NAME,
            "disk_bytes_vs_vm",
            our_disk as f64,
            "bytes",
            Some("VictoriaMetrics disk bytes, same data"),
            Some(our_disk as f64 / vm_disk.max(1) as f64),
            "<=1.0",
        ));
    }

    print!("{}", bench::report(&figures));
    if std::env::var_os("KEEP_BENCH_DATA").is_none() {
        std::fs::remove_dir_all(&root).ok();
    }
    Ok(())
}
