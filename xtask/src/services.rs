//! Kafka and PostgreSQL for one command: reuse what the environment names, start ours
//! otherwise, and stop exactly what this command started (also on errors and Ctrl-C).

use crate::error::Result;
use crate::{kafka, pg};

/// What a command started; stopped by [`Services::stop`] or, failing that, on drop.
#[derive(Debug, Default)]
pub struct Services {
    started_kafka: bool,
    started_pg: bool,
}

impl Services {
    /// Nothing started yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Kafka bootstrap address: `$KAFKA_BOOTSTRAP`, or our broker (started if needed).
    pub fn kafka(&mut self) -> Result<String> {
        if let Some(addr) = env_value(kafka::BOOTSTRAP_ENV) {
            println!("using Kafka at {addr} ({} is set)", kafka::BOOTSTRAP_ENV);
            return Ok(addr);
        }
        let kafka::Started(started) = kafka::ensure_up()?;
        self.started_kafka |= started;
        Ok(kafka::BOOTSTRAP.to_string())
    }

    /// The database URL: `$DATABASE_URL`, or our server (started if needed).
    pub fn postgres(&mut self) -> Result<String> {
        if let Some(url) = env_value(pg::URL_ENV) {
            println!("using PostgreSQL from {} (it is set)", pg::URL_ENV);
            return Ok(url);
        }
        let (url, started) = pg::ensure_up()?;
        self.started_pg |= started;
        Ok(url)
    }

    /// What [`Services::stop`] will do, for summaries (call it before stopping).
    pub fn describe(&self) -> &'static str {
        match (self.started_kafka, self.started_pg) {
            (true, true) => "started and stopped Kafka and PostgreSQL",
            (true, false) => "started and stopped Kafka",
            (false, true) => "started and stopped PostgreSQL",
            (false, false) => "used servers that were already running",
        }
    }

    /// Stops what this command started, newest first. Reports every failure.
    pub fn stop(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        if std::mem::take(&mut self.started_pg)
            && let Err(e) = pg::down()
        {
            errors.push(format!("stopping PostgreSQL: {e}"));
        }
        if std::mem::take(&mut self.started_kafka)
            && let Err(e) = kafka::down()
        {
            errors.push(format!("stopping Kafka: {e}"));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("error: {e}");
        }
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
