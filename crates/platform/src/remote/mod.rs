//! The contexts as separate `platform serve` processes, and the demo's
//! clients of them: [`Services`] starts one process per context on a
//! broker (each owns its storage under the shared `--data` root and talks
//! to the others only through the bus), [`Endpoint`] calls one over HTTP,
//! and [`commerce::RemoteCommerce`] is the scenarios' [`crate::commerce::CommercePort`]
//! on the orders and accounts services.

pub mod commerce;
pub mod lake;
pub mod scenarios;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result, io};
use crate::http_client::{self, Reply};

/// Every context, each served by its own process.
pub const CONTEXTS: [&str; 5] = ["orders", "accounts", "registry", "lake", "timeseries"];

/// How long a service may take to answer `/readyz` after it started.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long a service may take to exit after SIGTERM.
const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// One context's HTTP API.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub context: &'static str,
    pub addr: String,
}

impl Endpoint {
    /// One request; a transport failure is an error, any status is an answer.
    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply> {
        match body {
            Some(json) => self.send_bytes(method, path, "application/json", json.to_string().as_bytes()).await,
            None => self.send_bytes(method, path, "", &[]).await,
        }
    }

    /// One request with a body of `content_type` (none when empty).
    pub async fn send_bytes(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<Reply> {
        let headers: &[(&str, &str)] = if content_type.is_empty() { &[] } else { &[("Content-Type", content_type)] };
        http_client::send(&self.addr, method, path, headers, body).await.map_err(|source| Error::Http {
            context: self.context,
            request: format!("{method} {path}"),
            source,
        })
    }

    /// A request that must succeed (2xx); its JSON body (`null` if empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let reply = self.send(method, path, body).await?;
        if !reply.is_success() {
            return Err(self.refused(method, path, &reply));
        }
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(reply.json()?)
    }

    /// The error for an answer that was not a success.
    pub fn refused(&self, method: &str, path: &str, reply: &Reply) -> Error {
        Error::Service {
            context: self.context,
            request: format!("{method} {path}"),
            status: reply.status,
            body: reply.text(),
        }
    }

    /// The samples of its `/metrics`, `name{labels}` -> value.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let reply = self.send("GET", "/metrics", None).await?;
        if !reply.is_success() {
            return Err(self.refused("GET", "/metrics", &reply));
        }
        crate::serve::exposition::parse(&reply.text()).map_err(|why| Error::Service {
            context: self.context,
            request: "GET /metrics".into(),
            status: reply.status,
            body: why,
        })
    }
}

struct Running {
    endpoint: Endpoint,
    child: Child,
    log: PathBuf,
}

/// The five contexts as five processes of this binary.
pub struct Services {
    running: Vec<Running>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.running.iter().map(|r| (&r.endpoint, r.child.id()))).finish()
    }
}

impl Services {
    /// Starts `platform serve <context>` for every context on `bootstrap`,
    /// storage under `data`, topic and group names under `prefix`, each
    /// process's log in `logs/<context>.log`; waits until all are ready.
    /// `env` is given to every process.
    pub async fn start(bootstrap: &str, data: &Path, prefix: &str, logs: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let exe = std::env::current_exe().map_err(io(Path::new("the platform executable")))?;
        std::fs::create_dir_all(logs).map_err(io(logs))?;
        let mut services = Self { running: Vec::new() };
        for context in CONTEXTS {
            let addr = free_addr()?;
            let log = logs.join(format!("{context}.log"));
            let out = std::fs::File::create(&log).map_err(io(&log))?;
            let err = out.try_clone().map_err(io(&log))?;
            let mut cmd = Command::new(&exe);
            cmd.arg("--data")
                .arg(data)
                .args(["serve", context, "--kafka", bootstrap, "--http", &addr, "--topic-prefix", prefix])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().map_err(io(&exe))?;
            services.running.push(Running { endpoint: Endpoint { context, addr }, child, log });
        }
        for r in &services.running {
            if !http_client::ready_within(&r.endpoint.addr, READY_WITHIN).await {
                return Err(Error::Usage(format!(
                    "the {} service did not become ready within {} s; its log is {}",
                    r.endpoint.context,
                    READY_WITHIN.as_secs(),
                    r.log.display()
                )));
            }
        }
        Ok(services)
    }

    /// The API of one context.
    pub fn endpoint(&self, context: &str) -> Result<Endpoint> {
        self.running
            .iter()
            .find(|r| r.endpoint.context == context)
            .map(|r| r.endpoint.clone())
            .ok_or_else(|| Error::Usage(format!("no `{context}` service runs")))
    }

    /// Where each runs, for the report.
    pub fn describe(&self) -> Vec<(String, String, u32)> {
        self.running.iter().map(|r| (r.endpoint.context.to_owned(), r.endpoint.addr.clone(), r.child.id())).collect()
    }

    /// SIGTERM to every process (each drains and commits what it handled),
    /// then waits for each to exit; fails if one did not exit cleanly.
    pub async fn stop(mut self) -> Result<()> {
        for r in &self.running {
            // `kill` from procps: std offers only SIGKILL, and a service
            // stopped that way would redeliver on its next start.
            let _ = Command::new("kill").args(["-TERM", &r.child.id().to_string()]).status();
        }
        let mut failed = Vec::new();
        for mut r in std::mem::take(&mut self.running) {
            let deadline = tokio::time::Instant::now() + EXIT_WITHIN;
            let status = loop {
                match r.child.try_wait().map_err(io(&r.log))? {
                    Some(status) => break Some(status),
                    None if tokio::time::Instant::now() >= deadline => break None,
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            match status {
                Some(s) if s.success() => {}
                Some(s) => failed.push(format!("{} exited with {s} (log: {})", r.endpoint.context, r.log.display())),
                None => {
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    failed.push(format!("{} did not exit within {} s", r.endpoint.context, EXIT_WITHIN.as_secs()));
                }
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(Error::Usage(failed.join("; "))) }
    }
}

impl Drop for Services {
    /// A demo that failed half-way leaves no process behind.
    fn drop(&mut self) {
        for r in &mut self.running {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// A free port on the loopback (the service binds it right after).
fn free_addr() -> Result<String> {
    let here = Path::new("127.0.0.1:0");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io(here))?;
    let addr = listener.local_addr().map_err(io(here))?;
    Ok(addr.to_string())
}
