//! Loading and saving aggregates: snapshot plus the events after it, a pure
//! command, an append at the loaded version, retries on conflict.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Utc;
use domain_core::{Aggregate, AggregateRoot, Envelope, UpcasterRegistry};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AppendResult, Error, EventStore, ExpectedVersion, Result, Snapshot, StreamId};

/// Events read per round trip while loading.
const PAGE: usize = 4096;

/// When to save a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    Never,
    /// Whenever an append crosses a multiple of N versions.
    Every(u64),
}

/// The repository of one aggregate type.
#[derive(Debug)]
pub struct Repository<A: Aggregate> {
    store: Arc<dyn EventStore>,
    upcasters: Arc<UpcasterRegistry>,
    policy: SnapshotPolicy,
    /// Version of the snapshot state's shape; older snapshots are ignored.
    schema_version: u32,
    /// Recently used aggregates at their stored version (see
    /// [`Repository::with_cache`]).
    cache: Option<Cache<A>>,
    _aggregate: PhantomData<fn() -> A>,
}

/// Aggregates kept between commands, by id. A cached state is only a
/// starting point: every load still reads the events after its version, so
/// a writer elsewhere (another process) is never missed.
#[derive(Debug)]
struct Cache<A: Aggregate> {
    entries: Mutex<HashMap<String, AggregateRoot<A>>>,
    capacity: usize,
}

impl<A: Aggregate> Cache<A> {
    fn take(&self, id: &str) -> Option<AggregateRoot<A>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(id)
    }

    fn put(&self, root: AggregateRoot<A>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(root.id()) {
            // Any entry will do: a miss costs one load from the store.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(root.id().to_owned(), root);
    }
}

