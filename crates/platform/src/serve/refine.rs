//! The lake service's refinement: bronze to silver to gold, every
//! `lake_refine_secs` and on demand (`POST /lake/refine`), one run at a
//! time. Each run publishes what it measured (`lake.QualityMeasured.v1`
//! per silver table, `lake.GoldUpdated.v1` per gold table with its
//! lineage) on `<prefix>lake.events`. The pipelines are incremental and
//! keep their marks in the tables' `txn` actions, so a run killed halfway
//! is redone from the last commit, never doubled.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain_core::bus::{EventBus, topics};
use lake::LakeLocation;
use lake::gold::{GoldPipeline, GoldReport};
use lake::silver::{SilverPipeline, SilverReport};
use serde::Serialize;
use tokio::sync::watch;

use crate::Result;

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct Refined {
    pub started_at: DateTime<Utc>,
    pub millis: u64,
    pub silver: SilverReport,
    pub gold: GoldReport,
    /// Events published on `<prefix>lake.events`.
    pub published: usize,
}

/// Runs the pipelines of one lake, one run at a time.
pub struct Refiner {
    location: LakeLocation,
    bus: Arc<dyn EventBus>,
    topic: String,
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<Refined>>,
    runs: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Refiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refiner").field("location", &self.location).field("topic", &self.topic).finish()
    }
}

impl Refiner {
    pub fn new(location: LakeLocation, bus: Arc<dyn EventBus>, prefix: &str) -> Self {
        Self {
            location,
            bus,
            topic: format!("{prefix}{}", topics::LAKE),
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            runs: 0.into(),
            failures: 0.into(),
        }
    }

    /// One run now (after the one in progress, if any).
    pub async fn run_once(&self) -> Result<Refined> {
        let _one_at_a_time = self.running.lock().await;
        let started_at = Utc::now();
        let clock = std::time::Instant::now();
        let outcome = self.refine().await;
        let ordering = std::sync::atomic::Ordering::Relaxed;
        match outcome {
            Ok((silver, gold, published)) => {
                self.runs.fetch_add(1, ordering);
                let millis = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
                let done = Refined { started_at, millis, silver, gold, published };
                *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(done.clone());
                Ok(done)
            }
            Err(e) => {
                self.failures.fetch_add(1, ordering);
                Err(e)
            }
        }
    }

    async fn refine(&self) -> Result<(SilverReport, GoldReport, usize)> {
        let silver = SilverPipeline::new(self.location.clone())?.run().await?;
        let gold = GoldPipeline::new(self.location.clone()).run().await?;
        let mut events = silver.quality_events()?;
        events.extend(gold.lineage_events()?);
        if !events.is_empty() {
            self.bus.publish(&self.topic, &events).await?;
        }
        Ok((silver, gold, events.len()))
    }

    /// The last run that succeeded.
    pub fn last(&self) -> Option<Refined> {
        self.last.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// (runs that succeeded, runs that failed).
    pub fn counts(&self) -> (u64, u64) {
        let ordering = std::sync::atomic::Ordering::Relaxed;
        (self.runs.load(ordering), self.failures.load(ordering))
    }

    /// Runs every `every` until `stop`; a failed run is logged and retried
    /// at the next tick (the service keeps serving what the lake holds).
    pub async fn every(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                _ = ticks.tick() => {}
            }
            match self.run_once().await {
                Ok(r) => tracing::info!(
                    millis = r.millis,
                    bronze_rows = r.silver.bronze_rows,
                    published = r.published,
                    "lake refined"
                ),
                Err(e) => tracing::warn!(error = %e, "lake refinement failed; retrying at the next tick"),
            }
        }
    }
}
