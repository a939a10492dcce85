//! Projections: read models kept in step with the global log, and the one
//! runner that feeds them.
//!
//! A [`Projection`] stores what a batch of events changes AND the position
//! after the batch in one atomic write, so a crash at any moment neither
//! skips nor double-applies an event. The [`ProjectionRunner`] reads the
//! global log from the projection's own checkpoint, in batches, and never
//! skips an event: a batch the projection refuses is retried one event at a
//! time, the events before the failing one are applied, and the runner
//! parks at the failing event with its error until [`ProjectionRunner::resume`].
//!
//! A projection that can hold a second copy of its storage is rebuilt
//! without downtime ([`ProjectionRunner::rebuild`]): a fresh copy is fed
//! from position 1 while the serving copy keeps answering and following the
//! log; once the copy is close to the head, the runner stops applying to the
//! serving copy between two batches, brings the copy to the head and lets
//! the projection switch over in one step, then drops the old copy.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{Error, EventStore, RecordedText, Result};

/// How long [`ProjectionRunner::run`] waits for new events before it checks again.
const LIVE_WAIT: Duration = Duration::from_secs(1);

/// A read model fed from the global log.
#[async_trait]
pub trait Projection: Send + Sync + Debug {
    /// The projection's name, unique per store (`<context>.<model>`).
    fn name(&self) -> &str;

    /// Applies `batch` (contiguous global-log positions, as read from the
    /// store) and stores `next_position` (the position after the batch's
    /// last event) in the same atomic write. Events the checkpoint already
    /// covers are skipped; a batch that does not reach back to the
    /// checkpoint is refused. An event the projection cannot follow is an
    /// error that is not [`Error::is_transient`] (see [`Error::Refused`]);
    /// a failure of its storage is transient.
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()>;

    /// The next global-log position to apply (1 when nothing was applied).
    async fn checkpoint(&self) -> Result<u64>;

    /// Starts a rebuild: a fresh, empty copy of the projection's storage
    /// beside the serving one (which keeps answering), dropping what an
    /// earlier, unfinished rebuild left. Only the runner calls it.
    async fn fresh_copy(&self) -> Result<Arc<dyn Projection>> {
        Err(Error::RebuildUnsupported { name: self.name().to_owned() })
    }

    /// Makes the copy the last [`Projection::fresh_copy`] returned the one
    /// that serves, durably and in one step for readers, and drops the old
    /// storage. The runner calls it with the copy at least as far as the
    /// serving one and no batch in flight.
    async fn switch_to_copy(&self) -> Result<()> {
        Err(Error::RebuildUnsupported { name: self.name().to_owned() })
    }
}

/// Where and why a projection stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// Global-log position of the event the projection refused.
    pub position: u64,
    pub event_type: String,
    pub error: String,
}

/// What [`ProjectionRunner::status`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    pub name: String,
    /// The next global-log position to apply.
    pub position: u64,
    /// The store's head position (0 for an empty store).
    pub head: u64,
    /// Events stored and not yet applied.
    pub lag_events: u64,
    /// The head event's `recorded_at` minus that of the last applied event
    /// (of the first event when nothing was applied); 0 when caught up.
    pub lag_seconds: f64,
    /// Events applied per second by the last catch-up that applied any.
    pub events_per_second: f64,
    /// The last catch-up's error, cleared by one that succeeds.
    pub last_error: Option<String>,
    pub parked: Option<Parked>,
    /// The next position of the copy being rebuilt, while a rebuild runs.
    pub rebuilding: Option<u64>,
}

/// What [`ProjectionRunner::rebuild`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    pub name: String,
    /// Events the copy applied, all of them from position 1.
    pub events: u64,
    /// The copy's next position at the switch-over.
    pub position: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

#[derive(Debug, Default)]
struct RunState {
    parked: Option<Parked>,
    last_error: Option<String>,
    events_per_second: f64,
    rebuilding: Option<Rebuilding>,
}

