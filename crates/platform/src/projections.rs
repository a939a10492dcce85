//! The projections a process runs, by name: what `platform projections`
//! works on (a data directory, or a service through `--url`) and what a
//! service's `/projections` routes and `/metrics` report.

use std::path::Path;
use std::time::Duration;

use event_store::{ProjectionRunner, ProjectionStatus, Rebuilt};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::output::{Format, table};

/// How long a follower waits before it tries again after a failure, and
/// how often it looks whether a parked projection was resumed.
const RETRY: Duration = Duration::from_secs(1);

/// The projections of the contexts a process opened.
#[derive(Debug, Clone, Default)]
pub struct Projections {
    runners: Vec<ProjectionRunner>,
}

impl Projections {
    pub fn new(runners: Vec<ProjectionRunner>) -> Self {
        Self { runners }
    }

    /// Every projection of the contexts in `data` (embedded storage).
    pub fn open_data(data: &Path) -> Result<Self> {
        crate::accounts_cli::ensure_data(data)?;
        let orders = crate::commerce::open_orders(data)?;
        let accounts = accounts::Accounts::new(crate::node::open_store(data, "accounts")?);
        let statements = crate::accounts_cli::open_statements(data, &accounts)?;
        Ok(Self::new(vec![orders.projector().runner().clone(), statements.runner().clone()]))
    }

    pub fn names(&self) -> Vec<String> {
        self.runners.iter().map(|r| r.name().to_owned()).collect()
    }

    pub fn runners(&self) -> &[ProjectionRunner] {
        &self.runners
    }

    /// The runner of `name`, or [`Error::UnknownProjection`] naming the known ones.
    pub fn get(&self, name: &str) -> Result<&ProjectionRunner> {
        self.runners
            .iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| Error::UnknownProjection { name: name.to_owned(), known: self.names().join(", ") })
    }

    /// The status of each projection, or of `name`.
    pub async fn statuses(&self, name: Option<&str>) -> Result<Vec<ProjectionStatus>> {
        let runners = match name {
            Some(n) => vec![self.get(n)?],
            None => self.runners.iter().collect(),
        };
        let mut out = Vec::with_capacity(runners.len());
        for r in runners {
            out.push(r.status().await?);
        }
        Ok(out)
    }
}

/// A status for machines (the CLI's JSON and the service's answer).
pub fn status_json(s: &ProjectionStatus) -> Value {
    json!({
        "name": s.name,
        "position": s.position,
        "head": s.head,
        "lag_events": s.lag_events,
        "lag_seconds": s.lag_seconds,
        "events_per_second": s.events_per_second,
        "last_error": s.last_error,
        "parked": s.parked.as_ref().map(|p| json!({ "position": p.position, "event_type": p.event_type, "error": p.error })),
        "rebuilding": s.rebuilding.map(|position| json!({ "position": position })),
    })
}

pub fn rebuilt_json(r: &Rebuilt) -> Value {
    json!({
        "name": r.name,
        "events": r.events,
        "position": r.position,
        "seconds": r.seconds,
        "events_per_second": r.events_per_second,
    })
}

