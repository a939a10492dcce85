//! Contract enforcement on the live bus: one [`Enforcer`] per active Kafka
//! output port.
//!
//! It reads the port's topic in a consumer group of its own
//! (`mesh-registry.enforce.<product>.<port>`, from the earliest record, so
//! a newly enforced port measures everything that flowed), skips events of
//! other types, validates each record against the contract, measures it
//! ([`crate::quality`]) and keeps the latest valid record per key, which
//! the product's named queries serve.
//!
//! Exactly-once counting: after each batch the next offset per partition,
//! the measurements and the batch's records are written to the catalogue
//! in one transaction, and only then are the Kafka offsets committed. On a
//! restart the enforcer loads that checkpoint and skips every record below
//! it, so records redelivered because the Kafka commit was lost are not
//! counted again, and none is skipped.
//!
//! What it publishes on `mesh.events` (subject: the product id):
//! `mesh.QualityMeasured.v1` every `measure_every` and on demand,
//! `mesh.ContractViolated.v1` for each batch that had invalid records (with
//! up to `max_samples` of them), and `mesh.SlaBreached.v1` when a promise
//! (freshness, throughput) starts being broken. Those events go into the
//! checkpoint first (an outbox) and are published after it commits, so a
//! crash can repeat one (same event id) but not lose it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain_core::bus::{Delivery, EventBus, Subscription, topics};
use domain_core::{Envelope, EventType, codec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Result;
use crate::catalogue::{Catalogue, PortCheckpoint, StoredRecord};
use crate::product::{ContractRef, DataProduct, OutputPort, PortLocation};
use crate::quality::{Expectations, Measurement, Meter, Seen, value_hash};

/// The `source` of the registry's own events.
pub const SOURCE: &str = "mesh";

/// How an enforcer batches and reports.
#[derive(Debug, Clone)]
pub struct EnforcerConfig {
    /// Records per batch (one catalogue transaction).
    pub batch: usize,
    /// How long a step waits for its first record.
    pub wait: Duration,
    /// How often `QualityMeasured` is published while records flow.
    pub measure_every: Duration,
    /// The sliding window of the measurements.
    pub window: Duration,
    /// Offending records carried by one `ContractViolated`.
    pub max_samples: usize,
    /// In front of every topic and group name (tests and demo runs that
    /// share a broker keep apart this way; empty in production).
    pub prefix: String,
}

impl Default for EnforcerConfig {
    fn default() -> Self {
        Self {
            batch: 1000,
            wait: Duration::from_millis(200),
            measure_every: Duration::from_secs(5),
            window: crate::quality::DEFAULT_WINDOW,
            max_samples: 5,
            prefix: String::new(),
        }
    }
}

/// The port an enforcer watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub product_id: String,
    pub port: String,
    pub topic: String,
    pub event_types: Vec<String>,
    pub key_field: Option<String>,
    pub contract: ContractRef,
}

impl PortSpec {
    /// The Kafka output port `port` of `product`, if it is one.
    pub fn of(product: &DataProduct, port: &OutputPort) -> Option<Self> {
        match &port.location {
            PortLocation::Kafka { topic, event_types, key } => Some(Self {
                product_id: product.id.clone(),
                port: port.name.clone(),
                topic: topic.clone(),
                event_types: event_types.clone(),
                key_field: key.clone(),
                contract: port.contract.clone(),
            }),
            _ => None,
        }
    }

    /// The catalogue key of the port's checkpoint and records.
    pub fn key(&self) -> String {
        port_key(&self.product_id, &self.port)
    }

    pub fn group(&self) -> String {
        format!("mesh-registry.enforce.{}.{}", self.product_id, self.port)
    }

    fn carries(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

/// The catalogue key of a port.
pub fn port_key(product_id: &str, port: &str) -> String {
    format!("{product_id}/{port}")
}

/// One offending record, as `ContractViolated` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub event_id: Option<String>,
    pub errors: Vec<String>,
    /// The record's payload, cut to 1 KiB of JSON text.
    pub record: String,
}

/// What the checkpoint keeps beside the offsets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PortState {
    meter: Meter,
    /// Events written with the checkpoint, published after it commits.
    outbox: Vec<Value>,
    /// SLA properties currently breached (a breach is reported when it
    /// starts).
    breached: BTreeSet<String>,
    last_measured: Option<DateTime<Utc>>,
    violations: u64,
}

/// Enforces one port's contract (see the module doc).
pub struct Enforcer {
    spec: PortSpec,
    expectations: Arc<Expectations>,
    catalogue: Arc<dyn Catalogue>,
    bus: Arc<dyn EventBus>,
    config: EnforcerConfig,
    next_offsets: BTreeMap<i32, i64>,
    state: PortState,
    seen: HashMap<String, Seen>,
    /// Whether `seen` holds every stored record of the port (true for a
    /// port enforced from scratch by this process): then a key missing
    /// there is new, and the catalogue need not be asked.
    seen_is_complete: bool,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer").field("spec", &self.spec).field("next_offsets", &self.next_offsets).finish()
    }
}

fn event_type(name: &str) -> Result<EventType> {
    Ok(EventType::new(SOURCE, name, 1)?)
}

