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
