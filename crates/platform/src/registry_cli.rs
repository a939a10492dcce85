//! `platform registry ...`: the data-mesh registry from the command line,
//! on `DIR/mesh-registry` (or a PostgreSQL catalogue with
//! `--database-url`). `lint` and `diff` read files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_registry::catalogue::{Catalogue, PostgresCatalogue, RedbCatalogue};
use mesh_registry::contract::Contract;
use mesh_registry::product::{DataProduct, PortLocation, ProductStatus};
use mesh_registry::quality::Scores;
use mesh_registry::registry::{Answer, Document, PortQuality, Registry};
use mesh_registry::search::{SearchFilter, SearchResults};
use serde_json::{Value, json};

use crate::error::{Error, Result, io};
use crate::outln;
use crate::output::{Format, table};

/// Where the catalogue is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Keep the catalogue in PostgreSQL instead of DIR/mesh-registry (so
    /// several registry instances share it).
    #[arg(long, env = "REGISTRY_DATABASE_URL", value_name = "URL", global = true)]
    pub database_url: Option<String>,
    /// The PostgreSQL schema of the catalogue.
    #[arg(long, default_value = PostgresCatalogue::DEFAULT_SCHEMA, global = true)]
    pub schema: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Every registered product: id, name, domain, owner, version, status, quality.
    Products,
    /// One product: its ports, contracts, SLA, endpoints and quality.
    Show { id: String },
    /// Ranked full-text search over names, descriptions, tags, fields and owners.
    Search {
        query: String,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// draft, active, deprecated or retired (retired ones show only when asked for).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Run a product's named query: `query customer_data_v1 get_customer_by_id customer_id=cust_001`.
    Query {
        id: String,
        endpoint: String,
        /// KEY=VALUE parameters.
        params: Vec<String>,
    },
    /// Check a contract or product file (YAML) without registering it.
    Lint { file: PathBuf },
    /// The changes from one contract file to another, which of them break
    /// consumers, and whether the version bump allows them.
    Diff { old: PathBuf, new: PathBuf },
    /// Register the contracts and products of a YAML file (documents
    /// separated by `---`): all of them, or none.
    Register { file: PathBuf },
    /// A contract as ODCS YAML (the highest version unless --version).
    Export {
        id: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// A product's quality as measured on its ports.
    Quality { id: String },
}

async fn open(data: &Path, store: &StoreArgs) -> Result<Registry> {
    open_registry(data, store.database_url.as_deref(), &store.schema).await
}

/// The registry on PostgreSQL when a URL is given, else in `DIR/mesh-registry`.
pub async fn open_registry(data: &Path, database_url: Option<&str>, schema: &str) -> Result<Registry> {
    let catalogue: Arc<dyn Catalogue> = match database_url {
        Some(url) => Arc::new(PostgresCatalogue::connect(url, schema).await?),
        None => Arc::new(RedbCatalogue::open(data.join("mesh-registry"))?),
    };
    Ok(Registry::open(catalogue).await?)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io(path))
}

fn name(path: &Path) -> String {
    path.display().to_string()
}

