//! `platform serve`: each context as a Kafka-connected service with an
//! HTTP API. One process serves the contexts it is given, on one bus (the
//! in-process bus when nothing else shares it), with each context's
//! consumers and outbox relay running beside the API.
//!
//! Shutdown on SIGTERM or Ctrl-C: the listener stops taking connections,
//! requests in flight finish (every acknowledged command is stored
//! already), the consumers stop between batches, the producer is flushed
//! and the consumer groups commit and leave; the process exits 0.

pub mod accounts_api;
pub mod config;
pub mod exposition;
pub mod http;
pub mod lake_api;
pub mod metrics;
pub mod ops;
pub mod orders_api;
pub mod refine;
pub mod registry_api;
pub mod ts_api;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use accounts::{AccountSagas, Accounts, SagaConfig};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use domain_core::bus::{EventBus, InProcessBus, topics};
use event_store::{EmbeddedEventStore, EventStore, PostgresEventStore};
use orders::{
    EventSourcedOrders, PaymentOutcomeHandler, PostgresGenerations, ReadModel, RedbGenerations, ServingReadModel,
};
use tokio::sync::watch;

use self::config::{FileConfig, Flags, ServeConfig, ServiceName};
use crate::commerce::{ACCOUNTS_GROUP, ORDERS_GROUP};
use crate::error::{Error, Result, io};
use crate::node::{BusChoice, Node};
use crate::outln;

/// `platform serve` on the command line.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = env_help())]
pub struct ServeArgs {
    /// Contexts to serve: orders, accounts, registry, lake, timeseries, or all.
    #[arg(value_enum, value_name = "CONTEXT")]
    pub contexts: Vec<ServiceName>,
    /// Listen address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Apache Kafka brokers (host:port,...); without it (and without
    /// KAFKA_BOOTSTRAP), the in-process bus.
    #[arg(long, value_name = "ADDR")]
    pub kafka: Option<String>,
    /// YAML config file (flags and environment variables override it).
    #[arg(long, env = "PLATFORM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// In front of every topic and consumer group name.
    #[arg(long, value_name = "PREFIX")]
    pub topic_prefix: Option<String>,
    /// The lake: a directory or s3://bucket/path [default: DIR/lake].
    #[arg(long, value_name = "LOCATION")]
    pub lake: Option<String>,
}

fn env_help() -> String {
    let mut s = String::from(
        "Settings come from flags, then environment variables, then the config file, then defaults.\n\nEnvironment:\n",
    );
    for (k, v) in config::ENV {
        s.push_str(&format!("  {k:<26} {v}\n"));
    }
    s
}

/// The contexts' handles the HTTP layer and the probes use.
#[derive(Debug, Default)]
pub struct Contexts {
    pub orders: Option<Arc<orders_api::OrdersApi>>,
    pub accounts: Option<Arc<accounts_api::AccountsApi>>,
    pub registry: Option<Arc<registry_api::RegistryApi>>,
    pub lake: Option<Arc<lake_api::LakeApi>>,
    pub timeseries: Option<Arc<ts_api::TsApi>>,
}

/// Resolves the settings: `data` is `Some` when `--data` was given.
pub fn resolve(args: &ServeArgs, data: Option<PathBuf>) -> Result<ServeConfig> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let flags = Flags {
        contexts: args.contexts.clone(),
        http: args.http.clone(),
        data,
        kafka: args.kafka.clone(),
        topic_prefix: args.topic_prefix.clone(),
        lake: args.lake.clone(),
    };
    ServeConfig::resolve(flags, &|k| std::env::var(k).ok(), file)
}

fn connect_bus(config: &ServeConfig) -> Result<(Arc<dyn EventBus>, BusChoice)> {
    match &config.kafka {
        None => Ok((Arc::new(InProcessBus::new()), BusChoice::InProcess)),
        Some(addr) => {
            let mut kc = kafka_bus::KafkaConfig::new(addr.as_str());
            for (k, v) in config.kafka_security.properties() {
                kc = kc.set(k, &v);
            }
            Ok((Arc::new(kafka_bus::KafkaBus::connect(kc)?), BusChoice::Kafka(addr.clone())))
        }
    }
}

async fn event_store(config: &ServeConfig, context: &str) -> Result<Arc<dyn EventStore>> {
    Ok(match &config.database_url {
        Some(url) => Arc::new(PostgresEventStore::connect(url, context).await?),
        None => {
            let dir = config.data.join(context);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            Arc::new(EmbeddedEventStore::open(&dir)?)
        }
    })
}

