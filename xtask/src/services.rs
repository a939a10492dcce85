//! Kafka and PostgreSQL for one command: reuse what the environment names, start ours
//! otherwise, and stop exactly what this command started (also on errors and Ctrl-C).

use crate::error::Result;
use crate::{kafka, pg, pylake};

/// What a command started; stopped by [`Services::stop`] or, failing that, on drop.
#[derive(Debug, Default)]
pub struct Services {
    started_kafka: bool,
    started_pg: bool,
    started_s3: bool,
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
        let kafka::Started(started) = kafka::ensure_up(kafka::Storage::Fresh)?;
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

    /// The S3 endpoint for the lake's tests: `$LAKE_S3_ENDPOINT`, or moto's server
    /// (started if needed).
    pub fn s3(&mut self) -> Result<String> {
        if let Some(url) = env_value(pylake::S3_ENV) {
            println!("using S3 at {url} ({} is set)", pylake::S3_ENV);
            return Ok(url);
        }
        self.started_s3 |= pylake::s3_up()?;
        Ok(format!("http://{}", pylake::S3_ADDR))
    }

    /// What [`Services::stop`] will do, for summaries (call it before stopping).
    pub fn describe(&self) -> String {
        let started: Vec<&str> =
            [(self.started_kafka, "Kafka"), (self.started_pg, "PostgreSQL"), (self.started_s3, "the S3 server")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
        if started.is_empty() {
            "used servers that were already running".to_owned()
        } else {
            format!("started and stopped {}", started.join(", "))
        }
    }

    /// Stops what this command started, newest first. Reports every failure.
    pub fn stop(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        if std::mem::take(&mut self.started_s3)
            && let Err(e) = pylake::s3_down()
        {
            errors.push(format!("stopping the S3 server: {e}"));
        }
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
