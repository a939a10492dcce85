//! The registry as a bus participant: it registers what contexts announce
//! on `mesh.events`, and runs one [`Enforcer`] per active Kafka output
//! port.
//!
//! Announcements (`<context>.DataProductAnnounced.v1` and
//! `<context>.ContractPublished.v1`) carry a YAML stream of ODCS contracts
//! and product documents under `documents`; each announcement registers
//! whole or not at all. A refused one goes to `mesh.events.dlq` with the
//! registry's error. No context calls the registry's code, and the
//! registry calls none: this is the only way in besides its own CLI.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain_core::Envelope;
use domain_core::bus::{Delivery, EventBus, SharedHandler};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::enforcer::{Enforcer, EnforcerConfig, PortSpec};
use crate::product::ProductStatus;
use crate::registry::Registry;
use crate::{Error, Result};

/// The consumer group the registry reads `mesh.events` in.
pub const ANNOUNCEMENTS_GROUP: &str = "mesh-registry.announcements";

/// Registers announcements read from `mesh.events`, and takes measured
/// quality into the search ranking.
#[derive(Debug, Clone)]
pub struct Announcements {
    registry: Arc<Registry>,
}

impl Announcements {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

fn name_of(event_type: &str) -> Option<&str> {
    let mut parts = event_type.split('.');
    let (_context, name) = (parts.next()?, parts.next()?);
    Some(name)
}

/// Whether a registry failure is worth a retry (storage) or final (the
/// document is wrong).
fn to_bus_error(e: Error) -> domain_core::Error {
    match e {
        Error::Db(_) | Error::Postgres(_) | Error::Io { .. } | Error::Task(_) | Error::Search(_) => {
            domain_core::Error::Transient(e.to_string())
        }
        e => domain_core::Error::Rejected(e.to_string()),
    }
}

#[async_trait]
impl SharedHandler for Announcements {
    async fn handle(&self, event: &Envelope, _delivery: &Delivery) -> domain_core::Result<()> {
        let ty = event.event_type.to_string();
        match name_of(&ty) {
            Some("DataProductAnnounced" | "ContractPublished") => {
                let Some(documents) = event.data.get("documents").and_then(|d| d.as_str()) else {
                    return Err(domain_core::Error::Rejected(format!(
                        "{ty} from {} carries no `documents` (a YAML stream of contracts and products)",
                        event.source
                    )));
                };
                let name = format!("{ty} {} from {}", event.subject, event.source);
                match self.registry.register_text(&name, documents).await {
                    Ok(done) => {
                        tracing::info!(announcement = %name, products = ?done.products, contracts = done.contracts.len(), "registered");
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(announcement = %name, error = %e, "announcement refused");
                        Err(to_bus_error(e))
                    }
                }
            }
            // Another context's measurement of a port the registry cannot
            // read (a lake table): kept as reported.
            Some("QualityMeasured") if event.source != crate::enforcer::SOURCE => {
                let product = event.data.get("product_id").and_then(|p| p.as_str());
                let port = event.data.get("port").and_then(|p| p.as_str());
                let (Some(product), Some(port)) = (product, port) else {
                    return Err(domain_core::Error::Rejected(format!(
                        "{ty} from {} names no product_id and port",
                        event.source
                    )));
                };
                match self.registry.record_reported_quality(product, port, event.data.clone()).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(to_bus_error(e)),
                }
            }
            Some("QualityMeasured") => {
                let product = event.data.get("product_id").and_then(|p| p.as_str());
                let quality = event.data.get("quality").and_then(serde_json::Value::as_f64);
                if let (Some(product), Some(quality)) = (product, quality) {
                    // A product this instance does not know yet is fine.
                    match self.registry.note_quality(product, quality) {
                        Ok(()) | Err(Error::NotFound { .. }) => {}
                        Err(e) => return Err(to_bus_error(e)),
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(name_of(event_type), Some("DataProductAnnounced" | "ContractPublished" | "QualityMeasured"))
    }
}

struct Running {
    spec: PortSpec,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

/// Keeps one enforcer running per Kafka output port of every active or
/// deprecated product (retired ones stop being measured).
pub struct Enforcement {
    registry: Arc<Registry>,
    bus: Arc<dyn EventBus>,
    config: EnforcerConfig,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
}

impl std::fmt::Debug for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcement").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Enforcement {
    pub fn new(registry: Arc<Registry>, bus: Arc<dyn EventBus>, config: EnforcerConfig) -> Self {
        Self { registry, bus, config, running: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// The ports that should be enforced now.
    pub async fn wanted(&self) -> Result<Vec<PortSpec>> {
        let mut out = Vec::new();
        for p in self.registry.products().await? {
            if matches!(p.status, ProductStatus::Active | ProductStatus::Deprecated) {
                out.extend(p.output_ports.iter().filter_map(|port| PortSpec::of(&p, port)));
            }
        }
        Ok(out)
    }

    /// Starts the enforcers that should run and stops the ones that
    /// should not (a port whose contract version changed restarts).
    /// Returns how many run.
    pub async fn sync(&self) -> Result<usize> {
        let wanted = self.wanted().await?;
        let mut running = self.running.lock().await;
        let keys: std::collections::HashSet<String> = wanted.iter().map(PortSpec::key).collect();
        let stale: Vec<String> = running
            .iter()
            .filter(|(k, r)| !keys.contains(*k) || !wanted.contains(&r.spec) || r.task.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(r) = running.remove(&k) {
                let _ = r.stop.send(true);
                match r.task.await {
                    Ok(Err(e)) => tracing::warn!(port = %k, error = %e, "enforcer stopped with an error"),
                    Err(e) => tracing::warn!(port = %k, error = %e, "enforcer task failed"),
                    Ok(Ok(())) => {}
                }
            }
        }
        for spec in wanted {
            if running.contains_key(&spec.key()) {
                continue;
            }
            let expectations = match self
                .registry
                .expectations(&spec.contract.contract_id, &spec.contract.contract_version, Some(&spec.topic))
                .await
            {
                Ok(e) => Arc::new(e),
                Err(e) => {
                    tracing::warn!(port = %spec.key(), error = %e, "cannot enforce: contract unusable");
                    continue;
                }
            };
            let enforcer = Enforcer::open(
                spec.clone(),
                expectations,
                Arc::clone(self.registry.catalogue()),
                Arc::clone(&self.bus),
                self.config.clone(),
            )
            .await?;
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(enforcer.run(stopped));
            running.insert(spec.key(), Running { spec, stop, task });
        }
        Ok(running.len())
    }

    /// Syncs every `every` until `stop` turns true, then stops every
    /// enforcer (each checkpoints what it read). Each round also re-ranks
    /// the enforced products by what was measured.
    pub async fn run(&self, every: Duration, mut stop: watch::Receiver<bool>) -> Result<()> {
        while !*stop.borrow() {
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "enforcement sync failed; retrying");
            }
            let products: std::collections::BTreeSet<String> =
                self.running.lock().await.values().map(|r| r.spec.product_id.clone()).collect();
            for p in products {
                if let Err(e) = self.registry.refresh_quality(&p).await {
                    tracing::warn!(product = %p, error = %e, "cannot re-rank by quality");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
        self.shutdown().await
    }

    /// Stops every enforcer and waits for them.
    pub async fn shutdown(&self) -> Result<()> {
        let mut running = self.running.lock().await;
        let mut first_error = None;
        for (_, r) in running.drain() {
            let _ = r.stop.send(true);
            match r.task.await {
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => first_error = first_error.or(Some(Error::Task(e))),
                Ok(Ok(())) => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
