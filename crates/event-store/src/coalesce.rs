//! Commands for one aggregate that arrive at the same time are run as one
//! batch: one load, each command decided on the state the ones before it
//! left, one append (see [`Repository::execute_many`]).
//!
//! An aggregate that many callers write at once (a merchant's account that
//! every payment credits) would otherwise take one load and one durable
//! append per command, and most of those appends would lose the race for
//! the next version and start over. Coalesced, it takes one append per
//! round of the store's group commit, whatever the number of callers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use domain_core::{Aggregate, Envelope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::{Error, Repository, Result};

/// One caller's decision: the events, or the aggregate's refusal.
pub type Decision<A> = std::result::Result<Vec<<A as Aggregate>::Event>, <A as Aggregate>::Error>;

type Waiting<A> = (<A as Aggregate>::Command, Option<Envelope>, oneshot::Sender<Result<Decision<A>>>);

/// Runs concurrent commands of one aggregate as batches.
pub struct Coalescer<A: Aggregate> {
    repository: Arc<Repository<A>>,
    queues: Mutex<HashMap<String, Vec<Waiting<A>>>>,
    retries: u32,
}

impl<A: Aggregate> std::fmt::Debug for Coalescer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").field("aggregate", &A::TYPE).finish_non_exhaustive()
    }
}

impl<A> Coalescer<A>
where
    A: Aggregate + Serialize + DeserializeOwned,
    A::Command: Clone + Send + Sync + 'static,
{
    /// `retries`: how often a batch runs again after a version conflict
    /// (a writer outside this coalescer, another process).
    pub fn new(repository: Arc<Repository<A>>, retries: u32) -> Self {
        Self { repository, queues: Mutex::new(HashMap::new()), retries }
    }

    pub fn repository(&self) -> &Arc<Repository<A>> {
        &self.repository
    }

    /// Runs `command` on aggregate `id`, together with whatever other
    /// commands for `id` are waiting. The first caller starts a task that
    /// runs the batches until no one waits (a task, so a caller that gives
    /// up cannot strand the others); everyone waits for their own answer.
    pub async fn execute(
        self: &Arc<Self>,
        id: &str,
        command: A::Command,
        cause: Option<Envelope>,
    ) -> Result<Decision<A>> {
        let (tx, rx) = oneshot::channel();
        let leader = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            match queues.get_mut(id) {
                Some(waiting) => {
                    waiting.push((command, cause, tx));
                    false
                }
                None => {
                    queues.insert(id.to_owned(), vec![(command, cause, tx)]);
                    true
                }
            }
        };
        if leader {
            let (this, id) = (Arc::clone(self), id.to_owned());
            tokio::spawn(async move { this.lead(&id).await });
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Takes what waits for `id` and runs it, until nothing waits.
    async fn lead(&self, id: &str) {
        loop {
            let batch = {
                let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
                let waiting = queues.get_mut(id).map(std::mem::take).unwrap_or_default();
                if waiting.is_empty() {
                    queues.remove(id);
                    return;
                }
                waiting
            };
            let (commands, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|(command, cause, tx)| ((command, cause), tx)).unzip();
            match self.repository.execute_many(id, &commands, self.retries).await {
                Ok(decisions) => {
                    for (tx, decision) in replies.into_iter().zip(decisions) {
                        let _ = tx.send(Ok(decision));
                    }
                }
                Err(e) => {
                    let shared = Arc::new(e);
                    for tx in replies {
                        let _ = tx.send(Err(Error::Shared(Arc::clone(&shared))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventStore, InMemoryEventStore};
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Ev {
        Took { n: u32 },
    }
    impl domain_core::DomainEvent for Ev {
        const CONTEXT: &'static str = "coalesce";
    }

    /// A stock of 100 that refuses to go below zero.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    struct Stock {
        taken: u32,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("out of stock")]
    struct Out;

    impl Aggregate for Stock {
        const TYPE: &'static str = "Stock";
        type Command = u32;
        type Event = Ev;
        type Error = Out;
        fn handle(&self, n: u32) -> std::result::Result<Vec<Ev>, Out> {
            if self.taken + n > 100 { Err(Out) } else { Ok(vec![Ev::Took { n }]) }
        }
        fn apply(&mut self, Ev::Took { n }: &Ev) {
            self.taken += n;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_callers_share_appends_and_each_gets_its_own_decision() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let coalescer = Arc::new(Coalescer::new(Arc::new(Repository::<Stock>::new(Arc::clone(&store))), 5));
        let tasks: Vec<_> = (0..150)
            .map(|_| {
                let c = Arc::clone(&coalescer);
                tokio::spawn(async move { c.execute("s1", 1, None).await })
            })
            .collect();
        let (mut took, mut refused) = (0, 0);
        for t in tasks {
            match t.await.expect("join").expect("store") {
                Ok(events) => {
                    assert_eq!(events, vec![Ev::Took { n: 1 }]);
                    took += 1;
                }
                Err(Out) => refused += 1,
            }
        }
        assert_eq!((took, refused), (100, 50), "exactly the stock was taken");
        let stream = Repository::<Stock>::stream_of("s1").expect("id");
        assert_eq!(store.stream_version(&stream).await.expect("version"), 100);
        let appends = store
            .read_all(1, 1000)
            .await
            .expect("read")
            .windows(2)
            .filter(|w| w[0].recorded_at != w[1].recorded_at)
            .count()
            + 1;
        assert!(appends < 100, "callers shared appends ({appends} appends for 100 events)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_strands_no_one() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let coalescer = Arc::new(Coalescer::new(Arc::new(Repository::<Stock>::new(store)), 5));
        for _ in 0..50 {
            let c = Arc::clone(&coalescer);
            let leader = tokio::spawn(async move { c.execute("s2", 1, None).await });
            leader.abort();
            let after = tokio::time::timeout(std::time::Duration::from_secs(5), coalescer.execute("s2", 1, None)).await;
            assert!(matches!(after, Ok(Ok(Ok(_)))), "the next caller is answered");
        }
    }
}
