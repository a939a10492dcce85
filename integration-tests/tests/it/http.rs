//! `platform serve` as a child process of the tests (killed if dropped);
//! the HTTP client and the Prometheus reader are `integration_tests::http_client`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub use integration_tests::http_client::{Client, Reply, free_addr, parse_prometheus, sum};

/// `platform serve` running as a child process; killed if dropped.
#[derive(Debug)]
pub struct Served {
    child: Option<Child>,
    pub addr: String,
    log: PathBuf,
}

impl Served {
    /// Starts `platform serve CONTEXTS` over the test broker, with topic
    /// and group names under `prefix`, and waits for `/readyz`.
    pub async fn start(contexts: &[&str], data: &Path, prefix: &str, env: &[(&str, &str)]) -> Self {
        let served = Self::spawn(&super::support::bootstrap(), contexts, data, prefix, env);
        served.wait_ready().await;
        served
    }

    /// Starts `platform serve CONTEXTS` over the brokers at `bootstrap`
    /// without waiting for it.
    pub fn spawn(bootstrap: &str, contexts: &[&str], data: &Path, prefix: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_at(&free_addr(), bootstrap, contexts, data, prefix, env)
    }

    /// [`Served::spawn`] listening on `addr`, so a restarted service is
    /// found where its clients left it.
    pub fn spawn_at(
        addr: &str,
        bootstrap: &str,
        contexts: &[&str],
        data: &Path,
        prefix: &str,
        env: &[(&str, &str)],
    ) -> Self {
        std::fs::create_dir_all(data).expect("data dir");
        let addr = addr.to_owned();
        let log = data.join("serve.log");
        // Appended to, so a restarted service's log follows the one killed.
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_platform-cli"));
        cmd.arg("--data")
            .arg(data)
            .arg("serve")
            .args(contexts)
            .args(["--kafka", bootstrap, "--http", &addr, "--topic-prefix", prefix])
            .env_remove("DATABASE_URL")
            .env_remove("PLATFORM_TOKENS")
            .env("PLATFORM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn platform-cli serve");
        Self { child: Some(child), addr, log }
    }

    /// Waits for the process to end (killing it and failing after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let mut status = None;
        super::support::wait_until(limit, || {
            status = child.try_wait().expect("wait");
            status.is_some()
        });
        status.unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the service did not exit within {limit:?}; its log:\n{}", self.log())
        })
    }

    pub fn client(&self) -> Client {
        Client::new(&self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    pub async fn wait_ready(&self) {
        let ready = self.client().ready_within(Duration::from_secs(90)).await;
        assert!(ready, "the service did not become ready; its log:\n{}", self.log());
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM to {pid}");
        self.wait_exit(limit)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