/// Keeps `runner` following the log until `stop` turns true: after a
/// transient failure it tries again, while parked it waits for a resume
/// (or a rebuild) to clear the park.
pub async fn follow(runner: ProjectionRunner, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        if runner.parked().is_none() {
            let mut until = stop.clone();
            let stopping = async move {
                let _ = until.wait_for(|s| *s).await;
            };
            match runner.run(stopping).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(projection = runner.name(), error = %e, "projection stopped; retrying"),
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ProjectionsArgs {
    /// A running `platform serve` that holds the projections
    /// (http://127.0.0.1:8080); without it, --data is opened directly.
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token for the service (write scope for rebuild and resume).
    #[arg(long, global = true, env = "PLATFORM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProjectionsCommand {
    /// Position, head, lag (events and seconds), rate, last error, park and
    /// rebuild of every projection, or of NAME.
    Status { name: Option<String> },
    /// Rebuild NAME from position 1 into a fresh copy while the current one
    /// keeps answering, then switch over.
    Rebuild { name: String },
    /// Retry the event NAME is parked on and go on from there.
    Resume { name: String },
}

/// Runs one `platform projections` command.
pub async fn run(command: ProjectionsCommand, args: &ProjectionsArgs, data: &Path, format: Format) -> Result<()> {
    let answer = match &args.url {
        Some(url) => remote(&command, url, args.token.as_deref()).await?,
        None => local(&command, data).await?,
    };
    match (format, &command) {
        (Format::Json, _) => crate::outln!("{}", serde_json::to_string_pretty(&answer)?),
        (_, ProjectionsCommand::Status { .. }) => print_statuses(&answer),
        (_, ProjectionsCommand::Rebuild { .. }) => crate::outln!(
            "rebuilt {}: {} events in {:.2} s ({:.0} events/s), switched over at position {}",
            answer["name"].as_str().unwrap_or_default(),
            answer["events"],
            answer["seconds"].as_f64().unwrap_or_default(),
            answer["events_per_second"].as_f64().unwrap_or_default(),
            answer["position"]
        ),
        (_, ProjectionsCommand::Resume { .. }) => crate::outln!(
            "resumed {}: caught up to position {}",
            answer["name"].as_str().unwrap_or_default(),
            answer["position"]
        ),
    }
    Ok(())
}

/// On the data directory: this process opens the contexts, so a park is
/// found by catching up (status and resume catch up first).
async fn local(command: &ProjectionsCommand, data: &Path) -> Result<Value> {
    let projections = Projections::open_data(data)?;
    match command {
        ProjectionsCommand::Status { name } => {
            for runner in match name {
                Some(n) => vec![projections.get(n)?],
                None => projections.runners().iter().collect(),
            } {
                match runner.catch_up().await {
                    Ok(_) | Err(event_store::Error::ProjectionParked { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let statuses = projections.statuses(name.as_deref()).await?;
            Ok(Value::Array(statuses.iter().map(status_json).collect()))
        }
        ProjectionsCommand::Rebuild { name } => Ok(rebuilt_json(&projections.get(name)?.rebuild().await?)),
        ProjectionsCommand::Resume { name } => {
            let runner = projections.get(name)?;
            // A fresh process is parked only once its catch-up meets the event.
            match runner.catch_up().await {
                Ok(_) => return Err(event_store::Error::NotParked { name: name.clone() }.into()),
                Err(event_store::Error::ProjectionParked { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let position = runner.resume().await?;
            Ok(json!({ "name": name, "position": position }))
        }
    }
}

async fn remote(command: &ProjectionsCommand, url: &str, token: Option<&str>) -> Result<Value> {
    let addr = service_addr(url)?;
    let (method, path) = match command {
        ProjectionsCommand::Status { name: None } => ("GET", "/projections".to_owned()),
        ProjectionsCommand::Status { name: Some(n) } => ("GET", format!("/projections/{n}")),
        ProjectionsCommand::Rebuild { name } => ("POST", format!("/projections/{name}/rebuild")),
        ProjectionsCommand::Resume { name } => ("POST", format!("/projections/{name}/resume")),
    };
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let request = format!("{method} {path}");
    let reply = crate::http_client::send(&addr, method, &path, &headers, &[]).await.map_err(|source| Error::Http {
        context: "projections",
        request: request.clone(),
        source,
    })?;
    if !reply.is_success() {
        // The service's error says what happened and what to do; the raw
        // body only when it is not one.
        let body = match reply.json() {
            Ok(v) if v["error"]["message"].is_string() => match v["error"]["hint"].as_str() {
                Some(hint) => format!("{} (hint: {hint})", v["error"]["message"].as_str().unwrap_or_default()),
                None => v["error"]["message"].as_str().unwrap_or_default().to_owned(),
            },
            _ => reply.text(),
        };
        return Err(Error::Service { context: "projections", request, status: reply.status, body });
    }
    // One status comes back as an object; print it as a list of one.
    Ok(match (command, reply.json()?) {
        (ProjectionsCommand::Status { name: Some(_) }, v @ Value::Object(_)) => Value::Array(vec![v]),
        (_, v) => v,
    })
}

/// `http://host:port[/]` as `host:port`.
fn service_addr(url: &str) -> Result<String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        Error::Usage(format!("--url `{url}`: give the service's plain-HTTP address, e.g. http://127.0.0.1:8080"))
    })?;
    let addr = rest.trim_end_matches('/');
    if addr.is_empty() || addr.contains('/') {
        return Err(Error::Usage(format!("--url `{url}`: give host:port only, e.g. http://127.0.0.1:8080")));
    }
    Ok(addr.to_owned())
}

fn print_statuses(answer: &Value) {
    let rows: Vec<Vec<String>> = answer
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let state = if let Some(p) = s["parked"].as_object() {
                format!(
                    "parked at {} ({}): {}",
                    p["position"],
                    p["event_type"].as_str().unwrap_or_default(),
                    p["error"].as_str().unwrap_or_default()
                )
            } else if let Some(r) = s["rebuilding"].as_object() {
                format!("rebuilding, copy at {}", r["position"])
            } else if let Some(e) = s["last_error"].as_str() {
                format!("failing: {e}")
            } else {
                "running".to_owned()
            };
            vec![
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["position"].to_string(),
                s["head"].to_string(),
                s["lag_events"].to_string(),
                format!("{:.3}", s["lag_seconds"].as_f64().unwrap_or_default()),
                format!("{:.0}", s["events_per_second"].as_f64().unwrap_or_default()),
                state,
            ]
        })
        .collect();
    crate::outln!("{}", table(&["projection", "position", "head", "lag", "lag s", "events/s", "state"], &rows));
}