/// Runs one registry command.
pub async fn run(command: RegistryCommand, store: &StoreArgs, data: &Path, format: Format) -> Result<()> {
    match command {
        RegistryCommand::Lint { file } => lint(&file, format),
        RegistryCommand::Diff { old, new } => diff(&old, &new, format),
        command => {
            let registry = open(data, store).await?;
            match command {
                RegistryCommand::Products => products(&registry, format).await,
                RegistryCommand::Show { id } => show(&registry, &id, format).await,
                RegistryCommand::Search { query, domain, tag, owner, status, limit } => {
                    if let Some(s) = &status {
                        s.parse::<ProductStatus>()?;
                    }
                    let filter = SearchFilter { domain, owner, tag, status };
                    search(&registry, &query, &filter, limit, format)
                }
                RegistryCommand::Query { id, endpoint, params } => {
                    query(&registry, &id, &endpoint, &params, format).await
                }
                RegistryCommand::Register { file } => register(&registry, &file, format).await,
                RegistryCommand::Export { id, version } => {
                    outln!("{}", registry.export(&id, version.as_deref()).await?.trim_end());
                    Ok(())
                }
                RegistryCommand::Quality { id } => quality(&registry, &id, format).await,
                RegistryCommand::Lint { .. } | RegistryCommand::Diff { .. } => Ok(()),
            }
        }
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

/// Every product with its measured quality (the CLI's `products` and the
/// service's `GET /registry/products`).
pub async fn products_with_quality(registry: &Registry) -> Result<Vec<(DataProduct, Option<f64>)>> {
    let mut rows = Vec::new();
    for p in registry.products().await? {
        let quality = overall(&registry.quality(&p.id).await?);
        rows.push((p, quality));
    }
    Ok(rows)
}

/// One row of the product list as JSON.
pub fn product_row_json(p: &DataProduct, quality: Option<f64>) -> Value {
    json!({"id": p.id, "name": p.name, "domain": p.domain, "owner": p.owner, "version": p.version, "status": p.status, "quality": quality})
}

async fn products(registry: &Registry, format: Format) -> Result<()> {
    let rows = products_with_quality(registry).await?;
    match format {
        Format::Json => {
            let j: Vec<Value> = rows.iter().map(|(p, q)| product_row_json(p, *q)).collect();
            outln!("{}", serde_json::to_string_pretty(&j)?);
        }
        Format::Table | Format::Csv => {
            if rows.is_empty() {
                outln!(
                    "no products registered yet: `platform registry register FILE` registers a contract and product file"
                );
                return Ok(());
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|(p, q)| {
                    vec![
                        p.id.clone(),
                        p.name.clone(),
                        p.domain.clone(),
                        p.owner.clone(),
                        p.version.clone(),
                        p.status.to_string(),
                        pct(*q),
                    ]
                })
                .collect();
            outln!("{}", table(&["id", "name", "domain", "owner", "version", "status", "quality"], &cells));
        }
    }
    Ok(())
}

fn overall(ports: &[PortQuality]) -> Option<f64> {
    let xs: Vec<f64> = ports.iter().filter_map(|p| p.measurement.as_ref()?.totals.overall()).collect();
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn location(l: &PortLocation) -> String {
    match l {
        PortLocation::Kafka { topic, event_types, .. } if event_types.is_empty() => format!("kafka {topic}"),
        PortLocation::Kafka { topic, event_types, .. } => format!("kafka {topic} ({})", event_types.join(", ")),
        PortLocation::Lake { table } => format!("lake {table}"),
        PortLocation::Timeseries { series } => format!("timeseries {series}"),
    }
}

async fn show(registry: &Registry, id: &str, format: Format) -> Result<()> {
    let p = registry.product(id).await?;
    let quality = registry.quality(id).await?;
    if format == Format::Json {
        let j = json!({ "product": p, "endpoints": p.endpoints(), "quality": quality });
        outln!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    print_product(&p);
    outln!();
    let ports: Vec<Vec<String>> = p
        .output_ports
        .iter()
        .map(|o| vec!["out".into(), o.name.clone(), location(&o.location), o.contract.to_string()])
        .chain(p.input_ports.iter().map(|i| {
            vec![
                "in".into(),
                i.name.clone(),
                i.location.as_ref().map(location).unwrap_or_default(),
                i.contract.to_string(),
            ]
        }))
        .collect();
    outln!("{}", table(&["port", "name", "location", "contract"], &ports));
    outln!();
    print_quality(&quality);
    Ok(())
}

fn print_product(p: &DataProduct) {
    let sla = serde_json::to_value(&p.sla).unwrap_or(Value::Null);
    let rows = vec![
        vec!["id".into(), p.id.clone()],
        vec!["name".into(), p.name.clone()],
        vec!["description".into(), p.description.clone()],
        vec!["domain".into(), p.domain.clone()],
        vec!["owner".into(), p.owner.clone()],
        vec!["version".into(), p.version.clone()],
        vec!["status".into(), p.status.to_string()],
        vec!["tags".into(), p.tags.join(", ")],
        vec!["sla".into(), sla.to_string()],
        vec!["endpoints".into(), p.endpoints().join(", ")],
        vec!["dependencies".into(), p.dependencies.join(", ")],
    ];
    outln!("{}", table(&["field", "value"], &rows));
}

fn score_row(label: &str, s: &Scores) -> Vec<String> {
    vec![
        label.to_owned(),
        s.records.to_string(),
        s.invalid.to_string(),
        pct(s.completeness),
        pct(s.accuracy),
        pct(s.timeliness),
        pct(s.consistency),
    ]
}

fn print_quality(quality: &[PortQuality]) {
    let mut rows = Vec::new();
    for q in quality {
        match &q.measurement {
            Some(m) => {
                rows.push(score_row(&format!("{} (all)", q.port), &m.totals));
                rows.push(score_row(&format!("{} (last {} s)", q.port, m.window_seconds), &m.window));
            }
            None => {
                rows.push(vec![q.port.clone(), "0".into(), "0".into(), "-".into(), "-".into(), "-".into(), "-".into()])
            }
        }
    }
    if rows.is_empty() {
        outln!("no Kafka output ports: nothing is measured on the bus");
        return;
    }
    outln!(
        "{}",
        table(&["port", "records", "invalid", "completeness", "accuracy", "timeliness", "consistency"], &rows)
    );
    let rules: Vec<Vec<String>> = quality
        .iter()
        .filter_map(|q| q.measurement.as_ref())
        .flat_map(|m| m.rules.iter())
        .map(|r| {
            vec![
                r.name.clone(),
                r.metric.clone(),
                format!("{} {}", r.value, r.unit),
                if r.passed { "pass" } else { "FAIL" }.into(),
            ]
        })
        .collect();
    if !rules.is_empty() {
        outln!();
        outln!("{}", table(&["rule", "metric", "value", "verdict"], &rules));
    }
}

async fn quality(registry: &Registry, id: &str, format: Format) -> Result<()> {
    let quality = registry.quality(id).await?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&quality)?),
        Format::Table | Format::Csv => print_quality(&quality),
    }
    Ok(())
}

/// Search results as JSON: hits with scores, and facet counts.
pub fn search_json(query: &str, results: &SearchResults) -> Value {
    let counts = |c: &[(String, u64)]| c.iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>();
    json!({
        "query": query,
        "total": results.total,
        "partial": results.partial,
        "hits": results.hits.iter().map(|h| json!({"id": h.id, "name": h.name, "score": h.score})).collect::<Vec<_>>(),
        "facets": {
            "domain": counts(&results.facets.domain),
            "owner": counts(&results.facets.owner),
            "tag": counts(&results.facets.tag),
            "status": counts(&results.facets.status),
        },
    })
}

fn search(registry: &Registry, query: &str, filter: &SearchFilter, limit: usize, format: Format) -> Result<()> {
    let results = registry.search(query, filter, limit)?;
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&search_json(query, &results))?);
        return Ok(());
    }
    if results.hits.is_empty() {
        outln!("no product matches `{query}`; `platform registry products` lists them all");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = results
        .hits
        .iter()
        .enumerate()
        .map(|(i, h)| vec![(i + 1).to_string(), h.id.clone(), h.name.clone(), format!("{:.3}", h.score)])
        .collect();
    outln!("{}", table(&["#", "id", "name", "score"], &rows));
    if results.partial {
        outln!("{} match(es) with some of the words (none has all of them)", results.total);
    } else {
        outln!("{} match(es)", results.total);
    }
    let facets = [
        ("domain", &results.facets.domain),
        ("owner", &results.facets.owner),
        ("tag", &results.facets.tag),
        ("status", &results.facets.status),
    ];
    for (label, counts) in facets {
        if !counts.is_empty() {
            let shown: Vec<String> = counts.iter().take(8).map(|(v, n)| format!("{v} ({n})")).collect();
            outln!("{label}: {}", shown.join(", "));
        }
    }
    Ok(())
}

