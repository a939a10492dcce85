//! Engine tests on real files: the seed scenario, restart, bad input,
//! out-of-order points, retention, last values, and aggregates against a
//! naive recomputation on random data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;

use crate::aggregate::{Agg, Interval};
use crate::model::{Matcher, NANOS_PER_SEC, NanPolicy, Point, SeriesSchema};
use crate::query::{Query, QueryResult};
use crate::{Engine, Error};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ts-engine-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp dir: {e}"));
    dir
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}

const T0: i64 = crate::scenario::BASE_TIME;
const MIN: i64 = 60 * NANOS_PER_SEC;
const HOUR: i64 = 60 * MIN;

fn seed_schema() -> SeriesSchema {
    crate::scenario::schema()
}

fn seed_points() -> Vec<Point> {
    crate::scenario::points()
}

/// A fresh engine in a temp dir holding the seed's series and 1000 points.
fn seeded_engine() -> (PathBuf, Engine) {
    let dir = temp_dir();
    let engine = Engine::open(&dir).expect("open");
    engine.create_series(seed_schema()).expect("create");
    engine.write(&seed_points()).expect("write");
    (dir, engine)
}

fn buckets(r: QueryResult) -> Vec<(i64, u64, Vec<Option<f64>>)> {
    match r {
        QueryResult::Buckets { groups, .. } => {
            groups.into_iter().flat_map(|g| g.buckets).map(|b| (b.start, b.count, b.values)).collect()
        }
        QueryResult::Raw(_) => panic!("expected buckets"),
    }
}