/// A running rebuild.
#[derive(Debug)]
enum Rebuilding {
    /// Claimed; the copy is being created.
    Starting,
    /// The copy being fed.
    Feeding(Arc<dyn Projection>),
}

/// Feeds the global log into one [`Projection`]. Cheap to clone; clones
/// share the park and the figures.
#[derive(Debug, Clone)]
pub struct ProjectionRunner {
    store: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    batch_size: usize,
    rebuild_batch_size: usize,
    state: Arc<Mutex<RunState>>,
    /// Held around every write to the serving projection, so a switch-over
    /// happens between two batches.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl ProjectionRunner {
    /// Events applied per projection write by default.
    pub const DEFAULT_BATCH: usize = 512;
    /// Events per write of a rebuild by default: nothing waits on a copy
    /// being built, so its writes can be large.
    pub const DEFAULT_REBUILD_BATCH: usize = 8192;
    /// A rebuild switches over once a catch-up of the copy applied at most
    /// this many events: the last catch-up, under the write gate, is short.
    const SWITCH_WITHIN: u64 = 1024;

    pub fn new(store: Arc<dyn EventStore>, projection: Arc<dyn Projection>) -> Self {
        Self {
            store,
            projection,
            batch_size: Self::DEFAULT_BATCH,
            rebuild_batch_size: Self::DEFAULT_REBUILD_BATCH,
            state: Arc::default(),
            writing: Arc::default(),
        }
    }

    /// Events per projection write (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Events per write while rebuilding (at least 1).
    pub fn with_rebuild_batch_size(mut self, batch_size: usize) -> Self {
        self.rebuild_batch_size = batch_size.max(1);
        self
    }

    pub fn projection(&self) -> &Arc<dyn Projection> {
        &self.projection
    }

    pub fn name(&self) -> &str {
        self.projection.name()
    }