async fn orders_repository(config: &ServeConfig) -> Result<EventSourcedOrders> {
    let store = event_store(config, "orders").await?;
    let read_model: Arc<dyn ReadModel> = match &config.database_url {
        Some(url) => {
            let generations = PostgresGenerations::connect(url, "orders_read").await?;
            Arc::new(ServingReadModel::open(Arc::new(generations)).await?)
        }
        None => Arc::new(RedbGenerations::open_serving(config.data.join("orders"))?),
    };
    Ok(EventSourcedOrders::new(store, read_model))
}

/// The account statements beside the accounts store: a schema of their
/// own on PostgreSQL, `statements.redb` in `DIR/accounts` otherwise, kept
/// as generations so `projections rebuild accounts.statement` runs while
/// they answer.
async fn statements(config: &ServeConfig, store: Arc<dyn EventStore>) -> Result<accounts::Statements> {
    let read_model: Arc<dyn accounts::StatementReadModel> = match &config.database_url {
        Some(url) => {
            let generations = accounts::PostgresStatementGenerations::connect(url, "accounts_read").await?;
            Arc::new(accounts::ServingStatements::open(Arc::new(generations)).await?)
        }
        None => Arc::new(accounts::RedbStatementGenerations::open_serving(config.data.join("accounts"))?),
    };
    Ok(accounts::Statements::new(store, read_model))
}

/// The time-series service's consumer group.
pub const TIMESERIES_GROUP: &str = "timeseries-points";

/// The business metrics the time-series service derives from the orders'
/// events (read as JSON by their wire names, not through the orders crate):
/// the amount of every order confirmed and paid, by currency.
pub fn business_metrics() -> Vec<timeseries::bus::DeriveRule> {
    let rule = |event: &str, series: &str, money: &str| timeseries::bus::DeriveRule {
        event_type: format!("orders.{event}.v1"),
        series: series.to_owned(),
        value: format!("/{money}/amount"),
        tags: [("currency".to_owned(), format!("/{money}/currency"))].into(),
        spread_by_subject: true,
    };
    vec![
        rule("OrderConfirmed", "order_confirmed_amount", "total_amount"),
        rule("OrderPaid", "order_paid_amount", "amount"),
    ]
}

/// The series a derived metric lands in (created at start; the same
/// schema again is a no-op). Events arrive as late as the bus delivers
/// them, after a restart or a replay: a day of lateness is accepted, an
/// older event is refused to the DLQ where it stays visible.
fn metric_schema(rule: &timeseries::bus::DeriveRule) -> timeseries::model::SeriesSchema {
    let tags: Vec<&str> = rule.tags.keys().map(String::as_str).collect();
    let mut schema =
        timeseries::model::SeriesSchema::new(&rule.series, &tags, "", 365, &["raw", "1min", "1hour", "1day"]);
    schema.out_of_order_secs = 86_400;
    schema
}

/// Background work beside the node: the registry's enforcers and the
/// lake's bronze ingester.
type Background = Vec<tokio::task::JoinHandle<Result<()>>>;

