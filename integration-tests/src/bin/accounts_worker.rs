//! The accounts context as a process of its own, for the saga crash test:
//! its event store (embedded in a directory, or a PostgreSQL schema), the
//! outbox relay to `<prefix>accounts.events` and the accounts saga consumer
//! on `<prefix>accounts.events` and `<prefix>orders.events`, run by one
//! [`Node`] until stdin is closed or Ctrl-C (then it leaves its group and
//! exits), or until it is killed.
//!
//! It prints, one line each:
//! - `d <topic> <partition> <offset> <event-id> <event-type> .` for each
//!   record the saga consumer receives;
//! - `c <topic> <partition> <offset> .` for each commit it made (with
//!   batched commits: stored, committed to the broker a little later);
//! - `x <topic> <partition> <offset> <error> .` for a record dead-lettered;
//! - `ok <outcomes> <captured> <head> .` whenever the number of payment
//!   outcomes (`PaymentCaptured` + `PaymentRejected`) in the store grew,
//!   with the captured ones and the store's head position;
//! - `done <handled> <dead-lettered> <relayed> .` after a clean stop;
//! - `warn <what> .` when the store could not be read for the report.
//!
//! Usage: accounts-worker --bootstrap ADDR --prefix PREFIX
//!        (--data DIR | --database-url URL --schema SCHEMA)

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use accounts::{AccountSagas, Accounts, SagaConfig};
use domain_core::Envelope;
use domain_core::bus::{Delivery, EventBus, Record, Subscription, TopicSpec, topics};
use event_store::{EmbeddedEventStore, EventStore, PostgresEventStore};
use kafka_bus::{KafkaBus, KafkaConfig};
use platform::commerce::ACCOUNTS_GROUP;
use platform::node::{BusChoice, Node};

const USAGE: &str =
    "usage: accounts-worker --bootstrap ADDR --prefix PREFIX (--data DIR | --database-url URL --schema SCHEMA)";

enum Storage {
    Embedded(PathBuf),
    Postgres { url: String, schema: String },
}

struct Args {
    bootstrap: String,
    prefix: String,
    storage: Storage,
}

fn parse_args() -> Result<Args, String> {
    let mut bootstrap = None;
    let mut prefix = None;
    let mut data = None;
    let mut url = None;
    let mut schema = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--bootstrap" => &mut bootstrap,
            "--prefix" => &mut prefix,
            "--data" => &mut data,
            "--database-url" => &mut url,
            "--schema" => &mut schema,
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        };
        *slot = Some(args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?);
    }
    let storage = match (data, url, schema) {
        (Some(dir), None, None) => Storage::Embedded(PathBuf::from(dir)),
        (None, Some(url), Some(schema)) => Storage::Postgres { url, schema },
        _ => return Err(USAGE.to_owned()),
    };
    Ok(Args { bootstrap: bootstrap.ok_or(USAGE)?, prefix: prefix.ok_or(USAGE)?, storage })
}

/// Writes one line to stdout; a reader that went away is not our problem
/// (stdin closes too, and the worker stops).
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush());
}

/// A boxed future, as `async_trait` writes the bus ports' methods (this
/// crate does not depend on that macro for two wrappers).
type Fut<'a, T> = Pin<Box<dyn Future<Output = domain_core::Result<T>> + Send + 'a>>;

/// The Kafka bus, reporting what its subscriptions receive and commit.
#[derive(Debug)]
struct TracingBus(KafkaBus);

impl EventBus for TracingBus {
    fn create_topics<'a, 'b, 'async_trait>(&'a self, topics: &'b [TopicSpec]) -> Fut<'async_trait, ()>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        self.0.create_topics(topics)
    }

    fn publish_records<'a, 'b, 'async_trait>(&'a self, topic: &'b str, records: Vec<Record>) -> Fut<'async_trait, ()>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        self.0.publish_records(topic, records)
    }

    fn publish<'a, 'b, 'c, 'async_trait>(&'a self, topic: &'b str, events: &'c [Envelope]) -> Fut<'async_trait, ()>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        self.0.publish(topic, events)
    }

    fn subscribe<'a, 'b, 'c, 'd, 'async_trait>(
        &'a self,
        group: &'b str,
        topics: &'c [&'d str],
    ) -> Fut<'async_trait, Box<dyn Subscription>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        'd: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let inner = self.0.subscribe(group, topics).await?;
            Ok(Box::new(Traced(inner)) as Box<dyn Subscription>)
        })
    }

    fn max_record_bytes(&self) -> usize {
        self.0.max_record_bytes()
    }
}

