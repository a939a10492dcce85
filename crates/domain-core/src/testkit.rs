//! Test kits: given/when/then for aggregates, and the contract suite every
//! [`crate::bus::EventBus`] adapter must pass (see [`crate::bus::contract`]).
//!
//! Every event a `then_*` step sees is also sent through the wire codecs
//! (binary content mode as on a bus, structured JSON as in a store) and must
//! come back equal, so an event that cannot travel fails its aggregate test.

use crate::{Aggregate, AggregateRoot, Envelope, codec};

/// `given` past events, `when` a command, `then` expect events or an error.
///
/// ```
/// # use domain_core::testkit::AggregateTest;
/// # fn demo<A: domain_core::Aggregate>(cmd: A::Command) where A::Event: PartialEq {
/// AggregateTest::<A>::given(vec![]).when(cmd).then_expect_events(vec![]);
/// # }
/// ```
#[derive(Debug)]
pub struct AggregateTest<A: Aggregate> {
    root: AggregateRoot<A>,
}

/// The outcome of `when`, ready for assertions.
#[derive(Debug)]
pub struct AggregateOutcome<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
    root: AggregateRoot<A>,
}

impl<A: Aggregate> AggregateTest<A> {
    pub fn given(history: Vec<A::Event>) -> Self {
        let mut root = AggregateRoot::new("test-aggregate");
        root.replay(&history);
        Self { root }
    }

    pub fn given_no_history() -> Self {
        Self::given(Vec::new())
    }

    /// More history after `given` (reads better than one long vector when
    /// the story has steps).
    pub fn and(mut self, more: Vec<A::Event>) -> Self {
        self.root.replay(&more);
        self
    }

    /// History produced by running commands, each of which must succeed;
    /// their events become the history the next step sees.
    #[track_caller]
    pub fn and_commands(mut self, commands: impl IntoIterator<Item = A::Command>) -> Self {
        for command in commands {
            if let Err(e) = self.root.execute(command) {
                panic!("setup command failed: {e}");
            }
        }
        self.root.mark_committed();
        self
    }

    pub fn when(mut self, command: A::Command) -> AggregateOutcome<A> {
        let result = self.root.execute(command).map(<[A::Event]>::to_vec);
        AggregateOutcome { result, root: self.root }
    }
}

/// Sends `event` through both wire codecs and asserts it comes back equal.
#[track_caller]
pub fn assert_survives_the_wire<E>(event: &E)
where
    E: crate::DomainEvent + PartialEq,
{
    let envelope = match Envelope::new("wire-check", 1, event) {
        Ok(e) => e,
        Err(e) => panic!("event {event:?} cannot be wrapped in an envelope: {e}"),
    };
    let via_bus = codec::encode(&envelope).and_then(|r| codec::decode(&r));
    let via_store = codec::to_json(&envelope).and_then(|b| codec::from_json(&b));
    for (how, back) in [("binary content mode", via_bus), ("structured JSON", via_store)] {
        let back = match back.and_then(|env| env.into_event::<E>()) {
            Ok(b) => b,
            Err(e) => panic!("event {event:?} does not survive {how}: {e}"),
        };
        assert_eq!(&back, event, "event changed on its way through {how}");
    }
}

