//! An in-memory bus with Kafka's semantics, for tests, the demo and
//! single-process deployments: murmur2 key partitioning, consumer groups that
//! split partitions among members, committed offsets, redelivery of what was
//! not committed, dead-letter topics and publish backpressure.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::bus::partition::partition_for_key;
use crate::bus::{
    DEFAULT_MAX_RECORD_BYTES, Delivery, EventBus, Record, Subscription, TopicSpec, dead_letter, topics, validate_topic,
};
use crate::{Error, Result};

/// Limits of an [`InProcessBus`].
#[derive(Debug, Clone, Copy)]
pub struct InProcessConfig {
    pub max_record_bytes: usize,
    /// Records a partition may hold beyond the slowest group's commit
    /// before publishers wait.
    pub backlog_limit: usize,
    /// How long a publisher waits for consumers before [`Error::Backpressure`].
    pub publish_timeout: Duration,
}

impl Default for InProcessConfig {
    fn default() -> Self {
        Self {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            backlog_limit: 1_000_000,
            publish_timeout: Duration::from_secs(30),
        }
    }
}

/// The in-process bus. Cloning shares the same topics and groups.
#[derive(Debug, Clone, Default)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    changed: Notify,
    config: InProcessConfig,
}

type PartitionKey = (String, i32);

#[derive(Debug, Default)]
struct State {
    topics: HashMap<String, Vec<Vec<Record>>>,
    groups: HashMap<String, Group>,
    next_member: u64,
    unkeyed: u64,
}

#[derive(Debug, Default)]
struct Group {
    committed: HashMap<PartitionKey, i64>,
    /// Members in join order with the topics each subscribed to.
    members: Vec<(u64, Vec<String>)>,
    generation: u64,
}

