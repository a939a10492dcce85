//! Aggregates: consistency boundaries whose behaviour is pure.
//!
//! A command is handled by a pure function of the current state that returns
//! events or a typed domain error; events are then applied to state. Nothing
//! here touches storage: repositories (in `event-store`) load an
//! [`AggregateRoot`] from history and append its uncommitted events.

use crate::{DomainEvent, Envelope, Result};

/// The behaviour of one aggregate type.
pub trait Aggregate: Default + Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Stable name of the aggregate type, e.g. `Order` (used for snapshots).
    const TYPE: &'static str;
    type Command: std::fmt::Debug;
    type Event: DomainEvent;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides what happens; must not mutate anything.
    fn handle(&self, command: Self::Command) -> std::result::Result<Vec<Self::Event>, Self::Error>;

    /// Evolves state by one event; must not fail (events are facts).
    fn apply(&mut self, event: &Self::Event);
}

/// An aggregate instance: id, state, version and events not yet stored.
#[derive(Debug, Clone)]
pub struct AggregateRoot<A: Aggregate> {
    id: String,
    state: A,
    version: u64,
    uncommitted: Vec<A::Event>,
}

impl<A: Aggregate> AggregateRoot<A> {
    /// A new, empty aggregate (version 0).
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), state: A::default(), version: 0, uncommitted: Vec::new() }
    }

    /// Rebuilds from a snapshot taken at `version` (or `A::default()` at 0).
    pub fn from_snapshot(id: impl Into<String>, state: A, version: u64) -> Self {
        Self { id: id.into(), state, version, uncommitted: Vec::new() }
    }

    /// Replays stored events on top of the current state.
    pub fn replay<'e>(&mut self, events: impl IntoIterator<Item = &'e A::Event>) {
        for e in events {
            self.state.apply(e);
            self.version += 1;
        }
    }

    /// Handles a command; on success the events are applied and kept as
    /// uncommitted. On error nothing changes.
    pub fn execute(&mut self, command: A::Command) -> std::result::Result<&[A::Event], A::Error> {
        let events = self.state.handle(command)?;
        let start = self.uncommitted.len();
        for e in events {
            self.state.apply(&e);
            self.version += 1;
            self.uncommitted.push(e);
        }
        Ok(&self.uncommitted[start..])
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> &A {
        &self.state
    }

    /// Version including uncommitted events.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Version of the stored history: the expected version for an append.
    pub fn committed_version(&self) -> u64 {
        self.version - self.uncommitted.len() as u64
    }

    pub fn uncommitted(&self) -> &[A::Event] {
        &self.uncommitted
    }

    /// Wraps the uncommitted events in envelopes numbered from the committed
    /// version, all in one correlation chain (the first event's, or `cause`'s).
    pub fn uncommitted_envelopes(&self, cause: Option<&Envelope>) -> Result<Vec<Envelope>> {
        let base = self.committed_version();
        let mut out: Vec<Envelope> = Vec::with_capacity(self.uncommitted.len());
        for (i, e) in self.uncommitted.iter().enumerate() {
            let env = Envelope::new(self.id.clone(), base + i as u64 + 1, e)?;
            let env = match (cause, out.first()) {
                (Some(c), _) => env.caused_by(c),
                (None, Some(first)) => Envelope { correlation_id: first.correlation_id, ..env },
                (None, None) => env,
            };
            out.push(env);
        }
        Ok(out)
    }

    /// Call after the uncommitted events were stored.
    pub fn mark_committed(&mut self) -> Vec<A::Event> {
        std::mem::take(&mut self.uncommitted)
    }
}