impl Enforcer {
    /// Loads the port's checkpoint and publishes what its outbox still
    /// holds.
    pub async fn open(
        spec: PortSpec,
        expectations: Arc<Expectations>,
        catalogue: Arc<dyn Catalogue>,
        bus: Arc<dyn EventBus>,
        config: EnforcerConfig,
    ) -> Result<Self> {
        let stored = catalogue.checkpoint(&spec.key()).await?;
        let seen_is_complete = stored.is_none();
        let checkpoint = stored.unwrap_or_default();
        let state: PortState =
            if checkpoint.state.is_null() { PortState::default() } else { serde_json::from_value(checkpoint.state)? };
        let mut enforcer = Self {
            spec,
            expectations,
            catalogue,
            bus,
            config,
            next_offsets: checkpoint.next_offsets,
            state,
            seen: HashMap::new(),
            seen_is_complete,
        };
        enforcer.publish_outbox().await?;
        Ok(enforcer)
    }

    pub fn spec(&self) -> &PortSpec {
        &self.spec
    }

    /// Joins the port's consumer group.
    pub async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        let prefix = &self.config.prefix;
        let topic = format!("{prefix}{}", self.spec.topic);
        Ok(self.bus.subscribe(&format!("{prefix}{}", self.spec.group()), &[topic.as_str()]).await?)
    }

    /// The measurement now.
    pub fn measurement(&self) -> Measurement {
        self.state.meter.measure(&self.expectations, self.config.window, Utc::now())
    }

    /// Records read and found invalid since the port was first enforced.
    pub fn violations(&self) -> u64 {
        self.state.violations
    }

    /// The next offset per partition, as checkpointed.
    pub fn next_offsets(&self) -> &BTreeMap<i32, i64> {
        &self.next_offsets
    }

    /// Reads one batch (waiting up to `wait` for its first record),
    /// measures it, checkpoints, commits and publishes. Returns how many
    /// records were read (skipped ones included).
    pub async fn step(&mut self, sub: &mut dyn Subscription) -> Result<usize> {
        let mut batch: Vec<Delivery> = Vec::new();
        let mut wait = self.config.wait;
        while batch.len() < self.config.batch {
            match sub.next(wait).await? {
                Some(d) => batch.push(d),
                None => break,
            }
            wait = Duration::from_millis(5);
        }
        let now = Utc::now();
        let mut records: Vec<StoredRecord> = Vec::new();
        let mut samples: Vec<Sample> = Vec::new();
        let mut bad = 0u64;
        let mut last: BTreeMap<i32, usize> = BTreeMap::new();
        for (i, d) in batch.iter().enumerate() {
            last.insert(d.partition, i);
            if d.offset < self.next_offsets.get(&d.partition).copied().unwrap_or(0) {
                continue; // counted before the crash that lost the Kafka commit
            }
            self.next_offsets.insert(d.partition, d.offset + 1);
            let claimed = d.record.header(codec::headers::TYPE).and_then(|t| std::str::from_utf8(t).ok());
            if claimed.is_some_and(|t| !self.spec.carries(t)) {
                continue;
            }
            match d.envelope(self.bus.max_record_bytes()) {
                Err(e) => {
                    self.state.meter.undecodable(&self.expectations, now);
                    bad += 1;
                    if samples.len() < self.config.max_samples {
                        samples.push(sample(d, None, None, vec![format!("does not decode: {e}")]));
                    }
                }
                Ok(env) => {
                    if let Some(r) = self.observe(d, env, now, &mut samples, &mut bad).await? {
                        records.push(r);
                    }
                }
            }
        }
        self.state.violations += bad;
        if bad > 0 {
            let data = json!({
                "product_id": self.spec.product_id,
                "port": self.spec.port,
                "contract_id": self.spec.contract.contract_id,
                "contract_version": self.spec.contract.contract_version,
                "invalid_records": bad,
                "records_in_batch": batch.len(),
                "samples": samples,
            });
            self.push_event("ContractViolated", data)?;
        }
        let due = self
            .state
            .last_measured
            .is_none_or(|t| now.signed_duration_since(t).to_std().is_ok_and(|d| d >= self.config.measure_every));
        if due && !batch.is_empty() {
            self.push_measurement(now)?;
        }
        if batch.is_empty() && self.state.outbox.is_empty() {
            return Ok(0);
        }
        self.checkpoint(&records).await?;
        for i in last.values() {
            sub.commit(&batch[*i]).await?;
        }
        self.publish_outbox().await?;
        Ok(batch.len())
    }

    /// Publishes a `QualityMeasured` (and any SLA breach) now.
    pub async fn measure_now(&mut self) -> Result<Measurement> {
        let m = self.push_measurement(Utc::now())?;
        self.checkpoint(&[]).await?;
        self.publish_outbox().await?;
        Ok(m)
    }

    /// Runs until `stop` turns true; a failed step is logged and retried
    /// after a pause (the checkpoint makes a retry safe).
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        let mut sub = self.subscribe().await?;
        let mut pause = Duration::from_millis(100);
        while !*stop.borrow() {
            tokio::select! {
                r = self.step(sub.as_mut()) => match r {
                    Ok(_) => pause = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(port = %self.spec.key(), error = %e, "enforcer step failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                },
                _ = stop.changed() => {}
            }
        }
        sub.close().await?;
        Ok(())
    }

    async fn observe(
        &mut self,
        d: &Delivery,
        env: Envelope,
        now: DateTime<Utc>,
        samples: &mut Vec<Sample>,
        bad: &mut u64,
    ) -> Result<Option<StoredRecord>> {
        let key = match &self.spec.key_field {
            Some(field) => match env.data.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(v) if !v.is_null() => v.to_string(),
                _ => env.subject.clone(),
            },
            None => env.subject.clone(),
        };
        let previous = match self.seen.get(&key) {
            Some(s) => Some(*s),
            None if self.seen_is_complete => None,
            None => self
                .catalogue
                .record(&self.spec.key(), &key)
                .await?
                .map(|r| Seen { version: r.version, hash: value_hash(&r.value) }),
        };
        let verdict =
            self.state.meter.observe(&self.expectations, &env.data, env.aggregate_version, previous, env.time, now);
        if !(verdict.accurate && verdict.complete) {
            *bad += 1;
            if samples.len() < self.config.max_samples {
                samples.push(sample(d, Some(&key), Some(&env), verdict.errors));
            }
            return Ok(None);
        }
        if !verdict.consistent {
            return Ok(None);
        }
        self.seen.insert(key.clone(), Seen { version: env.aggregate_version, hash: value_hash(&env.data) });
        Ok(Some(StoredRecord {
            key,
            value: env.data,
            version: env.aggregate_version,
            partition: d.partition,
            offset: d.offset,
            time: env.time,
        }))
    }

    fn push_measurement(&mut self, now: DateTime<Utc>) -> Result<Measurement> {
        let m = self.state.meter.measure(&self.expectations, self.config.window, now);
        self.state.last_measured = Some(now);
        let data = json!({
            "product_id": self.spec.product_id,
            "port": self.spec.port,
            "contract_id": self.spec.contract.contract_id,
            "contract_version": self.spec.contract.contract_version,
            "quality": m.totals.overall(),
            "measurement": m,
        });
        self.push_event("QualityMeasured", data)?;
        let mut breaches = Vec::new();
        if let (Some(limit), Some(stale)) = (self.expectations.freshness, m.staleness_seconds) {
            breaches.push(("freshness", stale > limit.as_secs_f64(), limit.as_secs_f64(), stale, "seconds"));
        }
        if let Some(min) = self.expectations.min_throughput {
            let rate = m.throughput_per_second;
            breaches.push(("throughput", rate < min, min, rate, "records per second"));
        }
        for (property, broken, threshold, observed, unit) in breaches {
            let was = self.state.breached.contains(property);
            if broken && !was {
                self.state.breached.insert(property.to_owned());
                let data = json!({
                    "product_id": self.spec.product_id,
                    "port": self.spec.port,
                    "property": property,
                    "threshold": threshold,
                    "observed": observed,
                    "unit": unit,
                });
                self.push_event("SlaBreached", data)?;
            } else if !broken && was {
                self.state.breached.remove(property);
            }
        }
        Ok(m)
    }

    fn push_event(&mut self, name: &str, data: Value) -> Result<()> {
        let env = Envelope::raw(SOURCE, event_type(name)?, self.spec.product_id.clone(), 0, data);
        self.state.outbox.push(serde_json::from_slice(&codec::to_json(&env)?)?);
        Ok(())
    }

    async fn checkpoint(&mut self, records: &[StoredRecord]) -> Result<()> {
        let checkpoint =
            PortCheckpoint { next_offsets: self.next_offsets.clone(), state: serde_json::to_value(&self.state)? };
        self.catalogue.advance(&self.spec.key(), &checkpoint, records).await
    }

    async fn publish_outbox(&mut self) -> Result<()> {
        if self.state.outbox.is_empty() {
            return Ok(());
        }
        let events = self
            .state
            .outbox
            .iter()
            .map(|v| Ok(codec::from_json(&serde_json::to_vec(v)?)?))
            .collect::<Result<Vec<Envelope>>>()?;
        self.bus.publish(&format!("{}{}", self.config.prefix, topics::MESH), &events).await?;
        // Cleared in memory; the next checkpoint writes it cleared. A crash
        // before that publishes these again, with the same ids.
        self.state.outbox.clear();
        Ok(())
    }
}

fn sample(d: &Delivery, key: Option<&str>, env: Option<&Envelope>, errors: Vec<String>) -> Sample {
    let mut record = match env {
        Some(e) => e.data.to_string(),
        None => String::from_utf8_lossy(d.record.value.as_deref().unwrap_or_default()).into_owned(),
    };
    if record.len() > 1024 {
        let mut cut = 1024;
        while !record.is_char_boundary(cut) {
            cut -= 1;
        }
        record.truncate(cut);
    }
    Sample {
        partition: d.partition,
        offset: d.offset,
        key: key.map(str::to_owned),
        event_id: env.map(|e| e.id.to_string()),
        errors,
        record,
    }
}