async fn query(registry: &Registry, id: &str, endpoint: &str, params: &[String], format: Format) -> Result<()> {
    let mut parsed: BTreeMap<String, String> = BTreeMap::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Error::Usage(format!("parameter `{p}` is not KEY=VALUE (for example customer_id=cust_001)")));
        };
        parsed.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let answer = registry.query(id, endpoint, &parsed).await?;
    let records = match &answer {
        Answer::One(v) => vec![v.clone()],
        Answer::Many(vs) => vs.clone(),
    };
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let mut headers: Vec<String> = Vec::new();
    for r in &records {
        if let Some(o) = r.as_object() {
            for k in o.keys() {
                if !headers.contains(k) {
                    headers.push(k.clone());
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            headers
                .iter()
                .map(|h| r.get(h).map_or_else(String::new, |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect()
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    outln!("{}", table(&headers, &rows));
    Ok(())
}

async fn register(registry: &Registry, file: &Path, format: Format) -> Result<()> {
    let done = registry.register_text(&name(file), &read(file)?).await?;
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    for c in &done.contracts {
        match &c.previous {
            None => outln!("registered contract {}@{}", c.id, c.version),
            Some(prev) => {
                outln!("registered contract {}@{} ({} change(s) since {prev})", c.id, c.version, c.changes.len())
            }
        }
    }
    for p in &done.products {
        outln!("registered product {p}");
    }
    for u in &done.unchanged {
        outln!("unchanged: {u} is already registered exactly so");
    }
    Ok(())
}

fn lint(file: &Path, format: Format) -> Result<()> {
    let text = read(file)?;
    let documents = Registry::parse(&name(file), &text)?;
    let mut problems: Vec<(String, String)> = Vec::new();
    for d in &documents {
        match d {
            // `parse` already refused what the model or the first lint
            // problem refuses; list every problem.
            Document::Contract(c) => problems.extend(c.lint().into_iter().map(|p| (p.path.clone(), p.message.clone()))),
            Document::Product(_) => {}
        }
    }
    if format == Format::Json {
        let j: Vec<Value> = problems.iter().map(|(p, m)| json!({"path": p, "problem": m})).collect();
        outln!("{}", serde_json::to_string_pretty(&json!({"documents": documents.len(), "problems": j}))?);
    } else if problems.is_empty() {
        outln!("{}: {} document(s), no problems", name(file), documents.len());
    } else {
        let rows: Vec<Vec<String>> = problems.iter().map(|(p, m)| vec![p.clone(), m.clone()]).collect();
        outln!("{}", table(&["path", "problem"], &rows));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Usage(format!("{}: {} problem(s)", name(file), problems.len())))
    }
}

fn contract_file(path: &Path) -> Result<Contract> {
    Ok(Contract::from_yaml(&name(path), &read(path)?)?)
}

/// The changes from contract `a` to `b` as JSON, with whether the version
/// bump allows them.
pub fn diff_json(a: &Contract, b: &Contract) -> Value {
    let changes = mesh_registry::diff::diff(a, b);
    let breaking = changes.iter().filter(|c| c.breaking).count();
    json!({
        "contract": b.id, "from": a.version, "to": b.version,
        "changes": changes, "breaking": breaking, "allowed": mesh_registry::diff::gate(a, b).is_ok(),
    })
}

fn diff(old: &Path, new: &Path, format: Format) -> Result<()> {
    let (a, b) = (contract_file(old)?, contract_file(new)?);
    let changes = mesh_registry::diff::diff(&a, &b);
    let verdict = mesh_registry::diff::gate(&a, &b);
    let breaking = changes.iter().filter(|c| c.breaking).count();
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&diff_json(&a, &b))?);
    } else {
        if changes.is_empty() {
            outln!("no changes from {} to {}", a.version, b.version);
        } else {
            let rows: Vec<Vec<String>> = changes
                .iter()
                .map(|c| {
                    vec![if c.breaking { "BREAKING" } else { "compatible" }.into(), c.path.clone(), c.detail.clone()]
                })
                .collect();
            outln!("{}", table(&["kind", "path", "change"], &rows));
        }
        match &verdict {
            Ok(_) => outln!("{} -> {}: allowed ({breaking} breaking change(s))", a.version, b.version),
            Err(_) => outln!(
                "{} -> {}: refused: {breaking} breaking change(s) need a major version bump",
                a.version,
                b.version
            ),
        }
    }
    match verdict {
        Ok(_) => Ok(()),
        Err(_) => {
            Err(Error::Usage(format!("{} -> {} breaks consumers without a major version bump", a.version, b.version)))
        }
    }
}
