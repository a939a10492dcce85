//! `cargo xtask bench bus`: publish throughput of kafka-bus as a ratio to raw
//! rdkafka (`FutureProducer`, same settings, same bytes, same broker, same
//! run), and the in-process bus's publish and consume rates.
//!
//! Usage: bench_bus --bootstrap HOST:PORT [--quick]

use std::time::{Duration, Instant};

use domain_core::bus::{EventBus, InProcessBus, TopicSpec};
use domain_core::testkit::bench::{self, median};
use domain_core::{Envelope, EventType, codec};
use futures::future::try_join_all;
use kafka_bus::{KafkaBus, KafkaConfig};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

const BATCH: usize = 1000;
const ROUNDS: usize = 5;

struct Args {
    bootstrap: String,
    quick: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args { bootstrap: std::env::var("KAFKA_BOOTSTRAP").unwrap_or_default(), quick: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bootstrap" => a.bootstrap = it.next().ok_or("--bootstrap needs HOST:PORT")?,
            "--quick" => a.quick = true,
            "--bench" => {}
            other => {
                return Err(format!("unknown argument {other}; usage: bench_bus --bootstrap HOST:PORT [--quick]"));
            }
        }
    }
    if a.bootstrap.is_empty() {
        return Err("no broker: pass --bootstrap or set KAFKA_BOOTSTRAP (cargo xtask bench bus does)".into());
    }
    Ok(a)
}

/// Events with ~256-byte payloads over 100 aggregates (fixed content).
fn events(n: usize) -> Vec<Envelope> {
    let ty: EventType = "orders.OrderItemAdded.v1".parse().unwrap_or_else(|e| panic!("{e}"));
    (0..n)
        .map(|i| {
            let data = json!({ "product_id": format!("product_{:03}", i % 500), "quantity": i % 7 + 1,
                "unit_price": "99.99", "note": "x".repeat(180) });
            Envelope::raw("orders", ty.clone(), format!("order_{:05}", i % 100), (i / 100 + 1) as u64, data)
        })
        .collect()
}

async fn raw_rdkafka(producer: &FutureProducer, topic: &str, evs: &[Envelope]) -> Result<Duration, String> {
    // The same bytes kafka-bus would send, prepared outside the timed part
    // only for the key/value; headers are built inside, as the bus does.
    let records: Vec<_> = evs.iter().map(codec::encode).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let start = Instant::now();
    for chunk in records.chunks(BATCH) {
        let mut pending = Vec::with_capacity(chunk.len());
        for r in chunk {
            let mut hs = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                hs = hs.insert(Header { key: k, value: Some(v) });
            }
            let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(hs);
            if let Some(k) = &r.key {
                fr = fr.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                fr = fr.payload(v.as_slice());
            }
            pending.push(producer.send_result(fr).map_err(|(e, _)| e.to_string())?);
        }
        try_join_all(pending.into_iter().map(|f| async move {
            match f.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(_) => Err("canceled".to_owned()),
            }
        }))
        .await?;
    }
    Ok(start.elapsed())
}

async fn via_bus(bus: &dyn EventBus, topic: &str, evs: &[Envelope]) -> Result<Duration, String> {
    let start = Instant::now();
    for chunk in evs.chunks(BATCH) {
        bus.publish(topic, chunk).await.map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed())
}

async fn in_process_consume(bus: &InProcessBus, topic: &str, n: usize) -> Result<Duration, String> {
    let mut sub = bus.subscribe("bench", &[topic]).await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        match sub.next(Duration::from_secs(5)).await.map_err(|e| e.to_string())? {
            Some(d) => {
                d.envelope(bus.max_record_bytes()).map_err(|e| e.to_string())?;
                sub.commit(&d).await.map_err(|e| e.to_string())?;
                got += 1;
            }
            None => return Err(format!("in-process consumer stalled at {got}/{n}")),
        }
    }
    Ok(start.elapsed())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn figure(
    metric: &str,
    value: f64,
    unit: &str,
    baseline: Option<&str>,
    ratio: Option<f64>,
    target: &str,
) -> serde_json::Value {
    bench::figure("bus", metric, value, unit, baseline, ratio, target)
}

/// The allocator the `platform` binary ships with, so the figures are the deployed ones.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), String> {
    let a = args()?;
    let n = if a.quick { 20_000 } else { 200_000 };
    let evs = events(n);
    let payload = codec::encode(&evs[0]).map_err(|e| e.to_string())?.size();
    eprintln!(
        "bus bench: {n} events of ~{payload} bytes (key+headers+value), batches of {BATCH}, {ROUNDS} rounds, broker {}",
        a.bootstrap
    );

    let config = KafkaConfig::new(a.bootstrap.as_str());
    let bus = KafkaBus::connect(config.clone()).map_err(|e| e.to_string())?;
    let raw: FutureProducer = config.producer().create().map_err(|e| e.to_string())?;
    let topic = format!("bench.bus.{}", uuid::Uuid::now_v7().simple());
    bus.create_topics(&[TopicSpec::new(&topic, 3)]).await.map_err(|e| e.to_string())?;
    // Warm both clients (connections, metadata) before timing.
    raw_rdkafka(&raw, &topic, &evs[..BATCH]).await?;
    via_bus(&bus, &topic, &evs[..BATCH]).await?;

    // Alternate the order each round so neither side always runs on a
    // warmer broker; the ratio is the median of per-round ratios.
    let (mut raw_rates, mut bus_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (r, b) = if round % 2 == 1 {
            let r = rate(n, raw_rdkafka(&raw, &topic, &evs).await?);
            (r, rate(n, via_bus(&bus, &topic, &evs).await?))
        } else {
            let b = rate(n, via_bus(&bus, &topic, &evs).await?);
            (rate(n, raw_rdkafka(&raw, &topic, &evs).await?), b)
        };
        eprintln!("  round {round}: raw rdkafka {r:>10.0} ev/s   kafka-bus {b:>10.0} ev/s   ratio {:.3}", b / r);
        raw_rates.push(r);
        bus_rates.push(b);
        ratios.push(b / r);
    }
    let (raw_rate, bus_rate, ratio) = (median(raw_rates), median(bus_rates), median(ratios));

    let mem = InProcessBus::new();
    mem.create_topics(&[TopicSpec::new("bench.events", 3)]).await.map_err(|e| e.to_string())?;
    let mem_publish = rate(n, via_bus(&mem, "bench.events", &evs).await?);
    let mem_consume = rate(n, in_process_consume(&mem, "bench.events", n).await?);

    let figures = vec![
        figure(
            "kafka_bus_publish",
            bus_rate,
            "events/s",
            Some("raw rdkafka FutureProducer, same settings and bytes"),
            Some(ratio),
            ">=0.8",
        ),
        figure("raw_rdkafka_publish", raw_rate, "events/s", None, None, "baseline"),
        figure("in_process_publish", mem_publish, "events/s", None, None, "report"),
        figure("in_process_consume_commit", mem_consume, "events/s", None, None, "report"),
    ];
    print!("{}", bench::report(&figures));
    Ok(())
}
