//! A writer process for the time-series crash test: writes point i (host
//! h{i % 10}, one second apart, value i) in batches, resuming after the
//! points already stored, and prints `ok <n> .` once points 0..n are
//! acknowledged, until it is killed.
//!
//! Usage: ts-crash-writer <dir> <seed>

use std::io::Write;

use timeseries::Engine;
use timeseries::model::{Point, SeriesSchema};

/// First timestamp: 2023-01-01T00:00:00Z in nanoseconds.
pub const T0: i64 = 1_672_531_200_000_000_000;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, seed] = args.as_slice() else { return Err("usage: ts-crash-writer <dir> <seed>".into()) };
    let mut rng: u64 = seed.parse().map_err(|_| "seed must be an integer")?;
    let engine = Engine::open(dir).map_err(|e| e.to_string())?;
    engine
        .create_series(SeriesSchema::new("cpu", &["host"], "percent", 3650, &["raw", "1min", "1hour"]))
        .map_err(|e| e.to_string())?;
    let mut next = engine.stats().points as i64;
    let mut out = std::io::stdout();
    loop {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let n = 1 + (rng >> 33) as i64 % 50;
        let batch: Vec<Point> = (next..next + n)
            .map(|i| {
                let host = format!("h{}", i % 10);
                Point::new("cpu", &[("host", host.as_str())], T0 + i * 1_000_000_000, i as f64)
            })
            .collect();
        engine.write(&batch).map_err(|e| e.to_string())?;
        next += n;
        writeln!(out, "ok {next} .").and_then(|()| out.flush()).map_err(|e| e.to_string())?;
    }
}