    /// Applies everything up to the store's head as it was when called and
    /// returns the projection's checkpoint (the next position to apply).
    /// Safe to run concurrently with itself: a batch another run already
    /// applied is skipped by the checkpoint. While parked it returns
    /// [`Error::ProjectionParked`] and applies nothing; a transient error
    /// of the store or the projection is returned as it is, without parking.
    pub async fn catch_up(&self) -> Result<u64> {
        if let Some(parked) = self.lock().parked.clone() {
            return Err(self.parked_error(&parked));
        }
        let started = Instant::now();
        let outcome = self.apply_to_head().await;
        let mut state = self.lock();
        match outcome {
            Ok((next, applied)) => {
                state.last_error = None;
                if applied > 0 {
                    state.events_per_second = applied as f64 / started.elapsed().as_secs_f64().max(1e-9);
                }
                tracing::debug!(projection = self.name(), next, applied, "projection caught up");
                Ok(next)
            }
            Err(e) => {
                state.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Catches up, then follows the log live until `stop` completes.
    /// Returns the first error (parked included; the checkpoint makes a
    /// restart exact).
    pub async fn run(&self, stop: impl Future<Output = ()> + Send) -> Result<()> {
        tokio::pin!(stop);
        loop {
            let next = self.catch_up().await?;
            tokio::select! {
                () = &mut stop => return Ok(()),
                head = self.store.wait_for(next, LIVE_WAIT) => { head?; }
            }
        }
    }

    /// Clears the park and catches up again, starting with the event it
    /// parked on (which parks again if it still fails).
    /// [`Error::NotParked`] when not parked.
    pub async fn resume(&self) -> Result<u64> {
        if self.lock().parked.take().is_none() {
            return Err(Error::NotParked { name: self.name().to_owned() });
        }
        tracing::info!(projection = self.name(), "projection resumed");
        self.catch_up().await
    }

    /// Where the projection parked, if it did.
    pub fn parked(&self) -> Option<Parked> {
        self.lock().parked.clone()
    }

    /// Rebuilds the projection from position 1 into a fresh copy while the
    /// serving copy keeps answering (and, through [`ProjectionRunner::run`]
    /// or [`ProjectionRunner::catch_up`], following the log), then switches
    /// over once the copy has caught up: no reader ever sees a missing or
    /// half-built model, and none sees it go back in the log. A rebuild
    /// also clears a park, since the copy starts over (it parks the rebuild
    /// instead if the event still fails).
    ///
    /// A failure before the switch-over leaves the serving copy as it was
    /// ([`Error::RebuildFailed`]); [`Error::RebuildRunning`] if another
    /// rebuild of this runner is under way, [`Error::RebuildUnsupported`] for
    /// a projection without copies.
    pub async fn rebuild(&self) -> Result<Rebuilt> {
        let name = self.name().to_owned();
        let started = Instant::now();
        let copy = {
            {
                // Claimed before the first await, so a racing call is refused.
                let mut state = self.lock();
                if state.rebuilding.is_some() {
                    return Err(Error::RebuildRunning { name });
                }
                state.rebuilding = Some(Rebuilding::Starting);
            }
            match self.projection.fresh_copy().await {
                Ok(copy) => copy,
                Err(e) => {
                    self.lock().rebuilding = None;
                    return Err(match e {
                        e @ Error::RebuildUnsupported { .. } => e,
                        e => Error::RebuildFailed { name, source: Box::new(e) },
                    });
                }
            }
        };
        self.lock().rebuilding = Some(Rebuilding::Feeding(Arc::clone(&copy)));
        let outcome = self.feed_and_switch(copy).await;
        self.lock().rebuilding = None;
        let position = outcome.map_err(|e| Error::RebuildFailed { name: name.clone(), source: Box::new(e) })?;
        let seconds = started.elapsed().as_secs_f64();
        let events = position.saturating_sub(1);
        {
            let mut state = self.lock();
            state.parked = None;
            state.last_error = None;
        }
        tracing::info!(projection = %name, events, seconds, "projection rebuilt and switched over");
        Ok(Rebuilt { name, events, position, seconds, events_per_second: events as f64 / seconds.max(1e-9) })
    }

    /// Feeds `copy` to the head, then, with the serving writes held, to the
    /// head once more and switches over. The copy's next position.
    async fn feed_and_switch(&self, copy: Arc<dyn Projection>) -> Result<u64> {
        let feeder = ProjectionRunner::new(Arc::clone(&self.store), copy).with_batch_size(self.rebuild_batch_size);
        loop {
            let before = feeder.projection.checkpoint().await?;
            let after = feeder.catch_up().await?;
            if after - before <= Self::SWITCH_WITHIN {
                break;
            }
        }
        let _gate = self.writing.lock().await;
        let position = feeder.catch_up().await?;
        self.projection.switch_to_copy().await?;
        Ok(position)
    }

    /// Position, lag, rate and failure of the projection.
    pub async fn status(&self) -> Result<ProjectionStatus> {
        let position = self.projection.checkpoint().await?.max(1);
        let head = self.store.head_position().await?;
        let lag_events = (head + 1).saturating_sub(position);
        let lag_seconds = if lag_events == 0 {
            0.0
        } else {
            let head_at = self.recorded_at(head).await?;
            let from = self.recorded_at(if position > 1 { position - 1 } else { position }).await?;
            match (head_at, from) {
                (Some(h), Some(f)) => ((h - f).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0),
                _ => 0.0,
            }
        };
        let copy = match &self.lock().rebuilding {
            Some(Rebuilding::Feeding(copy)) => Some(Some(Arc::clone(copy))),
            Some(Rebuilding::Starting) => Some(None),
            None => None,
        };
        let rebuilding = match copy {
            Some(Some(copy)) => Some(copy.checkpoint().await?),
            Some(None) => Some(1),
            None => None,
        };
        let state = self.lock();
        Ok(ProjectionStatus {
            rebuilding,
            name: self.name().to_owned(),
            position,
            head,
            lag_events,
            lag_seconds,
            events_per_second: state.events_per_second,
            last_error: state.last_error.clone(),
            parked: state.parked.clone(),
        })
    }

    /// The catch-up proper: the next position and how many events were applied.
    async fn apply_to_head(&self) -> Result<(u64, u64)> {
        let head = self.store.head_position().await?;
        let mut next = self.projection.checkpoint().await?;
        let mut applied = 0;
        if next > head {
            return Ok((next, applied));
        }
        let mut batches = ReadAhead::start(Arc::clone(&self.store), next, head, self.batch_size);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let Some(last) = batch.last() else { break };
            let after = last.position + 1;
            let _gate = self.writing.lock().await;
            match self.projection.apply(&batch, after).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    tracing::warn!(projection = self.name(), error = %e, "batch refused; retrying event by event");
                    self.apply_one_by_one(&batch).await?;
                }
            }
            applied += batch.len() as u64;
            next = after;
        }
        Ok((next, applied))
    }