/// Opens every context the config names and wires it to the node.
async fn open_contexts(
    config: &ServeConfig,
    node: &mut Node,
    stop: &watch::Receiver<bool>,
) -> Result<(Contexts, Background)> {
    let mut contexts = Contexts::default();
    let mut background: Background = Vec::new();
    if config.serves(ServiceName::Orders) {
        let orders = orders_repository(config).await?;
        node.relay("orders", Arc::clone(orders.store()));
        node.consume(ORDERS_GROUP, &[topics::ACCOUNTS], PaymentOutcomeHandler::new(Arc::clone(orders.store()))).await?;
        let runner = orders.projector().runner().clone();
        let stopping = stop.clone();
        background.push(tokio::spawn(async move {
            crate::projections::follow(runner, stopping).await;
            Ok(())
        }));
        let customers = orders::customers::Customers::new(Arc::clone(orders.store()));
        contexts.orders = Some(Arc::new(orders_api::OrdersApi { orders, customers }));
        let topic = format!("{}{}", config.topic_prefix, orders::customers::ANNOUNCE_TOPIC);
        let announcement = orders::customers::announcement()?;
        background.push(spawn_announce(Arc::clone(node.bus()), topic, announcement, stop.clone()));
    }
    if config.serves(ServiceName::Accounts) {
        let accounts = Accounts::new(event_store(config, "accounts").await?);
        node.relay("accounts", Arc::clone(accounts.store()));
        let sagas =
            AccountSagas::new(accounts.clone(), SagaConfig { merchant_account_id: config.merchant_account.clone() });
        node.consume(ACCOUNTS_GROUP, &[topics::ACCOUNTS, topics::ORDERS], sagas).await?;
        let statements = statements(config, Arc::clone(accounts.store())).await?;
        let runner = statements.runner().clone();
        let stopping = stop.clone();
        background.push(tokio::spawn(async move {
            crate::projections::follow(runner, stopping).await;
            Ok(())
        }));
        contexts.accounts = Some(Arc::new(accounts_api::AccountsApi { accounts, statements }));
    }
    if config.serves(ServiceName::Registry) {
        let registry = Arc::new(
            crate::registry_cli::open_registry(
                &config.data,
                config.database_url.as_deref(),
                mesh_registry::catalogue::PostgresCatalogue::DEFAULT_SCHEMA,
            )
            .await?,
        );
        node.consume(
            mesh_registry::service::ANNOUNCEMENTS_GROUP,
            &[topics::MESH],
            mesh_registry::service::Announcements::new(Arc::clone(&registry)),
        )
        .await?;
        let enforcer_config = mesh_registry::enforcer::EnforcerConfig {
            prefix: config.topic_prefix.clone(),
            ..mesh_registry::enforcer::EnforcerConfig::default()
        };
        let enforcement =
            mesh_registry::service::Enforcement::new(Arc::clone(&registry), Arc::clone(node.bus()), enforcer_config);
        let stopped = stop.clone();
        background.push(tokio::spawn(async move {
            enforcement.run(Duration::from_secs(5), stopped).await.map_err(Error::from)
        }));
        contexts.registry = Some(Arc::new(registry_api::RegistryApi { registry }));
    }
    if config.serves(ServiceName::Lake) {
        let location = crate::lake_cli::location_of(config.lake.as_deref(), &config.data)?;
        if matches!(node.choice(), BusChoice::Kafka(_)) {
            background.push(spawn_bronze(location.clone(), Arc::clone(node.bus()), &config.topic_prefix, stop.clone()));
        }
        let refiner = Arc::new(refine::Refiner::new(location.clone(), Arc::clone(node.bus()), &config.topic_prefix));
        if config.lake_refine_secs > 0 {
            let every = Duration::from_secs(config.lake_refine_secs);
            background.push(tokio::spawn(Arc::clone(&refiner).every(every, stop.clone())));
        }
        let port = lake::port::LocalLake::new(location.clone(), config.data.join("lake").join("landing"));
        contexts.lake = Some(Arc::new(lake_api::LakeApi { lake: lake::Lake::new(location), port, refiner }));
    }
    if config.serves(ServiceName::Timeseries) {
        let dir = crate::ts::dir(&config.data);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let engine = Arc::new(timeseries::Engine::open(&dir)?);
        let rules = business_metrics();
        for rule in &rules {
            engine.create_series(metric_schema(rule))?;
        }
        let telemetry = timeseries::bus::TelemetryHandler::new(Arc::clone(&engine), rules);
        node.consume(TIMESERIES_GROUP, &[topics::TELEMETRY, topics::ORDERS], telemetry).await?;
        contexts.timeseries = Some(Arc::new(ts_api::TsApi { engine, body_limit: config.body_limit_bytes }));
    }
    Ok((contexts, background))
}

/// Bronze from every `*.events` topic, exactly once, until `stop`.
/// Publishes a data product announcement, retrying until the bus takes it
/// (the registry registers the same documents once, however often they come).
fn spawn_announce(
    bus: Arc<dyn EventBus>,
    topic: String,
    announcement: domain_core::Envelope,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<()>> {
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(200);
        loop {
            match bus.publish(&topic, std::slice::from_ref(&announcement)).await {
                Ok(()) => {
                    tracing::info!(product = %announcement.subject, %topic, "data product announced");
                    return Ok(());
                }
                Err(e) => tracing::warn!(error = %e, "announcing the data product failed; retrying"),
            }
            let mut stopped = stop.clone();
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    })
}

fn spawn_bronze(
    location: lake::LakeLocation,
    bus: Arc<dyn EventBus>,
    prefix: &str,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<()>> {
    let names: Vec<String> = topics::ALL.iter().map(|t| format!("{prefix}{t}")).collect();
    let group = format!("{prefix}{}", lake::bronze::BronzeConfig::default().group);
    tokio::spawn(async move {
        // A failure (the broker away too long, a storage error) ends one
        // run; the next resumes from the offsets the table holds, so
        // nothing is lost or doubled, and the service keeps ingesting
        // instead of serving a lake that silently stopped filling.
        let mut wait = Duration::from_secs(1);
        loop {
            match ingest_bronze(&location, &bus, &names, &group, stop.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "bronze ingestion failed; resuming from the table's offsets in {wait:?}")
                }
            }
            let mut stopped = stop.clone();
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    })
}