impl Group {
    /// Partitions owned by `member`: all partitions of the group's topics,
    /// sorted, dealt round-robin to the members subscribed to each topic.
    fn assignment(&self, member: u64, topics: &HashMap<String, Vec<Vec<Record>>>) -> Vec<PartitionKey> {
        let subscribed: BTreeSet<&String> = self.members.iter().flat_map(|(_, t)| t).collect();
        let mut owned = Vec::new();
        for topic in subscribed {
            let holders: Vec<u64> = self.members.iter().filter(|(_, t)| t.contains(topic)).map(|(id, _)| *id).collect();
            let partitions = topics.get(topic).map_or(0, Vec::len);
            for p in 0..partitions {
                if holders.get(p % holders.len().max(1)) == Some(&member) {
                    owned.push((topic.clone(), p as i32));
                }
            }
        }
        owned
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_config(config: InProcessConfig) -> Self {
        Self { inner: Arc::new(Inner { config, ..Inner::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.inner)
    }

    /// Records currently in `topic`, summed over partitions.
    pub fn len(&self, topic: &str) -> usize {
        self.lock().topics.get(topic).map_or(0, |ps| ps.iter().map(Vec::len).sum())
    }

    /// Whether `topic` holds no records (or does not exist).
    pub fn is_empty(&self, topic: &str) -> bool {
        self.len(topic) == 0
    }

    /// Topic names and record counts, sorted by name.
    pub fn topic_sizes(&self) -> Vec<(String, usize)> {
        let state = self.lock();
        let mut v: Vec<_> = state.topics.iter().map(|(t, ps)| (t.clone(), ps.iter().map(Vec::len).sum())).collect();
        v.sort();
        v
    }

    /// Records waiting beyond the slowest interested group, for the worst
    /// partition of `topic`.
    fn backlog(state: &State, topic: &str) -> usize {
        let Some(partitions) = state.topics.get(topic) else { return 0 };
        let mut worst = 0;
        for group in state.groups.values() {
            let interested = group.members.iter().any(|(_, t)| t.iter().any(|x| x == topic))
                || group.committed.keys().any(|(t, _)| t == topic);
            if !interested {
                continue;
            }
            for (p, records) in partitions.iter().enumerate() {
                let done = group.committed.get(&(topic.to_owned(), p as i32)).copied().unwrap_or(0);
                worst = worst.max(records.len().saturating_sub(done.max(0) as usize));
            }
        }
        worst
    }

    fn append(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        let mut state = self.lock();
        let State { topics: all, unkeyed, .. } = &mut *state;
        let partitions = all.get_mut(topic).ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        let n = partitions.len() as u32;
        for r in records {
            let p = match &r.key {
                Some(k) => partition_for_key(k, n) as usize,
                None => {
                    *unkeyed += 1;
                    (*unkeyed % u64::from(n)) as usize
                }
            };
            partitions[p].push(r);
        }
        drop(state);
        self.inner.changed.notify_waiters();
        Ok(())
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave a half-written record
    // (pushes are atomic), so the state stays usable.
    inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn create_topics(&self, specs: &[TopicSpec]) -> Result<()> {
        for s in specs {
            validate_topic(&s.name)?;
            if s.partitions == 0 {
                return Err(Error::InvalidTopic(format!("{} (0 partitions)", s.name)));
            }
        }
        let mut state = self.lock();
        for s in specs {
            state.topics.entry(s.name.clone()).or_insert_with(|| vec![Vec::new(); s.partitions as usize]);
            state.topics.entry(topics::dlq(&s.name)).or_insert_with(|| vec![Vec::new()]);
        }
        Ok(())
    }

    async fn publish_records(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        validate_topic(topic)?;
        let max = self.inner.config.max_record_bytes;
        if let Some(r) = records.iter().find(|r| r.size() > max) {
            return Err(Error::RecordTooLarge { size: r.size(), max });
        }
        let deadline = Instant::now() + self.inner.config.publish_timeout;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if !state.topics.contains_key(topic) {
                    return Err(Error::UnknownTopic(topic.to_owned()));
                }
                if Self::backlog(&state, topic) < self.inner.config.backlog_limit {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::Backpressure(self.inner.config.publish_timeout));
            }
        }
        self.append(topic, records)
    }

    async fn subscribe(&self, group: &str, topic_names: &[&str]) -> Result<Box<dyn Subscription>> {
        let mut state = self.lock();
        for t in topic_names {
            if !state.topics.contains_key(*t) {
                return Err(Error::UnknownTopic((*t).to_owned()));
            }
        }
        state.next_member += 1;
        let member = state.next_member;
        let g = state.groups.entry(group.to_owned()).or_default();
        g.members.push((member, topic_names.iter().map(|t| (*t).to_owned()).collect()));
        g.generation += 1;
        drop(state);
        self.inner.changed.notify_waiters();
        Ok(Box::new(InProcessSubscription {
            bus: self.clone(),
            group: group.to_owned(),
            member,
            generation: 0,
            positions: HashMap::new(),
            cursor: 0,
        }))
    }

    fn max_record_bytes(&self) -> usize {
        self.inner.config.max_record_bytes
    }
}

/// One member of a consumer group on an [`InProcessBus`].
#[derive(Debug)]
struct InProcessSubscription {
    bus: InProcessBus,
    group: String,
    member: u64,
    generation: u64,
    /// Next offset to read per owned partition; reset on every rebalance.
    positions: HashMap<PartitionKey, i64>,
    cursor: usize,
}

impl InProcessSubscription {
    fn try_take(&mut self) -> Option<Delivery> {
        let state = self.bus.lock();
        let group = state.groups.get(&self.group)?;
        if group.generation != self.generation {
            self.generation = group.generation;
            self.positions.clear();
        }
        let owned = group.assignment(self.member, &state.topics);
        for i in 0..owned.len() {
            let key = &owned[(self.cursor + i) % owned.len()];
            let pos =
                *self.positions.entry(key.clone()).or_insert_with(|| group.committed.get(key).copied().unwrap_or(0));
            let Some(record) =
                state.topics.get(&key.0).and_then(|ps| ps.get(key.1 as usize)).and_then(|p| p.get(pos as usize))
            else {
                continue;
            };
            self.positions.insert(key.clone(), pos + 1);
            self.cursor = (self.cursor + i + 1) % owned.len();
            return Some(Delivery { topic: key.0.clone(), partition: key.1, offset: pos, record: record.clone() });
        }
        None
    }

    fn leave(&mut self) {
        let mut state = self.bus.lock();
        if let Some(g) = state.groups.get_mut(&self.group) {
            let before = g.members.len();
            g.members.retain(|(id, _)| *id != self.member);
            if g.members.len() != before {
                g.generation += 1;
            }
        }
        drop(state);
        self.bus.inner.changed.notify_waiters();
    }
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self, timeout: Duration) -> Result<Option<Delivery>> {
        let deadline = Instant::now() + timeout;
        let inner = Arc::clone(&self.bus.inner);
        loop {
            let notified = inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(d) = self.try_take() {
                return Ok(Some(d));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<()> {
        let mut state = self.bus.lock();
        let group = state.groups.get_mut(&self.group).ok_or(Error::Closed)?;
        group.committed.insert((delivery.topic.clone(), delivery.partition), delivery.offset + 1);
        drop(state);
        self.bus.inner.changed.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&mut self, delivery: &Delivery, error: &Error) -> Result<()> {
        self.bus.append(&topics::dlq(&delivery.topic), vec![dead_letter::record_for(delivery, error)])?;
        self.commit(delivery).await
    }

    fn lag(&self) -> Option<u64> {
        let state = self.bus.lock();
        let group = state.groups.get(&self.group)?;
        let lag = group
            .assignment(self.member, &state.topics)
            .iter()
            .map(|key| {
                let end = state.topics.get(&key.0).and_then(|ps| ps.get(key.1 as usize)).map_or(0, Vec::len) as i64;
                (end - group.committed.get(key).copied().unwrap_or(0)).max(0) as u64
            })
            .sum();
        Some(lag)
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        self.leave();
        Ok(())
    }
}

impl Drop for InProcessSubscription {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::bus_contract_tests!(InProcessBus::new());

    #[tokio::test]
    async fn members_of_a_group_split_partitions_and_take_over_when_one_leaves() {
        let bus = InProcessBus::new();
        bus.create_topics(&[TopicSpec::new("split", 4)]).await.expect("create");
        let records: Vec<Record> = (0..40)
            .map(|i| Record { key: Some(format!("k{i}").into_bytes()), headers: vec![], value: Some(b"{}".to_vec()) })
            .collect();
        bus.publish_records("split", records).await.expect("publish");
        let mut a = bus.subscribe("g", &["split"]).await.expect("a");
        let mut b = bus.subscribe("g", &["split"]).await.expect("b");
        let mut from_a = Vec::new();
        while let Some(d) = a.next(Duration::from_millis(50)).await.expect("next") {
            from_a.push(d);
        }
        let mut from_b = Vec::new();
        while let Some(d) = b.next(Duration::from_millis(50)).await.expect("next") {
            from_b.push(d);
        }
        let parts = |v: &[Delivery]| v.iter().map(|d| d.partition).collect::<BTreeSet<_>>();
        assert_eq!(parts(&from_a), BTreeSet::from([0, 2]));
        assert_eq!(parts(&from_b), BTreeSet::from([1, 3]));
        assert_eq!(from_a.len() + from_b.len(), 40, "each record to exactly one member");
        // a commits what it handled and leaves; b takes over a's partitions
        // from a's commits and b's own uncommitted partitions start over.
        for d in &from_a {
            a.commit(d).await.expect("commit");
        }
        a.close().await.expect("close");
        let mut after = Vec::new();
        while let Some(d) = b.next(Duration::from_millis(50)).await.expect("next") {
            after.push(d);
        }
        assert_eq!(parts(&after), BTreeSet::from([1, 3]), "only b's uncommitted partitions are redelivered");
        assert_eq!(after.len(), from_b.len());
    }

    #[tokio::test]
    async fn publishers_wait_for_slow_consumers() {
        let bus = InProcessBus::with_config(InProcessConfig {
            backlog_limit: 2,
            publish_timeout: Duration::from_millis(200),
            ..InProcessConfig::default()
        });
        bus.create_topics(&[TopicSpec::new("slow", 1)]).await.expect("create");
        let mut sub = bus.subscribe("g", &["slow"]).await.expect("subscribe");
        let rec = || vec![Record { key: Some(b"k".to_vec()), headers: vec![], value: Some(b"{}".to_vec()) }];
        bus.publish_records("slow", rec()).await.expect("1st");
        bus.publish_records("slow", rec()).await.expect("2nd");
        assert!(matches!(bus.publish_records("slow", rec()).await, Err(Error::Backpressure(_))));
        // A commit frees room and a waiting publisher goes through.
        let first = sub.next(Duration::from_secs(1)).await.expect("next").expect("record");
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.publish_records("slow", rec()).await })
        };
        sub.commit(&first).await.expect("commit");
        publisher.await.expect("join").expect("published after commit");
        assert_eq!(bus.len("slow"), 3);
    }
}