impl<A> Repository<A>
where
    A: Aggregate + Serialize + DeserializeOwned,
{
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            upcasters: Arc::new(UpcasterRegistry::new()),
            policy: SnapshotPolicy::Never,
            schema_version: 1,
            cache: None,
            _aggregate: PhantomData,
        }
    }

    /// Keeps up to `capacity` aggregates in memory between commands, so a
    /// command on a recently used aggregate reads only the events it has
    /// not seen (usually none) instead of a snapshot and a tail.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Cache { entries: Mutex::new(HashMap::new()), capacity });
        self
    }

    pub fn with_snapshots(mut self, policy: SnapshotPolicy, schema_version: u32) -> Self {
        self.policy = policy;
        self.schema_version = schema_version;
        self
    }

    pub fn with_upcasters(mut self, upcasters: Arc<UpcasterRegistry>) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// The stream of aggregate `id`: `<Type>-<id>`.
    pub fn stream_of(id: &str) -> Result<StreamId> {
        StreamId::new(format!("{}-{id}", A::TYPE))
    }

    /// Rebuilds the aggregate from its newest usable snapshot and the events
    /// after it (a new, empty aggregate if the stream has none).
    pub async fn load(&self, id: &str) -> Result<AggregateRoot<A>> {
        let root = self.checkout(id).await?;
        if let Some(cache) = &self.cache {
            cache.put(root.clone());
        }
        Ok(root)
    }

    /// The aggregate at its stored version, taken out of the cache if it is
    /// there (brought up to date) or loaded; give it back with
    /// [`Cache::put`] once its new events are stored.
    async fn checkout(&self, id: &str) -> Result<AggregateRoot<A>> {
        match self.cache.as_ref().and_then(|c| c.take(id)) {
            Some(root) => self.catch_up(root).await,
            None => self.load_from_store(id).await,
        }
    }

    fn give_back(&self, root: AggregateRoot<A>) {
        if let Some(cache) = &self.cache {
            cache.put(root);
        }
    }

    async fn load_from_store(&self, id: &str) -> Result<AggregateRoot<A>> {
        let stream = Self::stream_of(id)?;
        let root = match self.store.load_snapshot(&stream).await? {
            Some(s) if s.schema_version == self.schema_version && s.aggregate_type == A::TYPE => {
                match serde_json::from_value::<A>(s.state) {
                    Ok(state) => AggregateRoot::from_snapshot(id, state, s.version),
                    Err(e) => {
                        tracing::warn!(%stream, error = %e, "snapshot does not fit; replaying from the start");
                        AggregateRoot::new(id)
                    }
                }
            }
            _ => AggregateRoot::new(id),
        };
        self.catch_up(root).await
    }

    /// Replays the stored events after the root's version.
    async fn catch_up(&self, mut root: AggregateRoot<A>) -> Result<AggregateRoot<A>> {
        let stream = Self::stream_of(root.id())?;
        loop {
            let page = self.store.read_stream(&stream, root.version() + 1, PAGE).await?;
            let done = page.len() < PAGE;
            let events = crate::parallel::in_halves(page, |part| {
                part.into_iter()
                    .map(|recorded| Ok(self.upcasters.upcast(recorded.envelope)?.into_event::<A::Event>()?))
                    .collect()
            })?;
            root.replay(&events);
            if done {
                return Ok(root);
            }
        }
    }

    /// Loads, runs `command`, appends the new events at the loaded version.
    ///
    /// The outer result is the store's; the inner one is the aggregate's
    /// decision. On a version conflict the whole cycle runs again, up to
    /// `retries` more times (pass 0 to see every conflict).
    pub async fn execute(
        &self,
        id: &str,
        command: impl Fn() -> A::Command,
        cause: Option<&Envelope>,
        retries: u32,
    ) -> Result<std::result::Result<(AggregateRoot<A>, Option<AppendResult>), A::Error>> {
        let stream = Self::stream_of(id)?;
        let mut attempt = 0;
        loop {
            let mut root = self.checkout(id).await?;
            if let Err(e) = root.execute(command()) {
                self.give_back(root);
                return Ok(Err(e));
            }
            if root.uncommitted().is_empty() {
                self.give_back(root.clone());
                return Ok(Ok((root, None)));
            }
            let envelopes = root.uncommitted_envelopes(cause)?;
            let expected = ExpectedVersion::Exact(root.committed_version());
            match self.store.append(&stream, expected, &envelopes).await {
                Ok(result) => {
                    let before = root.committed_version();
                    root.mark_committed();
                    self.snapshot_after(&stream, &root, before).await;
                    self.give_back(root.clone());
                    return Ok(Ok((root, Some(result))));
                }
                Err(e) if e.is_conflict() && attempt < retries => attempt += 1,
                Err(e) if e.is_conflict() => {
                    return Err(if retries == 0 {
                        e
                    } else {
                        Error::TooManyConflicts { stream: stream.to_string(), attempts: attempt + 1 }
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Loads once, runs each command on the state the ones before it left
    /// (a refused command changes nothing), and appends every event in one
    /// append, each command's events in its own cause's correlation chain.
    /// On a version conflict the whole batch runs again on fresh state, up to
    /// `retries` more times. Returns each command's decision, in order.
    pub async fn execute_many(
        &self,
        id: &str,
        commands: &[(A::Command, Option<Envelope>)],
        retries: u32,
    ) -> Result<Vec<std::result::Result<Vec<A::Event>, A::Error>>>
    where
        A::Command: Clone,
    {
        let stream = Self::stream_of(id)?;
        let mut attempt = 0;
        loop {
            let mut root = self.checkout(id).await?;
            let before = root.committed_version();
            let mut decisions = Vec::with_capacity(commands.len());
            let mut envelopes = Vec::new();
            for (command, cause) in commands {
                let first_version = root.version() + 1;
                match root.execute(command.clone()) {
                    Ok(events) => {
                        let mut chain: Option<Envelope> = cause.clone();
                        for (k, e) in events.iter().enumerate() {
                            let env = Envelope::new(id, first_version + k as u64, e)?;
                            let env = match &chain {
                                Some(c) if cause.is_some() => env.caused_by(c),
                                Some(first) => Envelope { correlation_id: first.correlation_id, ..env },
                                None => env,
                            };
                            if chain.is_none() {
                                chain = Some(env.clone());
                            }
                            envelopes.push(env);
                        }
                        decisions.push(Ok(events.to_vec()));
                    }
                    Err(e) => decisions.push(Err(e)),
                }
            }
            if envelopes.is_empty() {
                self.give_back(root);
                return Ok(decisions);
            }
            match self.store.append(&stream, ExpectedVersion::Exact(before), &envelopes).await {
                Ok(_) => {
                    root.mark_committed();
                    self.snapshot_after(&stream, &root, before).await;
                    self.give_back(root);
                    return Ok(decisions);
                }
                Err(e) if e.is_conflict() && attempt < retries => attempt += 1,
                Err(e) if e.is_conflict() => {
                    return Err(Error::TooManyConflicts { stream: stream.to_string(), attempts: attempt + 1 });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends the root's uncommitted events at exactly the version it was
    /// loaded at (a stale copy gets a `Conflict` and overwrites nothing),
    /// then snapshots by the policy. The seed's `save`, for callers that run
    /// commands on an [`AggregateRoot`] themselves. `None` when there was
    /// nothing to store.
    pub async fn save(&self, root: &mut AggregateRoot<A>, cause: Option<&Envelope>) -> Result<Option<AppendResult>> {
        if root.uncommitted().is_empty() {
            return Ok(None);
        }
        let stream = Self::stream_of(root.id())?;
        let before = root.committed_version();
        let envelopes = root.uncommitted_envelopes(cause)?;
        let result = self.store.append(&stream, ExpectedVersion::Exact(before), &envelopes).await?;
        root.mark_committed();
        self.snapshot_after(&stream, root, before).await;
        self.give_back(root.clone());
        Ok(Some(result))
    }

    /// The events are durable by now: a snapshot that cannot be saved only
    /// makes later loads replay further, so it is logged, not returned.
    async fn snapshot_after(&self, stream: &StreamId, root: &AggregateRoot<A>, before: u64) {
        if let Err(error) = self.maybe_snapshot(stream, root, before).await {
            tracing::warn!(%stream, %error, "could not save a snapshot; loads replay further");
        }
    }

    async fn maybe_snapshot(&self, stream: &StreamId, root: &AggregateRoot<A>, before: u64) -> Result<()> {
        let SnapshotPolicy::Every(n) = self.policy else { return Ok(()) };
        if n == 0 || before / n == root.version() / n {
            return Ok(());
        }
        let state = serde_json::to_value(root.state()).map_err(|e| Error::Codec(e.to_string()))?;
        let snapshot = Snapshot {
            stream: stream.clone(),
            aggregate_type: A::TYPE.to_owned(),
            schema_version: self.schema_version,
            version: root.version(),
            state,
            taken_at: Utc::now(),
        };
        self.store.save_snapshot(&snapshot).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryEventStore;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum TallyEvent {
        Added { n: u32 },
    }

    impl domain_core::DomainEvent for TallyEvent {
        const CONTEXT: &'static str = "tally";
        fn schema_version(_: &str) -> u32 {
            2
        }
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    struct Tally {
        sum: u64,
        events: u64,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("zero is not allowed")]
    struct Zero;

    impl Aggregate for Tally {
        const TYPE: &'static str = "Tally";
        type Command = u32;
        type Event = TallyEvent;
        type Error = Zero;
        fn handle(&self, n: u32) -> std::result::Result<Vec<TallyEvent>, Zero> {
            if n == 0 { Err(Zero) } else { Ok(vec![TallyEvent::Added { n }]) }
        }
        fn apply(&mut self, TallyEvent::Added { n }: &TallyEvent) {
            self.sum += u64::from(*n);
            self.events += 1;
        }
    }

    fn repo(store: &Arc<dyn EventStore>) -> Repository<Tally> {
        Repository::new(Arc::clone(store)).with_snapshots(SnapshotPolicy::Every(10), 1)
    }

    #[tokio::test]
    async fn load_execute_snapshot_and_replay_agree() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let r = repo(&store);
        for i in 1..=25u32 {
            r.execute("t1", || i, None, 0).await.expect("store").expect("accepted");
        }
        let snap = store
            .load_snapshot(&Repository::<Tally>::stream_of("t1").expect("id"))
            .await
            .expect("load")
            .expect("snapshot");
        assert_eq!(snap.version, 20);
        let loaded = r.load("t1").await.expect("load");
        assert_eq!((loaded.version(), loaded.state().sum, loaded.state().events), (25, 325, 25));
        let plain = Repository::<Tally>::new(Arc::clone(&store)).load("t1").await.expect("load");
        assert_eq!((plain.version(), plain.state().sum), (25, 325), "snapshot + tail = full replay");
        assert!(matches!(r.execute("t1", || 0, None, 0).await, Ok(Err(Zero))));
    }

    #[tokio::test]
    async fn old_event_versions_are_upcast_on_load() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let stream = Repository::<Tally>::stream_of("t2").expect("id");
        let v1 =
            Envelope::raw("tally", "tally.Added.v1".parse().expect("type"), "t2", 0, serde_json::json!({ "count": 7 }));
        store.append(&stream, ExpectedVersion::NoStream, &[v1]).await.expect("append");
        let mut upcasters = UpcasterRegistry::new();
        upcasters.register("tally.Added", 1, |v| Ok(serde_json::json!({ "n": v["count"] }))).expect("valid type");
        let r = Repository::<Tally>::new(Arc::clone(&store)).with_upcasters(Arc::new(upcasters));
        assert_eq!(r.load("t2").await.expect("load").state().sum, 7);
        assert!(Repository::<Tally>::new(store).load("t2").await.is_err(), "without the upcaster v1 is refused");
    }

    #[tokio::test]
    async fn conflicting_writers_retry_when_asked() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let r = repo(&store);
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    r.execute("t3", || 1, None, 100).await.expect("store").expect("accepted");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(repo(&store).load("t3").await.expect("load").state().sum, 80);
    }
}