    /// Applies `batch` one event per write; parks at the first event the
    /// projection refuses (the ones before it stay applied).
    async fn apply_one_by_one(&self, batch: &[RecordedText]) -> Result<()> {
        for event in batch {
            match self.projection.apply(std::slice::from_ref(event), event.position + 1).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    let parked = Parked {
                        position: event.position,
                        event_type: event.envelope.event_type.to_string(),
                        error: e.to_string(),
                    };
                    tracing::error!(
                        projection = self.name(),
                        position = parked.position,
                        event_type = %parked.event_type,
                        error = %parked.error,
                        "projection parked"
                    );
                    let err = self.parked_error(&parked);
                    self.lock().parked = Some(parked);
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    async fn recorded_at(&self, position: u64) -> Result<Option<DateTime<Utc>>> {
        let events = self.store.read_all_text(position, 1).await?;
        Ok(events.into_iter().find(|e| e.position == position).map(|e| e.recorded_at))
    }

    fn parked_error(&self, parked: &Parked) -> Error {
        Error::ProjectionParked {
            name: self.name().to_owned(),
            position: parked.position,
            reason: format!("{}: {}", parked.event_type, parked.error),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reads the log from `from` to `head` in batches on a task of its own,
/// one batch ahead, so reading the next batch overlaps applying this one.
struct ReadAhead {
    batches: tokio::sync::mpsc::Receiver<Result<Vec<RecordedText>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl ReadAhead {
    fn start(store: Arc<dyn EventStore>, from: u64, head: u64, batch_size: usize) -> Self {
        let (tx, batches) = tokio::sync::mpsc::channel(2);
        let reader = tokio::spawn(async move {
            let mut next = from;
            while next <= head {
                let batch = store.read_all_text(next, batch_size).await;
                let done = match &batch {
                    Ok(b) => b.last().is_none_or(|last| {
                        next = last.position + 1;
                        false
                    }),
                    Err(_) => true,
                };
                if tx.send(batch).await.is_err() || done {
                    return;
                }
            }
        });
        Self { batches, reader }
    }

    async fn next(&mut self) -> Option<Result<Vec<RecordedText>>> {
        self.batches.recv().await
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::testkit::{event, stream};
    use crate::{ExpectedVersion, InMemoryEventStore};

    /// Counts the `amount` of every event it applies; refuses the positions
    /// in `poison`, and fails its storage while `down`.
    #[derive(Debug, Default)]
    struct Counting {
        inner: Mutex<Counted>,
    }

    #[derive(Debug, Default)]
    struct Counted {
        next: u64,
        applied: Vec<u64>,
        writes: Vec<usize>,
        poison: BTreeSet<u64>,
        down: bool,
    }

    impl Counting {
        fn with_poison(positions: &[u64]) -> Arc<Self> {
            let c = Self::default();
            c.inner.lock().expect("lock").poison = positions.iter().copied().collect();
            Arc::new(c)
        }
        fn get(&self) -> MutexGuard<'_, Counted> {
            self.inner.lock().expect("lock")
        }
    }

    #[async_trait]
    impl Projection for Counting {
        fn name(&self) -> &str {
            "test.counting"
        }

        async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
            let mut c = self.get();
            if c.down {
                return Err(Error::Database("connection refused".into()));
            }
            let checkpoint = c.next.max(1);
            let Some(first) = batch.first() else { return Ok(()) };
            if first.position > checkpoint {
                return Err(Error::Refused(format!("gap: expected {checkpoint}, got {}", first.position).into()));
            }
            let fresh: Vec<u64> = batch.iter().map(|e| e.position).filter(|p| *p >= checkpoint).collect();
            if let Some(p) = fresh.iter().find(|p| c.poison.contains(p)) {
                return Err(Error::Refused(format!("cannot follow the event at {p}").into()));
            }
            c.writes.push(fresh.len());
            c.applied.extend(fresh);
            c.next = next_position.max(checkpoint);
            Ok(())
        }

        async fn checkpoint(&self) -> Result<u64> {
            Ok(self.get().next.max(1))
        }
    }

    async fn store_with(n: usize) -> Arc<dyn EventStore> {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        append(&store, n).await;
        store
    }

    async fn append(store: &Arc<dyn EventStore>, n: usize) {
        for i in 0..n {
            let s = stream("acct");
            store.append(&s, ExpectedVersion::NoStream, &[event(s.as_str(), i as i64)]).await.expect("append");
        }
    }

    #[tokio::test]
    async fn catches_up_in_batches_to_the_head() {
        let store = store_with(7).await;
        let projection = Arc::new(Counting::default());
        let runner = ProjectionRunner::new(Arc::clone(&store), projection.clone()).with_batch_size(3);
        assert_eq!(runner.catch_up().await.expect("catch up"), 8);
        assert_eq!(projection.get().writes, [3, 3, 1]);
        assert_eq!(projection.get().applied, (1..=7).collect::<Vec<_>>());
        assert_eq!(runner.catch_up().await.expect("again"), 8, "nothing new");
        assert_eq!(projection.get().writes.len(), 3);
        append(&store, 2).await;
        assert_eq!(runner.catch_up().await.expect("more"), 10);
        assert_eq!(projection.get().applied, (1..=9).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_poison_event_parks_at_its_position_and_resume_applies_the_rest_once() {
        let store = store_with(10).await;
        let projection = Counting::with_poison(&[6]);
        let runner = ProjectionRunner::new(Arc::clone(&store), projection.clone()).with_batch_size(4);
        let err = runner.catch_up().await.expect_err("parks");
        assert!(
            matches!(&err, Error::ProjectionParked { name, position: 6, reason }
                if name == "test.counting" && reason.contains("cannot follow the event at 6")),
            "{err}"
        );
        assert_eq!(projection.get().applied, (1..=5).collect::<Vec<_>>(), "the events before it, nothing after");
        assert_eq!(projection.checkpoint().await.expect("checkpoint"), 6);
        let parked = runner.parked().expect("parked");
        assert_eq!(parked.position, 6);
        assert_eq!(parked.event_type, "accounts.MoneyDeposited.v1");
        assert!(parked.error.contains("cannot follow"), "{}", parked.error);

        let again = runner.catch_up().await.expect_err("still parked");
        assert!(matches!(again, Error::ProjectionParked { position: 6, .. }), "{again}");
        assert_eq!(projection.get().applied.len(), 5, "a parked runner does not advance");
        let status = runner.status().await.expect("status");
        assert_eq!(status.parked, Some(parked));
        assert!(status.last_error.as_deref().is_some_and(|e| e.contains("parked at log position 6")), "{status:?}");

        let still = runner.resume().await.expect_err("not fixed yet");
        assert!(matches!(still, Error::ProjectionParked { position: 6, .. }), "{still}");
        projection.get().poison.clear();
        assert_eq!(runner.resume().await.expect("resume"), 11);
        assert_eq!(projection.get().applied, (1..=10).collect::<Vec<_>>(), "each event exactly once");
        assert_eq!(runner.parked(), None);
        assert_eq!(runner.status().await.expect("status").last_error, None);
    }

    #[tokio::test]
    async fn resume_when_not_parked_is_refused() {
        let store = store_with(2).await;
        let runner = ProjectionRunner::new(store, Arc::new(Counting::default()));
        let err = runner.resume().await.expect_err("not parked");
        assert!(matches!(&err, Error::NotParked { name } if name == "test.counting"), "{err}");
        assert_eq!(err.to_string(), "projection `test.counting` is not parked");
    }

    #[tokio::test]
    async fn transient_errors_are_returned_without_parking() {
        let store = store_with(3).await;
        let projection = Arc::new(Counting::default());
        projection.get().down = true;
        let runner = ProjectionRunner::new(store, projection.clone());
        let err = runner.catch_up().await.expect_err("storage down");
        assert!(matches!(err, Error::Database(_)), "{err}");
        assert_eq!(runner.parked(), None);
        assert!(runner.status().await.expect("status").last_error.is_some());
        projection.get().down = false;
        assert_eq!(runner.catch_up().await.expect("back up"), 4);
        assert_eq!(projection.get().applied, [1, 2, 3]);
    }

    #[tokio::test]
    async fn status_reports_the_lag_before_and_after_catch_up() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let projection = Arc::new(Counting::default());
        let runner = ProjectionRunner::new(Arc::clone(&store), projection.clone()).with_batch_size(2);
        let empty = runner.status().await.expect("status");
        assert_eq!((empty.position, empty.head, empty.lag_events, empty.lag_seconds), (1, 0, 0, 0.0));
        for _ in 0..3 {
            append(&store, 1).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let at = |p: u64| {
            let store = Arc::clone(&store);
            async move { store.read_all(p, 1).await.expect("read")[0].recorded_at }
        };
        let before = runner.status().await.expect("status");
        assert_eq!((before.name.as_str(), before.position, before.head, before.lag_events), ("test.counting", 1, 3, 3));
        let expected = (at(3).await - at(1).await).num_microseconds().expect("us") as f64 / 1e6;
        assert!((before.lag_seconds - expected).abs() < 1e-9 && expected >= 0.04, "{before:?} vs {expected}");
        assert_eq!(before.events_per_second, 0.0, "nothing applied yet");

        projection.get().poison.insert(3);
        runner.catch_up().await.expect_err("parks at 3");
        let parked = runner.status().await.expect("status");
        assert_eq!((parked.position, parked.lag_events), (3, 1));
        let expected = (at(3).await - at(2).await).num_microseconds().expect("us") as f64 / 1e6;
        assert!((parked.lag_seconds - expected).abs() < 1e-9 && expected >= 0.02, "{parked:?} vs {expected}");

        projection.get().poison.clear();
        runner.resume().await.expect("resume");
        let after = runner.status().await.expect("status");
        assert_eq!((after.position, after.head, after.lag_events, after.lag_seconds), (4, 3, 0, 0.0));
        assert!(after.events_per_second > 0.0, "{after:?}");
        assert_eq!((after.last_error, after.parked), (None, None));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_follows_the_log_live_and_stops_when_parked() {
        let store = store_with(2).await;
        let projection = Counting::with_poison(&[5]);
        let runner = ProjectionRunner::new(Arc::clone(&store), projection.clone());
        let running = {
            let runner = runner.clone();
            tokio::spawn(async move { runner.run(std::future::pending()).await })
        };
        append(&store, 4).await;
        let err = tokio::time::timeout(Duration::from_secs(10), running).await.expect("parks").expect("join");
        assert!(matches!(err, Err(Error::ProjectionParked { position: 5, .. })), "{err:?}");
        assert_eq!(projection.get().applied, [1, 2, 3, 4]);

        projection.get().poison.clear();
        runner.resume().await.expect("resume");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let runner = runner.clone();
            tokio::spawn(async move { runner.run(async { stopped.await.unwrap_or(()) }).await })
        };
        append(&store, 1).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while projection.checkpoint().await.expect("checkpoint") < 8 {
            assert!(tokio::time::Instant::now() < deadline, "the runner did not follow");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(()).expect("still running");
        running.await.expect("join").expect("clean shutdown");
        assert_eq!(projection.get().applied, (1..=7).collect::<Vec<_>>());
    }

    /// Counting storage that can hold a copy: the serving `Counting` and,
    /// during a rebuild, a fresh one that replaces it on switch-over.
    #[derive(Debug, Default)]
    struct Copies {
        serving: Mutex<Arc<Counting>>,
        pending: Mutex<Option<Arc<Counting>>>,
        /// Positions a fresh copy refuses.
        copy_poison: Vec<u64>,
        /// When set, `fresh_copy` waits for it (to race two rebuilds).
        hold: Option<Arc<tokio::sync::Notify>>,
        switches: Mutex<usize>,
    }

    impl Copies {
        fn serving(&self) -> Arc<Counting> {
            Arc::clone(&self.serving.lock().expect("lock"))
        }
    }

    #[async_trait]
    impl Projection for Copies {
        fn name(&self) -> &str {
            "test.copies"
        }

        async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
            self.serving().apply(batch, next_position).await
        }

        async fn checkpoint(&self) -> Result<u64> {
            self.serving().checkpoint().await
        }

        async fn fresh_copy(&self) -> Result<Arc<dyn Projection>> {
            if let Some(hold) = &self.hold {
                hold.notified().await;
            }
            let copy = Counting::with_poison(&self.copy_poison);
            *self.pending.lock().expect("lock") = Some(Arc::clone(&copy));
            Ok(copy)
        }

        async fn switch_to_copy(&self) -> Result<()> {
            let copy = self.pending.lock().expect("lock").take().expect("a copy was made");
            *self.serving.lock().expect("lock") = copy;
            *self.switches.lock().expect("lock") += 1;
            Ok(())
        }
    }

    #[tokio::test]
    async fn rebuild_feeds_a_fresh_copy_from_the_start_and_switches_over() {
        let store = store_with(10).await;
        let projection = Arc::new(Copies::default());
        let runner = ProjectionRunner::new(Arc::clone(&store), projection.clone()).with_rebuild_batch_size(4);
        runner.catch_up().await.expect("catch up");
        let old = projection.serving();
        let rebuilt = runner.rebuild().await.expect("rebuild");
        assert_eq!((rebuilt.name.as_str(), rebuilt.events, rebuilt.position), ("test.copies", 10, 11));
        assert!(rebuilt.events_per_second > 0.0);
        let new = projection.serving();
        assert!(!Arc::ptr_eq(&old, &new), "switched to the copy");
        assert_eq!(new.get().applied, (1..=10).collect::<Vec<_>>(), "every event once, from the start");
        assert_eq!(new.get().writes, [4, 4, 2], "in rebuild batches");
        assert_eq!(*projection.switches.lock().expect("lock"), 1);
        assert_eq!(runner.status().await.expect("status").rebuilding, None);
        append(&store, 2).await;
        assert_eq!(runner.catch_up().await.expect("follows on the copy"), 13);
        assert_eq!(new.get().applied, (1..=12).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_projection_without_copies_cannot_be_rebuilt() {
        let runner = ProjectionRunner::new(store_with(1).await, Arc::new(Counting::default()));
        let err = runner.rebuild().await.expect_err("no copies");
        assert!(matches!(&err, Error::RebuildUnsupported { name } if name == "test.counting"), "{err}");
        assert!(runner.status().await.expect("status").rebuilding.is_none());
    }

    #[tokio::test]
    async fn a_copy_that_parks_fails_the_rebuild_and_the_serving_copy_stays() {
        let store = store_with(6).await;
        let projection = Arc::new(Copies { copy_poison: vec![4], ..Copies::default() });
        let runner = ProjectionRunner::new(Arc::clone(&store), projection.clone());
        runner.catch_up().await.expect("catch up");
        let err = runner.rebuild().await.expect_err("the copy parks");
        let Error::RebuildFailed { name, source } = &err else { panic!("{err}") };
        assert_eq!(name, "test.copies");
        assert!(matches!(**source, Error::ProjectionParked { position: 4, .. }), "{source}");
        assert!(err.to_string().contains("serving copy is untouched"), "{err}");
        assert_eq!(projection.serving().get().applied, (1..=6).collect::<Vec<_>>(), "still serving");
        assert_eq!(*projection.switches.lock().expect("lock"), 0);
        assert_eq!(runner.parked(), None, "the serving runner is not parked");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_rebuild_while_one_runs_is_refused() {
        let hold = Arc::new(tokio::sync::Notify::new());
        let projection = Arc::new(Copies { hold: Some(Arc::clone(&hold)), ..Copies::default() });
        let runner = ProjectionRunner::new(store_with(3).await, projection.clone());
        let first = {
            let runner = runner.clone();
            tokio::spawn(async move { runner.rebuild().await })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while runner.status().await.expect("status").rebuilding.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "the first rebuild did not start");
            tokio::task::yield_now().await;
        }
        let err = runner.rebuild().await.expect_err("one at a time");
        assert!(matches!(&err, Error::RebuildRunning { name } if name == "test.copies"), "{err}");
        hold.notify_one();
        let rebuilt = first.await.expect("join").expect("the first one finishes");
        assert_eq!(rebuilt.position, 4);
        assert_eq!(*projection.switches.lock().expect("lock"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rebuild_under_concurrent_appends_never_shows_a_reader_less_than_before() {
        let store = store_with(2_000).await;
        let projection = Arc::new(Copies::default());
        let runner = ProjectionRunner::new(Arc::clone(&store), projection.clone()).with_rebuild_batch_size(64);
        runner.catch_up().await.expect("catch up");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let writer = {
            let store = Arc::clone(&store);
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                while !*stopped.borrow_and_update() {
                    append(&store, 5).await;
                    tokio::task::yield_now().await;
                }
            })
        };
        let serving = {
            let runner = runner.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                runner.run(async move { stopped.wait_for(|s| *s).await.map(|_| ()).unwrap_or(()) }).await
            })
        };
        // A reader that checks every model it sees is whole (1..n, each
        // once) and never behind one it saw before.
        let reader = {
            let projection = projection.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let (mut seen, mut reads) = (0usize, 0u64);
                while !*stopped.borrow_and_update() {
                    let applied = projection.serving().get().applied.clone();
                    assert!(
                        applied.iter().copied().eq(1..=applied.len() as u64),
                        "a half-built model: {} events",
                        applied.len()
                    );
                    assert!(applied.len() >= seen, "went back from {seen} to {}", applied.len());
                    seen = applied.len();
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        };
        let rebuilt = runner.rebuild().await.expect("rebuild");
        assert!(rebuilt.events >= 2_000, "{rebuilt:?}");
        // Let appends pass the switch, for the runner to go on with the copy.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.head_position().await.expect("head") < rebuilt.position + 5 {
            assert!(tokio::time::Instant::now() < deadline, "no append after the switch");
            tokio::task::yield_now().await;
        }
        stop.send(true).expect("tasks listen");
        writer.await.expect("writer");
        serving.await.expect("join").expect("serving runner");
        assert!(reader.await.expect("reader") > 0);
        let head = store.head_position().await.expect("head");
        runner.catch_up().await.expect("final catch up");
        let copy = projection.serving();
        assert_eq!(copy.get().applied, (1..=head).collect::<Vec<_>>(), "every event exactly once");
        assert_eq!(*projection.switches.lock().expect("lock"), 1);
    }
}