#[test]
fn seed_scenario_matches_a_naive_computation_and_survives_a_restart() {
    let dir = temp_dir();
    let points = seed_points();
    let (from, to) = (T0 + 12 * HOUR, T0 + 18 * HOUR);
    let beijing = vec![Matcher::eq("location", "beijing")];
    let naive: Vec<&Point> =
        points.iter().filter(|p| p.timestamp >= from && p.timestamp < to && p.tags["location"] == "beijing").collect();
    assert!(!naive.is_empty());
    let aggs = vec![Agg::Count, Agg::Min, Agg::Max, Agg::Avg, Agg::Sum];
    let q = Query::aggregate("sensor_temperature", from, to, beijing.clone(), Interval::HOUR, aggs.clone());
    let first_answer = {
        let engine = Engine::open(&dir).expect("open");
        assert!(engine.create_series(seed_schema()).expect("create"));
        assert!(!engine.create_series(seed_schema()).expect("same schema again is a no-op"));
        let report = engine.write(&points.clone()).expect("write");
        assert_eq!(report.accepted, 1000);
        match engine.query(&Query::raw("sensor_temperature", from, to, beijing.clone())).expect("raw") {
            QueryResult::Raw(series) => assert_eq!(series.iter().map(|s| s.points.len()).sum::<usize>(), naive.len()),
            QueryResult::Buckets { .. } => panic!("expected raw"),
        }
        let answer = engine.query(&q).expect("aggregate");
        let QueryResult::Buckets { level, .. } = &answer else { panic!("buckets") };
        assert_eq!(level.as_deref(), Some("1h"), "answered from the 1hour rollup");
        let got = buckets(answer.clone());
        assert_eq!(got.len(), 6);
        for (start, count, values) in &got {
            let in_bucket: Vec<f64> =
                naive.iter().filter(|p| p.timestamp >= *start && p.timestamp < start + HOUR).map(|p| p.value).collect();
            assert_eq!(*count as usize, in_bucket.len());
            let min = in_bucket.iter().copied().fold(f64::INFINITY, f64::min);
            let max = in_bucket.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = in_bucket.iter().sum();
            assert_eq!(values[1], Some(min));
            assert_eq!(values[2], Some(max));
            assert!((values[4].expect("sum") - sum).abs() < 1e-9);
            assert!((values[3].expect("avg") - sum / in_bucket.len() as f64).abs() < 1e-9);
        }
        // 90-second buckets are tiled by no rollup level: raw points answer.
        let odd = Query::aggregate(
            "sensor_temperature",
            from,
            to,
            beijing.clone(),
            Interval::from_nanos(90 * NANOS_PER_SEC).expect("90s"),
            aggs.clone(),
        );
        let QueryResult::Buckets { level, .. } = engine.query(&odd).expect("odd") else { panic!("buckets") };
        assert_eq!(level, None);
        answer
    };
    let engine = Engine::open(&dir).expect("reopen replays the log");
    assert_eq!(engine.query(&q).expect("again"), first_answer);
    assert_eq!(engine.stats().points, 1000);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_gets_typed_errors_and_writes_nothing() {
    let dir = temp_dir();
    let engine = Engine::open(&dir).expect("open");
    engine.create_series(seed_schema()).expect("create");
    let ok = || Point::new("sensor_temperature", &[("location", "beijing")], T0, 20.0);
    let mut unknown = ok();
    unknown.series = "pressure".into();
    assert!(matches!(engine.write(&[ok(), unknown]), Err(Error::UnknownSeries(_))));
    let mut tag = ok();
    tag.tags.insert("colour".into(), "red".into());
    assert!(matches!(engine.write(&[tag]), Err(Error::UnknownTagKey { .. })));
    let mut unit = ok();
    unit.unit = Some("fahrenheit".into());
    assert!(matches!(engine.write(&[unit]), Err(Error::WrongUnit { .. })));
    let mut nan = ok();
    nan.value = f64::NAN;
    assert!(matches!(engine.write(&[nan]), Err(Error::NaN { .. })));
    assert_eq!(engine.stats().points, 0, "rejected batches write nothing");

    engine.write(&[ok()]).expect("write");
    let mut late = ok();
    late.timestamp = T0 - 2 * HOUR;
    engine.write(&[late]).expect("a point older than the out-of-order window is a back-fill, accepted");
    let mut expired = ok();
    expired.timestamp = T0 - 400 * 24 * HOUR;
    assert!(matches!(engine.write(&[expired]), Err(Error::TooOld { .. })), "older than the retention keeps");
    let mut in_window = ok();
    in_window.timestamp = T0 - 30 * MIN;
    engine.write(&[in_window]).expect("late point inside the window is accepted");

    assert!(matches!(
        engine.query(&Query::raw("sensor_temperature", T0, T0 - 1, vec![])),
        Err(Error::InvertedRange { .. })
    ));
    assert!(matches!(engine.query(&Query::raw("nope", T0, T0, vec![])), Err(Error::UnknownSeries(_))));
    let q = Query::aggregate("sensor_temperature", 0, T0, vec![], Interval::SECOND, vec![Agg::Count]);
    assert!(matches!(engine.query(&q), Err(Error::TooManyBuckets { .. })));
    let q = Query::raw("sensor_temperature", T0, T0 + 1, vec![Matcher::parse("location=~(").expect("m")]);
    assert!(matches!(engine.query(&q), Err(Error::InvalidRegex { .. })));
    let mut other = seed_schema();
    other.unit = "kelvin".into();
    assert!(matches!(engine.create_series(other), Err(Error::SchemaConflict(_))));
    let mut drop_nan = SeriesSchema::new("humidity", &["location"], "percent", 30, &["raw", "1min"]);
    drop_nan.nan_policy = NanPolicy::Drop;
    engine.create_series(drop_nan).expect("create");
    let mut nan = Point::new("humidity", &[], T0, f64::NAN);
    nan.series = "humidity".into();
    let r = engine.write(&[nan, Point::new("humidity", &[], T0, 40.0)]).expect("write");
    assert_eq!((r.accepted, r.dropped), (1, 1));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn late_points_update_their_buckets_and_retention_hides_expired_data() {
    let dir = temp_dir();
    let engine = Engine::open(&dir).expect("open");
    let mut schema = SeriesSchema::new("cpu", &["host"], "percent", 1, &["raw", "1min", "1hour"]);
    schema.out_of_order_secs = 600;
    engine.create_series(schema).expect("create");
    let p = |t: i64, v: f64| Point::new("cpu", &[("host", "h1")], t, v);
    engine.write(&[p(T0, 1.0), p(T0 + 5 * MIN, 2.0)]).expect("write");
    engine.write(&[p(T0 + MIN, 10.0)]).expect("late but inside the window");
    let q = Query::aggregate("cpu", T0, T0 + HOUR, vec![], Interval::HOUR, vec![Agg::Count, Agg::Sum, Agg::Last]);
    assert_eq!(buckets(engine.query(&q).expect("q")), vec![(T0, 3, vec![Some(3.0), Some(13.0), Some(2.0)])]);
    let last = engine.last("cpu", &[]).expect("last");
    assert_eq!((last.len(), last[0].time, last[0].value), (1, T0 + 5 * MIN, 2.0));
    assert_eq!(last[0].tags, vec![("host".to_owned(), "h1".to_owned())]);

    // Two days later the first day is past the one-day retention.
    engine.write(&[p(T0 + 48 * HOUR, 5.0)]).expect("write");
    let QueryResult::Raw(series) = engine.query(&Query::raw("cpu", 0, i64::MAX, vec![])).expect("raw") else {
        panic!("raw")
    };
    assert_eq!(series[0].points, vec![(T0 + 48 * HOUR, 5.0)], "expired points are never returned");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn group_by_splits_buckets_by_tag() {
    let (dir, engine) = seeded_engine();
    let mut q = Query::aggregate(
        "sensor_temperature",
        T0,
        T0 + 24 * HOUR,
        vec![],
        Interval::DAY,
        vec![Agg::Count, Agg::Percentile(0.95)],
    );
    q.group_by = vec!["location".into()];
    let QueryResult::Buckets { groups, .. } = engine.query(&q).expect("q") else { panic!("buckets") };
    assert_eq!(groups.len(), 3);
    let total: u64 = groups.iter().flat_map(|g| &g.buckets).map(|b| b.count).sum();
    assert_eq!(total, 288, "one day of 5-minute points");
    for g in &groups {
        let p95 = g.buckets[0].values[1].expect("p95");
        assert!((15.0..=25.0).contains(&p95), "{p95}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn aggregates_equal_a_naive_recomputation(values in proptest::collection::vec((0i64..7200, -1e6f64..1e6), 1..300), every_min in 1i64..90) {
        let dir = temp_dir();
        let engine = Engine::open(&dir).expect("open");
        engine.create_series(SeriesSchema::new("m", &["k"], "u", 30, &["raw", "1min", "5min", "1hour"])).expect("create");
        let pts: Vec<Point> = values.iter().map(|(s, v)| Point::new("m", &[("k", "a")], T0 + s * NANOS_PER_SEC, *v)).collect();
        let mut sorted = pts.clone();
        sorted.sort_by_key(|p| p.timestamp);
        engine.write(&sorted.clone()).expect("write");
        let every = every_min * MIN;
        let q = Query::aggregate("m", T0, T0 + 2 * HOUR, vec![], Interval::from_nanos(every).expect("every"), vec![Agg::Count, Agg::Min, Agg::Max, Agg::Sum]);
        let got = buckets(engine.query(&q).expect("q"));
        let mut naive: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for p in &sorted {
            // Buckets are aligned to the Unix epoch, as in other TSDBs.
            naive.entry(p.timestamp.div_euclid(every) * every).or_default().push(p.value);
        }
        prop_assert_eq!(got.len(), naive.len());
        for ((start, count, v), (nstart, nv)) in got.iter().zip(&naive) {
            prop_assert_eq!(start, nstart);
            prop_assert_eq!(*count as usize, nv.len());
            prop_assert_eq!(v[1], nv.iter().copied().reduce(f64::min));
            prop_assert_eq!(v[2], nv.iter().copied().reduce(f64::max));
            let sum: f64 = nv.iter().sum();
            prop_assert!((v[3].expect("sum") - sum).abs() <= 1e-6 * sum.abs().max(1.0));
        }
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn sealed_partitions_answer_like_the_head_and_survive_restart() {
    let dir = temp_dir();
    let schema = SeriesSchema::new("gauge", &["host"], "celsius", 2, &["raw", "1min", "1hour", "1day"]);
    let mut rng = crate::scenario::SplitMix64(7);
    let mut level = [20.0f64, 30.0];
    let mut points = Vec::new();
    for i in 0..(4 * 24 * 60) {
        for (h, host) in ["a", "b"].iter().enumerate() {
            level[h] += rng.uniform(-0.5, 0.5);
            points.push(Point::new("gauge", &[("host", host)], T0 + i * MIN, (level[h] * 100.0).round() / 100.0));
        }
    }
    let day3 = (T0 + 2 * 24 * HOUR, T0 + 3 * 24 * HOUR);
    let q_rollup = Query::aggregate(
        "gauge",
        day3.0,
        day3.1,
        vec![],
        Interval::HOUR,
        vec![Agg::Count, Agg::Min, Agg::Max, Agg::Sum, Agg::First, Agg::Last],
    );
    let q_raw = Query::raw("gauge", day3.0, day3.0 + 3 * HOUR, vec![Matcher::eq("host", "b")]);
    let (a1, r1, stats) = {
        let engine = Engine::open(&dir).expect("open");
        engine.create_series(schema).expect("create");
        for (i, chunk) in points.chunks(5000).enumerate() {
            engine.write(chunk).expect("write");
            if i == 1 {
                // A checkpoint mid-way: replay must combine it with the log after it.
                engine.flush().expect("flush");
            }
        }
        (engine.query(&q_rollup).expect("rollup"), engine.query(&q_raw).expect("raw"), engine.stats())
    };
    let names: Vec<String> = std::fs::read_dir(dir.join("blocks").join("gauge"))
        .expect("blocks")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let widths: Vec<i64> = names
        .iter()
        .filter_map(|n| {
            n.strip_suffix(".part")?
                .split_once('-')
                .and_then(|(a, b)| Some(b.parse::<i64>().ok()? - a.parse::<i64>().ok()?))
        })
        .collect();
    assert!(widths.contains(&(24 * HOUR)), "whole sealed days are compacted into one partition: {names:?}");
    assert!(widths.iter().all(|w| [2 * HOUR, 6 * HOUR, 24 * HOUR].contains(w)), "{names:?}");
    // Four days were written with two days of retention: the oldest are gone.
    assert!(stats.points < points.len() as u64, "retention dropped old partitions");
    eprintln!(
        "after sealing: {} points, {} bytes on disk, {:.2} bytes/point; raw blocks {:.2} bytes/point",
        stats.points, stats.disk_bytes, stats.bytes_per_point, stats.block_bytes_per_point
    );
    // 120 points per block here: the header and pco framing weigh in; larger
    // blocks (the benchmark) come close to one byte per point.
    assert!(stats.block_bytes_per_point < 3.0, "{}", stats.block_bytes_per_point);
    let QueryResult::Raw(series) = &r1 else { panic!("raw") };
    assert_eq!(series[0].points.len(), 180);
    assert_eq!(buckets(a1.clone()).len(), 24);
    for (_, count, _) in buckets(a1.clone()) {
        assert_eq!(count, 120, "two hosts x 60 minutes");
    }
    let engine = Engine::open(&dir).expect("reopen");
    assert_eq!(engine.query(&q_rollup).expect("rollup"), a1, "same answer from disk after a restart");
    assert_eq!(engine.query(&q_raw).expect("raw"), r1);
    assert_eq!(engine.stats().points, stats.points);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn qualities_and_points_of_every_series_survive_a_checkpoint() {
    use crate::model::Quality;
    let dir = temp_dir();
    let schema = SeriesSchema::new("temp", &["device"], "celsius", 30, &["raw", "1min"]);
    let mut points = Vec::new();
    for (d, device) in ["a", "b", "c"].iter().enumerate() {
        for i in 0..30 {
            let mut p = Point::new("temp", &[("device", device)], T0 + i * MIN, d as f64 * 100.0 + i as f64);
            p.quality = match (i + d as i64) % 7 {
                0 => Quality::Suspect,
                3 => Quality::Bad,
                _ => Quality::Good,
            };
            points.push(p);
        }
    }
    type Head = Vec<(Vec<(i64, f64)>, BTreeMap<i64, Quality>)>;
    let head = |engine: &Engine| -> Head {
        let state = engine.read();
        (0..3u32)
            .map(|id| {
                (
                    state.series[id as usize].points.range(i64::MIN, i64::MAX).expect("head"),
                    state.series[id as usize].qualities.clone(),
                )
            })
            .collect()
    };
    let before = {
        let engine = Engine::open(&dir).expect("open");
        engine.create_series(schema).expect("create");
        engine.write(&points).expect("write");
        // The checkpoint a running engine rotates to: the head's chunks as they are.
        engine.rotate_with_chunks().expect("rotate");
        head(&engine)
    };
    assert!(before.iter().all(|(p, q)| p.len() == 30 && !q.is_empty()));
    {
        let engine = Engine::open(&dir).expect("reopen");
        assert_eq!(head(&engine), before, "the same from the head's chunks");
        assert_eq!(engine.stats().points, 90);
        // A late point waits beside the chunks; it survives the same way.
        let late = Point::new("temp", &[("device", "a")], T0 + 5 * MIN + 1, 7.0);
        engine.write(std::slice::from_ref(&late)).expect("late");
        engine.rotate_with_chunks().expect("rotate");
        let with_late = head(&engine);
        drop(engine);
        assert_eq!(head(&Engine::open(&dir).expect("reopen")), with_late);
        points.push(late);
    }
    let before = {
        let engine = Engine::open(&dir).expect("open");
        // The checkpoint of a flush: the head as one block for the metric.
        engine.flush().expect("flush");
        head(&engine)
    };
    let engine = Engine::open(&dir).expect("reopen");
    assert_eq!(head(&engine), before, "points and qualities of each series, in place");
    assert_eq!(engine.stats().points, 91);
    // Raw queries carry the qualities, from the head and, once sealed, from partitions.
    let written = |device: &str| -> Vec<(i64, Quality)> {
        points.iter().filter(|p| p.tags["device"] == device).map(|p| (p.timestamp, p.quality)).collect()
    };
    let raw = |engine: &Engine| -> Vec<(i64, Quality)> {
        let q = Query::raw("temp", T0, T0 + HOUR, vec![Matcher::eq("device", "b")]);
        let QueryResult::Raw(series) = engine.query(&q).expect("raw") else { panic!("raw") };
        series[0].points.iter().map(|(t, _)| (*t, series[0].quality_at(*t))).collect()
    };
    assert_eq!(raw(&engine), written("b"));
    engine.write(&[Point::new("temp", &[("device", "b")], T0 + 48 * HOUR, 1.0)]).expect("write");
    assert!(engine.stats().partition_bytes > 0, "the first hours are sealed");
    assert_eq!(raw(&engine), written("b"), "qualities read back from a sealed partition");
    drop(engine);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hourly_by_city_matches_the_points_of_each_city_and_hour() {
    let (dir, engine) = seeded_engine();
    let cities = crate::scenario::hourly_by_city(&engine).expect("per city");
    let mut names: Vec<&str> = cities.iter().map(|c| c.location.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["beijing", "guangzhou", "shanghai"]);
    let points = seed_points();
    for city in &cities {
        assert!(city.hours.len() >= 80, "{}: {} hours", city.location, city.hours.len());
        for (start, avg, p95) in &city.hours {
            let t = chrono::DateTime::parse_from_rfc3339(start).expect("rfc 3339").timestamp_nanos_opt().expect("ns");
            let values: Vec<f64> = points
                .iter()
                .filter(|p| p.tags["location"] == city.location && p.timestamp >= t && p.timestamp < t + HOUR)
                .map(|p| p.value)
                .collect();
            assert!(!values.is_empty(), "a bucket without points at {start}");
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            assert!((avg - (mean * 100.0).round() / 100.0).abs() < 0.011, "{} {start}: {avg} vs {mean}", city.location);
            // The sketch's p95 lies within the bucket's values (1% relative error).
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            assert!(*p95 <= max * 1.01 + 0.01 && *p95 >= min * 0.99 - 0.01, "p95 {p95} outside [{min}, {max}]");
        }
    }
    drop(engine);
    std::fs::remove_dir_all(&dir).ok();
}

/// A record kind only an earlier version wrote is refused by name, with
/// the file and offset, never skipped.
#[test]
fn a_log_record_of_an_earlier_format_is_refused_by_name() {
    let (dir, engine) = seeded_engine();
    drop(engine);
    let wal = dir.join("wal");
    let newest = std::fs::read_dir(&wal)
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .max()
        .expect("a segment");
    let mut frame = disk_format::FrameWriter::default();
    let start = frame.begin(5);
    frame.u32(0);
    frame.finish(start).expect("frame");
    let mut bytes = std::fs::read(&newest).expect("read");
    let offset = bytes.len() as u64;
    bytes.extend_from_slice(&frame.buf);
    std::fs::write(&newest, &bytes).expect("write");
    match Engine::open(&dir) {
        Err(Error::Replay { offset: at, source, .. }) => {
            assert_eq!(at, offset);
            assert!(matches!(*source, Error::EarlierFormat { kind: 5 }), "{source}");
        }
        other => panic!("expected the earlier format refused, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Every bucket of `every` over `[from, to)`, per series tag value:
/// count, sum, min and max, from the engine and from a naive recomputation.
type Buckets = BTreeMap<(String, i64), (u64, Option<f64>, Option<f64>, Option<f64>)>;

fn engine_buckets(engine: &Engine, every: Interval, from: i64, to: i64) -> Buckets {
    let mut q = Query::aggregate("bf", from, to, vec![], every, vec![Agg::Sum, Agg::Min, Agg::Max]);
    q.group_by = vec!["host".into()];
    let QueryResult::Buckets { groups, .. } = engine.query(&q).expect("query") else { panic!("buckets") };
    let mut out = Buckets::new();
    for g in groups {
        for b in g.buckets {
            out.insert((g.group[0].1.clone(), b.start), (b.count, b.values[0], b.values[1], b.values[2]));
        }
    }
    out
}

fn naive_buckets(points: &[(String, i64, f64)], every: Interval, from: i64, to: i64) -> Buckets {
    let mut sets: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (host, t, v) in points.iter().filter(|(_, t, _)| (from..to).contains(t)) {
        if seen.insert((host.clone(), *t, v.to_bits())) {
            sets.entry((host.clone(), every.bucket_start(*t, 0))).or_default().push(*v);
        }
    }
    sets.into_iter()
        .map(|(k, vs)| {
            let sum: f64 = vs.iter().sum();
            let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (k, (vs.len() as u64, Some(sum), Some(min), Some(max)))
        })
        .collect()
}

/// Points older than the out-of-order window land in their sealed
/// partitions, duplicates of what is there are ignored, and the result is
/// the same before and after the merge, a flush and a restart.
#[test]
fn back_filled_points_join_their_sealed_partitions_and_duplicates_are_ignored() {
    let dir = temp_dir();
    let schema = SeriesSchema::new("bf", &["host"], "u", 3650, &["raw", "1min", "1hour", "1day"]);
    let point = |host: &str, t: i64, v: f64| Point::new("bf", &[("host", host)], t, v);
    // Two days at one minute, integer values: sums are exact in any order.
    let mut all: Vec<(String, i64, f64)> = Vec::new();
    for host in ["a", "b", "c"] {
        for i in 0..2 * 24 * 60 {
            all.push((host.into(), T0 + i * MIN, ((i * 7) % 23) as f64));
        }
    }
    all.sort_by_key(|(h, t, _)| (*t, h.clone()));
    let as_points =
        |list: &[(String, i64, f64)]| -> Vec<Point> { list.iter().map(|(h, t, v)| point(h, *t, *v)).collect() };
    let engine = Engine::open(&dir).expect("open");
    engine.create_series(schema).expect("create");
    for chunk in all.chunks(500) {
        engine.write(&as_points(chunk)).expect("write in order");
    }
    let sealed = engine.read().schemas["bf"].sealed_until;
    assert!(sealed > T0 + 24 * HOUR, "the first day is sealed");
    // Back-fill: new points between the old ones, hours 3 to 5, all sealed.
    let extra: Vec<(String, i64, f64)> =
        (3 * 60..5 * 60).map(|i| ("b".to_owned(), T0 + i * MIN + 30 * NANOS_PER_SEC, (i % 5) as f64)).collect();
    let in_partitions = all.iter().filter(|(_, t, _)| *t < sealed).count();
    let r = engine.write(&as_points(&extra)).expect("a back-fill is accepted");
    assert_eq!((r.accepted, r.duplicates), (extra.len(), 0));
    all.extend(extra.iter().cloned());
    let check = |engine: &Engine, all: &[(String, i64, f64)], when: &str| {
        for every in [Interval::MINUTE, Interval::HOUR, Interval::DAY] {
            let (from, to) = (T0, T0 + 2 * 24 * HOUR);
            assert_eq!(engine_buckets(engine, every, from, to), naive_buckets(all, every, from, to), "{every} {when}");
        }
        let distinct: std::collections::HashSet<_> = all.iter().map(|(h, t, v)| (h, *t, v.to_bits())).collect();
        assert_eq!(engine.stats().points, distinct.len() as u64, "{when}");
    };
    check(&engine, &all, "before the merge");
    // The whole load again: sealed points are duplicates, head ones too.
    let mut duplicates = 0;
    for chunk in all.chunks(500) {
        duplicates += engine.write(&as_points(chunk)).expect("again").duplicates;
    }
    assert_eq!(duplicates, in_partitions, "what partitions hold comes back as duplicates");
    check(&engine, &all, "after the load ran again");
    // Not merged yet: a restart merges (and drops the head's copies).
    drop(engine);
    let engine = Engine::open(&dir).expect("reopen");
    assert_eq!(engine.read().schemas["bf"].backfill, 0);
    check(&engine, &all, "after a restart");
    let more: Vec<(String, i64, f64)> = (0..60).map(|i| ("c".to_owned(), T0 + i * MIN + 1, 1.0)).collect();
    engine.write(&as_points(&more)).expect("back-fill");
    all.extend(more);
    engine.flush().expect("flush merges");
    assert_eq!(engine.read().schemas["bf"].backfill, 0);
    check(&engine, &all, "after the flush");
    drop(engine);
    check(&Engine::open(&dir).expect("reopen"), &all, "after the flush and a restart");
    std::fs::remove_dir_all(&dir).ok();
}