impl<A: Aggregate> AggregateOutcome<A> {
    /// Asserts the command succeeded with exactly these events.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) -> AggregateRoot<A>
    where
        A::Event: PartialEq,
    {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                events.iter().for_each(assert_survives_the_wire);
            }
            Err(e) => panic!("expected events {expected:?}, got error: {e}"),
        }
        self.root
    }

    /// Asserts the command succeeded; `check` inspects the events (for
    /// events with generated parts such as ids).
    #[track_caller]
    pub fn then_events(self, check: impl FnOnce(&[A::Event])) -> AggregateRoot<A>
    where
        A::Event: PartialEq,
    {
        match &self.result {
            Ok(events) => {
                check(events);
                events.iter().for_each(assert_survives_the_wire);
            }
            Err(e) => panic!("expected events, got error: {e}"),
        }
        self.root
    }

    /// Asserts the command was accepted and changed nothing (an idempotent
    /// repeat).
    #[track_caller]
    pub fn then_nothing(self) -> AggregateRoot<A> {
        match &self.result {
            Ok(events) => assert!(events.is_empty(), "expected no events, got {events:?}"),
            Err(e) => panic!("expected no events, got error: {e}"),
        }
        self.root
    }

    /// Asserts the command failed and the error matches.
    #[track_caller]
    pub fn then_expect_error(self, matches: impl FnOnce(&A::Error) -> bool) -> AggregateRoot<A> {
        match &self.result {
            Ok(events) => panic!("expected an error, got events {events:?}"),
            Err(e) => assert!(matches(e), "unexpected error: {e}"),
        }
        let before = self.root.version();
        assert_eq!(self.root.uncommitted().len(), 0, "a refused command left events behind");
        assert_eq!(before, self.root.committed_version());
        self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample::CounterEvent;

    #[test]
    fn percentile_is_the_rounded_nearest_rank() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(bench::percentile(&v, 0.5), 51.0);
        assert_eq!(bench::percentile(&v, 0.99), 100.0);
        assert_eq!(bench::percentile(&v, 1.0), 101.0);
        assert_eq!(bench::percentile(&[7.0], 0.99), 7.0);
        assert!(bench::percentile(&[], 0.5).is_nan());
    }

    #[derive(Debug, Default, Clone)]
    struct Counter {
        value: u32,
    }

    #[derive(Debug)]
    enum CounterCommand {
        Add(u32),
        Reset,
    }

    #[derive(Debug, thiserror::Error)]
    enum CounterError {
        #[error("cannot add zero")]
        Zero,
        #[error("already zero")]
        AlreadyZero,
    }

    impl Aggregate for Counter {
        const TYPE: &'static str = "Counter";
        type Command = CounterCommand;
        type Event = CounterEvent;
        type Error = CounterError;

        fn handle(&self, command: CounterCommand) -> Result<Vec<CounterEvent>, CounterError> {
            match command {
                CounterCommand::Add(0) => Err(CounterError::Zero),
                CounterCommand::Add(by) => Ok(vec![CounterEvent::Incremented { by }]),
                CounterCommand::Reset if self.value == 0 => Err(CounterError::AlreadyZero),
                CounterCommand::Reset => Ok(vec![CounterEvent::Reset {}]),
            }
        }

        fn apply(&mut self, event: &CounterEvent) {
            match event {
                CounterEvent::Incremented { by } => self.value += by,
                CounterEvent::Reset {} => self.value = 0,
                CounterEvent::Stopped => {}
            }
        }
    }

    #[test]
    fn given_when_then() {
        let root = AggregateTest::<Counter>::given(vec![CounterEvent::Incremented { by: 2 }])
            .when(CounterCommand::Add(3))
            .then_expect_events(vec![CounterEvent::Incremented { by: 3 }]);
        assert_eq!(root.state().value, 5);
        assert_eq!((root.version(), root.committed_version()), (2, 1));
        AggregateTest::<Counter>::given_no_history()
            .when(CounterCommand::Reset)
            .then_expect_error(|e| matches!(e, CounterError::AlreadyZero));
    }

    #[test]
    fn and_adds_history_and_nothing_checks_idempotent_repeats() {
        let root = AggregateTest::<Counter>::given(vec![CounterEvent::Incremented { by: 2 }])
            .and(vec![CounterEvent::Reset {}])
            .and_commands([CounterCommand::Add(4)])
            .when(CounterCommand::Add(1))
            .then_events(|events| assert_eq!(events, [CounterEvent::Incremented { by: 1 }]));
        assert_eq!((root.state().value, root.version()), (5, 4));
        assert_survives_the_wire(&CounterEvent::Reset {});
    }

    #[test]
    #[should_panic(expected = "expected no events")]
    fn then_nothing_fails_when_events_come_out() {
        AggregateTest::<Counter>::given_no_history().when(CounterCommand::Add(1)).then_nothing();
    }

    #[test]
    fn failed_commands_change_nothing_and_envelopes_are_numbered() {
        let mut root = AggregateRoot::<Counter>::new("c-9");
        root.execute(CounterCommand::Add(1)).expect("ok");
        root.execute(CounterCommand::Add(2)).expect("ok");
        assert!(root.execute(CounterCommand::Add(0)).is_err());
        assert_eq!((root.version(), root.state().value), (2, 3));
        let envs = root.uncommitted_envelopes(None).expect("envelopes");
        assert_eq!(envs.iter().map(|e| e.aggregate_version).collect::<Vec<_>>(), vec![1, 2]);
        assert!(envs.iter().all(|e| e.correlation_id == envs[0].correlation_id && e.subject == "c-9"));
        assert_eq!(root.mark_committed().len(), 2);
        assert_eq!(root.committed_version(), 2);
    }
}

/// Benchmark figures in the form every `cargo xtask bench` prints: one
/// `BENCH {json}` line per figure, which xtask gathers into
/// `target/bench/<name>.json`.
pub mod bench {
    use serde_json::{Value, json};

    /// The `q` quantile (0..=1) of ascending `sorted` values, nearest rank
    /// rounded; NaN when there are none.
    pub fn percentile(sorted: &[f64], q: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        sorted[((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
    }

    /// One figure; `ratio` is against `baseline`, measured in the same run.
    pub fn figure(
        bench: &str,
        metric: &str,
        value: f64,
        unit: &str,
        baseline: Option<&str>,
        ratio: Option<f64>,
        target: &str,
    ) -> Value {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({ "bench": bench, "metric": metric, "value": round(value), "unit": unit,
            "baseline": baseline, "ratio": ratio.map(round), "target": target })
    }

    /// A table for people, then the `BENCH` lines for tools.
    pub fn report(figures: &[Value]) -> String {
        let mut out = format!("\n{:<40} {:>16} {:<12} {:>8}  {}\n", "figure", "value", "unit", "ratio", "target");
        for f in figures {
            let ratio = f["ratio"].as_f64().map_or("-".to_owned(), |r| format!("{r:.3}"));
            out.push_str(&format!(
                "{:<40} {:>16.1} {:<12} {:>8}  {}\n",
                f["metric"].as_str().unwrap_or("?"),
                f["value"].as_f64().unwrap_or(0.0),
                f["unit"].as_str().unwrap_or(""),
                ratio,
                f["target"].as_str().unwrap_or("")
            ));
        }
        for f in figures {
            out.push_str(&format!("BENCH {f}\n"));
        }
        out
    }

    /// The median of some measurements (NaN-safe ordering).
    pub fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}
