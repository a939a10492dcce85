//! The end-to-end suite: the five contexts as separate `platform serve`
//! processes over a private Kafka broker (so stopping it touches no other
//! test), each with a storage directory of its own, talking only through
//! the bus. [`Platform`] starts, kills (SIGKILL) and restarts them on
//! fixed addresses; [`traffic`] places orders over HTTP the way a client
//! that retries does and checks the end state every context must agree on.

pub mod traffic;

mod suite;

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::broker::PrivateBroker;
use super::http::{Client, Served, free_addr};
use super::support::unique;

/// Every context, each served by its own process.
pub const SERVICES: [&str; 5] = ["orders", "accounts", "registry", "lake", "timeseries"];

/// Where each service listens; it stays put across restarts.
pub type Addrs = BTreeMap<&'static str, String>;

/// The platform as five processes on one private broker.
pub struct Platform {
    pub broker: PrivateBroker,
    root: PathBuf,
    prefix: String,
    addrs: Addrs,
    running: BTreeMap<&'static str, Served>,
}

impl Platform {
    /// Starts the broker and every service, and waits until each is ready.
    pub async fn start(name: &str) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let broker = tokio::task::block_in_place(|| PrivateBroker::start(&format!("e2e-broker-{name}-{id}")));
        let root = std::env::temp_dir().join(format!("e2e-{name}-{id}"));
        let addrs = SERVICES.iter().map(|s| (*s, free_addr())).collect();
        let mut p = Self { broker, root, prefix: format!("{}.", unique(name)), addrs, running: BTreeMap::new() };
        for s in SERVICES {
            p.launch(s);
        }
        for s in SERVICES {
            p.running[s].wait_ready().await;
        }
        p
    }

    fn launch(&mut self, service: &'static str) {
        // Refinement on demand only, so the checks decide when it runs.
        let env = [("PLATFORM_LAKE_REFINE_SECS", "0")];
        let data = self.root.join(service);
        let served =
            Served::spawn_at(&self.addrs[service], &self.broker.bootstrap(), &[service], &data, &self.prefix, &env);
        self.running.insert(service, served);
    }

    pub fn client(&self, service: &str) -> Client {
        Client::new(&self.addrs[service])
    }

    pub fn addrs(&self) -> Addrs {
        self.addrs.clone()
    }

    /// The prefix of every topic and group name of this platform.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// SIGKILL, then the same service on the same storage and address.
    pub async fn kill_and_restart(&mut self, service: &'static str) {
        let served = self.running.remove(service).unwrap_or_else(|| panic!("{service} runs"));
        let pid = served.pid().to_string();
        let killed = std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill runs");
        assert!(killed.success(), "kill -9 {service} ({pid})");
        // Dropping reaps the process.
        drop(served);
        self.launch(service);
        self.running[service].wait_ready().await;
    }

    /// Stops the broker (SIGTERM) and waits for it to exit.
    pub fn stop_broker(&mut self) {
        tokio::task::block_in_place(|| self.broker.stop());
    }

    /// Starts the broker again on its data and waits until it listens.
    pub fn resume_broker(&mut self) {
        tokio::task::block_in_place(|| self.broker.resume());
    }

    /// Every service's log, for a failing assertion.
    pub fn logs(&self) -> String {
        self.running.iter().map(|(s, served)| format!("===== {s}\n{}\n", tail(&served.log(), 60))).collect()
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Platform {
    fn drop(&mut self) {
        // The services go first (their drop kills them), then the files;
        // a failed run keeps them for a look.
        self.running.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
