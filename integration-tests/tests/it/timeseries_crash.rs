//! Durability of the time-series engine under SIGKILL during ingest: every
//! acknowledged point is there after each restart, with its exact value.

use timeseries::Engine;
use timeseries::query::{Query, QueryResult};

use crate::support::{run_then_kill, unique};

const SEED: u64 = 20_261_125;
const ROUNDS: u64 = 6;
const T0: i64 = 1_672_531_200_000_000_000;

#[test]
fn acknowledged_points_survive_repeated_kill_9() {
    let dir = std::env::temp_dir().join(unique("ts-crash"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut acked = 0i64;
    for round in 0..ROUNDS {
        let wanted = 5 + (SEED.wrapping_mul(round + 3) % 60) as usize;
        let args = [dir.display().to_string(), (SEED + round).to_string()];
        run_then_kill(env!("CARGO_BIN_EXE_ts-crash-writer"), &args, wanted, |ack| {
            if let [n] = ack {
                acked = acked.max(n.parse().expect("count"));
            }
        });

        let engine = Engine::open(&dir).expect("opens without manual repair");
        let QueryResult::Raw(series) = engine.query(&Query::raw("cpu", 0, i64::MAX, vec![])).expect("query") else {
            panic!("raw result")
        };
        let mut all: Vec<(i64, f64)> = series.into_iter().flat_map(|s| s.points).collect();
        all.sort_by_key(|(t, _)| *t);
        assert!(all.len() as i64 >= acked, "round {round}: {} points stored, {acked} acknowledged", all.len());
        for (i, (t, v)) in all.iter().enumerate() {
            assert_eq!(*t, T0 + i as i64 * 1_000_000_000, "round {round}: point {i} missing or moved");
            assert_eq!(*v, i as f64, "round {round}: point {i} has the wrong value");
        }
    }
    assert!(acked >= ROUNDS as i64 * 5, "the writer made progress ({acked} points)");
    std::fs::remove_dir_all(&dir).ok();
}

/// A bulk `platform ts write` killed with SIGKILL halfway, then run again on
/// the same file: the second run finishes (the file's start is now older
/// than the out-of-order window: a back-fill, and what was stored already
/// is a duplicate), and every bucket at every level equals a naive
/// recomputation of the file.
#[test]
fn an_interrupted_load_run_again_converges_to_the_file() {
    use std::collections::BTreeMap;
    use std::process::Command;
    use timeseries::aggregate::{Agg, Interval};

    let root = std::env::temp_dir().join(unique("ts-reload"));
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("temp dir");
    let cli = env!("CARGO_BIN_EXE_platform-cli");
    let run = |args: &[&str]| {
        let out = Command::new(cli).arg("--data").arg(&data).args(args).output().expect("run platform-cli");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for field in ["usage_user", "usage_system"] {
        run(&[
            "ts",
            "create-series",
            "--name",
            &format!("cpu_{field}"),
            "--tags",
            "hostname",
            "--unit",
            "percent",
            "--retention-days",
            "3650",
        ]);
    }
    // 30 hosts x 2 fields x 24 h at 10 s, seeded integer random walks.
    let (hosts, steps) = (30usize, 8640i64);
    let mut rng = SEED;
    let mut next = || {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % 11
    };
    let mut walks = vec![50i64; hosts * 2];
    let mut file = String::new();
    let mut points: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    for s in 0..steps {
        let t = T0 + s * 10_000_000_000;
        for h in 0..hosts {
            let mut fields = Vec::new();
            for (f, name) in ["usage_user", "usage_system"].iter().enumerate() {
                let w = &mut walks[h * 2 + f];
                *w = (*w + next() as i64 - 5).clamp(0, 100);
                fields.push(format!("{name}={w}i"));
                points.entry((format!("cpu_{name}"), format!("host_{h}"))).or_default().push((t, *w as f64));
            }
            file.push_str(&format!("cpu,hostname=host_{h} {} {t}\n", fields.join(",")));
        }
    }
    let lp = root.join("cpu.lp");
    std::fs::write(&lp, &file).expect("write the file");

    // Killed once partitions exist: the load got past its first seals.
    let mut child = Command::new(cli)
        .arg("--data")
        .arg(&data)
        .args(["ts", "write"])
        .arg(&lp)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the load");
    let blocks = data.join("timeseries").join("blocks").join("cpu_usage_user");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_dir(&blocks).map_or(0, |d| d.count()) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let finished_before = child.try_wait().expect("poll").is_some();
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(!finished_before, "the load was killed while it ran");

    let out = run(&["ts", "write", lp.to_str().expect("utf-8 path")]);
    assert!(out.contains("already stored"), "the second run reports what it found stored: {out}");

    let engine = Engine::open(data.join("timeseries")).expect("open");
    let (from, to) = (T0, T0 + steps * 10_000_000_000);
    for ((metric, host), list) in &points {
        let QueryResult::Raw(raw) = engine
            .query(&Query::raw(metric, from, to, vec![timeseries::model::Matcher::eq("hostname", host)]))
            .expect("raw")
        else {
            panic!("raw")
        };
        assert_eq!(raw.len(), 1);
        assert_eq!(&raw[0].points, list, "{metric} {host}: every point once, in order");
        for every in [Interval::MINUTE, Interval::HOUR, Interval::DAY] {
            let q = Query::aggregate(
                metric,
                from,
                to,
                vec![timeseries::model::Matcher::eq("hostname", host)],
                every,
                vec![Agg::Sum, Agg::Min, Agg::Max],
            );
            let QueryResult::Buckets { groups, .. } = engine.query(&q).expect("buckets") else { panic!("buckets") };
            let got: Vec<(i64, u64, Vec<Option<f64>>)> =
                groups[0].buckets.iter().map(|b| (b.start, b.count, b.values.clone())).collect();
            let mut naive: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for (t, v) in list {
                naive.entry(every.bucket_start(*t, 0)).or_default().push(*v);
            }
            let want: Vec<(i64, u64, Vec<Option<f64>>)> = naive
                .into_iter()
                .map(|(start, vs)| {
                    let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (start, vs.len() as u64, vec![Some(vs.iter().sum()), Some(min), Some(max)])
                })
                .collect();
            assert_eq!(got, want, "{metric} {host} every {every}");
        }
    }
    assert_eq!(engine.stats().points, (hosts * 2) as u64 * steps as u64, "no point twice");
    drop(engine);
    std::fs::remove_dir_all(&root).ok();
}