/// A subscription that prints `d` for each record it hands out and `c`
/// for each commit that returned.
#[derive(Debug)]
struct Traced(Box<dyn Subscription>);

fn header<'d>(d: &'d Delivery, name: &str) -> &'d str {
    d.record.header(name).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("-")
}

impl Subscription for Traced {
    fn next<'a, 'async_trait>(&'a mut self, timeout: Duration) -> Fut<'async_trait, Option<Delivery>>
    where
        'a: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let got = self.0.next(timeout).await?;
            if let Some(d) = &got {
                let (id, ty) = (header(d, "ce_id"), header(d, "ce_type"));
                say(format_args!("d {} {} {} {id} {ty} .", d.topic, d.partition, d.offset));
            }
            Ok(got)
        })
    }

    fn commit<'a, 'b, 'async_trait>(&'a mut self, delivery: &'b Delivery) -> Fut<'async_trait, ()>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.0.commit(delivery).await?;
            say(format_args!("c {} {} {} .", delivery.topic, delivery.partition, delivery.offset));
            Ok(())
        })
    }

    fn dead_letter<'a, 'b, 'c, 'async_trait>(
        &'a mut self,
        delivery: &'b Delivery,
        error: &'c domain_core::Error,
    ) -> Fut<'async_trait, ()>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        say(format_args!("x {} {} {} {error} .", delivery.topic, delivery.partition, delivery.offset));
        self.0.dead_letter(delivery, error)
    }

    fn close<'async_trait>(self: Box<Self>) -> Fut<'async_trait, ()>
    where
        Self: 'async_trait,
    {
        self.0.close()
    }
}

/// Follows the store's log and reports the payment outcomes in it.
async fn report_outcomes(store: Arc<dyn EventStore>) {
    let (mut next, mut captured, mut rejected, mut reported) = (1, 0u64, 0u64, 0u64);
    loop {
        let page = match store.read_all(next, 1024).await {
            Ok(page) => page,
            Err(e) => {
                say(format_args!("warn store {e} ."));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if let Some(last) = page.last() {
            next = last.position + 1;
        }
        for e in &page {
            match e.envelope.event_type.name() {
                "PaymentCaptured" => captured += 1,
                "PaymentRejected" => rejected += 1,
                _ => {}
            }
        }
        if captured + rejected > reported {
            reported = captured + rejected;
            say(format_args!("ok {reported} {captured} {} .", next - 1));
        }
        if page.is_empty() {
            // Short: a store whose notifications lag is polled instead.
            let _ = store.wait_for(next, Duration::from_millis(10)).await;
        }
    }
}

/// Resolves when stdin reaches its end (the test closed it or died) or on
/// Ctrl-C. Stdin is read on a thread of its own, so a pending read never
/// holds the runtime up.
async fn stopped() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = tx.send(());
    });
    tokio::select! {
        _ = rx => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let store: Arc<dyn EventStore> = match &args.storage {
        Storage::Embedded(dir) => Arc::new(EmbeddedEventStore::open(dir).map_err(|e| e.to_string())?),
        Storage::Postgres { url, schema } => {
            Arc::new(PostgresEventStore::connect(url, schema).await.map_err(|e| e.to_string())?)
        }
    };
    let mut config = KafkaConfig::new(args.bootstrap.as_str());
    // Kafka's minimum: a restarted worker gets the partitions of the killed
    // one as soon as the broker may drop it.
    config.session_timeout = Duration::from_secs(6);
    let bus = Arc::new(TracingBus(KafkaBus::connect(config).map_err(|e| e.to_string())?));
    let mut node =
        Node::on_bus(bus, BusChoice::Kafka(args.bootstrap.clone()), &args.prefix).await.map_err(|e| e.to_string())?;
    node.relay("accounts", Arc::clone(&store));
    let sagas = AccountSagas::new(Accounts::new(Arc::clone(&store)), SagaConfig::default());
    node.consume(ACCOUNTS_GROUP, &[topics::ACCOUNTS, topics::ORDERS], sagas).await.map_err(|e| e.to_string())?;
    let reporter = tokio::spawn(report_outcomes(Arc::clone(&store)));
    let result = node.run(stopped()).await;
    reporter.abort();
    let stats = result.map_err(|e| e.to_string())?;
    let dead_lettered = node.consumer_stats().get(ACCOUNTS_GROUP).map_or(0, |s| s.dead_lettered);
    node.close().await.map_err(|e| e.to_string())?;
    say(format_args!("done {} {dead_lettered} {} .", stats.handled, stats.relayed));
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    serve(parse_args()?).await
}