/// One run of the bronze ingester, until `stop` (Ok) or a failure.
async fn ingest_bronze(
    location: &lake::LakeLocation,
    bus: &Arc<dyn EventBus>,
    names: &[String],
    group: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let config = lake::bronze::BronzeConfig { group: group.to_owned(), ..lake::bronze::BronzeConfig::default() };
    let mut ingester = lake::bronze::BronzeIngester::open(location, config).await?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut sub = bus.subscribe(&ingester.group(), &refs).await?;
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let ran = ingester.run(sub.as_mut(), None, stopping).await;
    let closed = sub.close().await;
    ran?;
    closed?;
    Ok(())
}

/// The whole HTTP API of the contexts served.
pub fn app(contexts: &Contexts, ops: Arc<ops::Ops>, config: &ServeConfig) -> Router {
    let mut app = ops::router(Arc::clone(&ops));
    if let Some(c) = &contexts.orders {
        app = app.merge(orders_api::router(Arc::clone(c)));
    }
    if let Some(c) = &contexts.accounts {
        app = app.merge(accounts_api::router(Arc::clone(c)));
    }
    if let Some(c) = &contexts.registry {
        app = app.merge(registry_api::router(Arc::clone(c)));
    }
    if let Some(c) = &contexts.lake {
        app = app.merge(lake_api::router(Arc::clone(c)));
    }
    if let Some(c) = &contexts.timeseries {
        app = app.merge(ts_api::router(Arc::clone(c)));
    }
    let tokens = Arc::new(http::Tokens::new(config.tokens.clone()));
    app.route_layer(axum::middleware::from_fn_with_state(tokens, http::authorize))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&ops.metrics), http::measure))
        .fallback(http::not_found)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
}

/// Resolves when SIGTERM or Ctrl-C arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs the services until SIGTERM.
pub async fn run(args: ServeArgs, data: Option<PathBuf>) -> Result<()> {
    let config = resolve(&args, data)?;
    serve(config, shutdown_signal()).await
}

/// Runs the services of `config` until `stop` resolves, then shuts down
/// gracefully (see the module doc).
pub async fn serve(config: ServeConfig, stop: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    std::fs::create_dir_all(&config.data).map_err(io(&config.data))?;
    let (bus, choice) = connect_bus(&config)?;
    let mut node = Node::on_bus(Arc::clone(&bus), choice.clone(), &config.topic_prefix).await?;
    let (stopping, stopped) = watch::channel(false);
    let (contexts, background) = open_contexts(&config, &mut node, &stopped).await?;
    let ops = Arc::new(ops::Ops::new(Arc::clone(&bus), node.live(), &contexts, &config));
    let app = app(&contexts, Arc::clone(&ops), &config);
    let listener = tokio::net::TcpListener::bind(config.http).await.map_err(|e| {
        Error::Usage(format!("cannot listen on {}: {e} (is another service on that port?)", config.http))
    })?;
    let served: Vec<&str> = config.contexts.iter().map(|c| c.as_str()).collect();
    outln!(
        "serving {} on http://{} over the {} bus (data in {}); SIGTERM or Ctrl-C stops",
        served.join(", "),
        listener.local_addr().map_err(io(Path::new("listener")))?,
        choice.describe(),
        config.data.display()
    );

    // The node's relays and consumers run until the HTTP side has drained.
    let (node_stop, node_stopped) = tokio::sync::oneshot::channel::<()>();
    let node_task = tokio::spawn(async move {
        let result = node
            .run(async {
                let _ = node_stopped.await;
            })
            .await;
        (node, result)
    });

    let http = axum::serve(listener, app).with_graceful_shutdown(stop).await;
    tracing::info!("HTTP drained; stopping the consumers");
    let _ = node_stop.send(());
    let _ = stopping.send(true);
    let (mut node, ran) = node_task.await?;
    if choice == BusChoice::InProcess {
        // That bus ends with the process: what was relayed counts as
        // delivered only once handled, so hand it to the consumers now and
        // move the relays' checkpoints (what is left goes out next start).
        if let Err(e) = node.settle(Duration::from_secs(30)).await {
            tracing::warn!(error = %e, "not everything was handled before the stop; the next start relays it again");
        }
    }
    for task in background {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "a background task ended with an error"),
            Err(e) => tracing::warn!(error = %e, "a background task failed"),
            Ok(Ok(())) => {}
        }
    }
    bus.flush().await?;
    node.close().await?;
    http.map_err(io(Path::new("http listener")))?;
    let stats = ran?;
    outln!(
        "stopped: {} event(s) relayed, {} handled, {} dead-lettered this run",
        stats.relayed,
        stats.handled,
        stats.dead_lettered
    );
    Ok(())
}
