//! `cargo xtask bench bus`: publish throughput of kafka-bus as a ratio to raw
//! rdkafka (`FutureProducer`, same settings, same bytes, same broker, same
//! run); consume-and-commit throughput of a kafka-bus subscription (`next`
//! then `commit` per record, batched commits) as a ratio to a raw rdkafka
//! `StreamConsumer` with auto-commit reading the same records, plus the
//! `Consumer` loop (decode, no-op handler, commit) and the synchronous
//! commit-per-record mode as figures; and the in-process bus's rates.
//!
//! Usage: bench_bus --bootstrap HOST:PORT [--quick]

use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain_core::bus::{Consumer, Delivery, EventBus, Handler, InProcessBus, RetryPolicy, Subscription, TopicSpec};
use domain_core::testkit::bench::{self, median};
use domain_core::{Envelope, EventType, codec};
use futures::future::try_join_all;
use kafka_bus::{KafkaBus, KafkaConfig};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

const BATCH: usize = 1000;
const ROUNDS: usize = 5;
/// How long a consumer may wait for its next record before the bench fails.
const STALL: Duration = Duration::from_secs(30);

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

/// A consumer group no earlier run used, so each consumer reads from offset 0.
fn fresh_group(side: &str) -> String {
    format!("bench.bus.{side}.{}", uuid::Uuid::now_v7().simple())
}

/// CPU time the calling thread has run, from `/proc/thread-self/schedstat`
/// (Linux; `None` elsewhere). The consume loops run on the main thread
/// (`block_on`), so this is their own CPU, apart from librdkafka's threads.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// One consumer's measurement: wall and consuming thread's CPU time for the
/// records after the first (so joining the group is not counted).
#[derive(Clone, Copy)]
struct Timed {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Started at the first record.
#[derive(Default)]
struct Clock(Option<(Instant, Option<Duration>)>);

impl Clock {
    fn first_record(&mut self) {
        if self.0.is_none() {
            self.0 = Some((Instant::now(), thread_cpu()));
        }
    }

    fn stop(&self) -> Timed {
        let Some((start, cpu)) = self.0 else { return Timed { wall: Duration::ZERO, cpu: None } };
        Timed { wall: start.elapsed(), cpu: cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a)) }
    }
}

/// The baseline: a raw rdkafka `StreamConsumer` with the bus's consumer
/// settings but librdkafka's own offset handling (auto-store, auto-commit),
/// reading `n` records. `whole` reads what any consumer of CloudEvents in
/// binary mode must (key, every header, payload; borrowed, not copied);
/// otherwise only the payload's length is looked at, which leaves librdkafka's
/// lazily parsed headers untouched.
async fn raw_consume(config: &KafkaConfig, topic: &str, n: usize, whole: bool) -> Result<Timed, String> {
    let mut cc = config.consumer(&fresh_group("raw"));
    cc.set("enable.auto.commit", "true").set("enable.auto.offset.store", "true");
    let consumer: StreamConsumer = cc.create().map_err(|e| e.to_string())?;
    consumer.subscribe(&[topic]).map_err(|e| e.to_string())?;
    let mut bytes = 0usize;
    let mut clock = Clock::default();
    for got in 0..n {
        let m = tokio::time::timeout(STALL, consumer.recv())
            .await
            .map_err(|_| format!("raw consumer stalled at {got}/{n}"))?
            .map_err(|e| e.to_string())?;
        bytes += m.payload().map_or(0, <[u8]>::len);
        if whole {
            bytes += m.key().map_or(0, <[u8]>::len);
            for h in m.headers().iter().flat_map(|hs| hs.iter()) {
                bytes += h.key.len() + h.value.map_or(0, <[u8]>::len);
            }
        }
        drop(m);
        clock.first_record();
    }
    let timed = clock.stop();
    std::hint::black_box(bytes);
    tokio::task::spawn_blocking(move || drop(consumer)).await.map_err(|e| e.to_string())?;
    Ok(timed)
}

/// kafka-bus: `subscribe`, then `next` and `commit` per record, as the
/// `Consumer` loop drives a subscription. Timed like [`raw_consume`].
async fn bus_consume(bus: &KafkaBus, topic: &str, n: usize) -> Result<Timed, String> {
    let mut sub = bus.subscribe(&fresh_group("bus"), &[topic]).await.map_err(|e| e.to_string())?;
    let mut clock = Clock::default();
    for got in 0..n {
        let d = next_or_stall(sub.as_mut(), got, n).await?;
        sub.commit(&d).await.map_err(|e| e.to_string())?;
        drop(d);
        clock.first_record();
    }
    let timed = clock.stop();
    sub.close().await.map_err(|e| e.to_string())?;
    Ok(timed)
}

async fn next_or_stall(sub: &mut dyn Subscription, got: usize, n: usize) -> Result<Delivery, String> {
    sub.next(STALL).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("kafka-bus consumer stalled at {got}/{n}"))
}

/// A handler that does nothing: what is left is the bus and the decoding.
struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn handle(&mut self, _: &Envelope, _: &Delivery) -> domain_core::Result<()> {
        Ok(())
    }
}

/// The whole `Consumer` loop on kafka-bus: decode each record, run a no-op
/// handler, commit. Timed like [`raw_consume`].
async fn consumer_consume(bus: &KafkaBus, topic: &str, n: usize) -> Result<Timed, String> {
    let sub = bus.subscribe(&fresh_group("consumer"), &[topic]).await.map_err(|e| e.to_string())?;
    let mut consumer = Consumer::new(sub, RetryPolicy::default()).with_max_record_bytes(bus.max_record_bytes());
    let mut clock = Clock::default();
    for got in 0..n {
        match consumer.poll_once(&mut Noop, STALL).await.map_err(|e| e.to_string())? {
            Some(domain_core::bus::Outcome::Handled { .. }) => {}
            Some(other) => return Err(format!("record {got} not handled: {other:?}")),
            None => return Err(format!("Consumer stalled at {got}/{n}")),
        }
        clock.first_record();
    }
    let timed = clock.stop();
    consumer.close().await.map_err(|e| e.to_string())?;
    Ok(timed)
}

/// Microseconds of the consuming thread's CPU per record, if known.
fn cpu_per_record(n: usize, t: Timed) -> Option<f64> {
    t.cpu.map(|c| c.as_secs_f64() * 1e6 / n as f64)
}

fn median_of(v: Vec<Option<f64>>) -> Option<f64> {
    let known: Vec<f64> = v.into_iter().flatten().collect();
    (!known.is_empty()).then(|| median(known))
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

    // Consuming: the same records, read by each side in a fresh group of
    // its own; rounds alternate which side reads first.
    let consume_topic = format!("bench.bus.consume.{}", uuid::Uuid::now_v7().simple());
    bus.create_topics(&[TopicSpec::new(&consume_topic, 3)]).await.map_err(|e| e.to_string())?;
    via_bus(&bus, &consume_topic, &evs).await?;
    bus.flush().await.map_err(|e| e.to_string())?;
    eprintln!(
        "consume: {n} records on 3 partitions; kafka-bus commits every {} records or {} ms",
        config.commit_every,
        config.commit_interval.as_millis()
    );
    // The first consumer of the process reads much faster than any later
    // one (up to 3x here); read once untimed so round 1 is like the others.
    raw_consume(&config, &consume_topic, n, true).await?;
    let timed = n - 1; // each side's clock starts at its first record
    let (mut raw_c, mut bus_c, mut c_ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut payload_c, mut loop_c) = (Vec::new(), Vec::new());
    let (mut raw_cpu, mut bus_cpu, mut loop_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let (r, b) = if round % 2 == 1 {
            let r = raw_consume(&config, &consume_topic, n, true).await?;
            (r, bus_consume(&bus, &consume_topic, n).await?)
        } else {
            let b = bus_consume(&bus, &consume_topic, n).await?;
            (raw_consume(&config, &consume_topic, n, true).await?, b)
        };
        let l = consumer_consume(&bus, &consume_topic, n).await?;
        let p = rate(timed, raw_consume(&config, &consume_topic, n, false).await?.wall);
        let (rr, br, lr) = (rate(timed, r.wall), rate(timed, b.wall), rate(timed, l.wall));
        let us = |t| cpu_per_record(timed, t).map_or("?".to_owned(), |c| format!("{c:.2}"));
        eprintln!(
            "  round {round}: raw rdkafka {rr:>9.0} rec/s ({} us CPU/rec)   kafka-bus next+commit {br:>9.0} rec/s ({} us)   \
             ratio {:.3}   Consumer loop {lr:>9.0} rec/s ({} us)   raw, payload length only {p:>9.0} rec/s",
            us(r),
            us(b),
            br / rr,
            us(l)
        );
        raw_c.push(rr);
        bus_c.push(br);
        c_ratios.push(br / rr);
        loop_c.push(lr);
        payload_c.push(p);
        raw_cpu.push(cpu_per_record(timed, r));
        bus_cpu.push(cpu_per_record(timed, b));
        loop_cpu.push(cpu_per_record(timed, l));
    }
    let (raw_consume_rate, bus_consume_rate, consume_ratio) = (median(raw_c), median(bus_c), median(c_ratios));
    let (loop_rate, payload_only_rate) = (median(loop_c), median(payload_c));
    let (raw_cpu, bus_cpu, loop_cpu) = (median_of(raw_cpu), median_of(bus_cpu), median_of(loop_cpu));
    // One synchronous commit per record (`commit_every: 1`), the old
    // behaviour: a round trip each, so only a slice of the records.
    let sync_n = if a.quick { 1_000 } else { 5_000 };
    let sync_bus = KafkaBus::connect(KafkaConfig { commit_every: 1, ..config.clone() }).map_err(|e| e.to_string())?;
    let sync_rate = rate(sync_n - 1, bus_consume(&sync_bus, &consume_topic, sync_n).await?.wall);
    eprintln!("  commit_every 1 (synchronous): {sync_rate:.0} rec/s over {sync_n} records");

    let mem = InProcessBus::new();
    mem.create_topics(&[TopicSpec::new("bench.events", 3)]).await.map_err(|e| e.to_string())?;
    let mem_publish = rate(n, via_bus(&mem, "bench.events", &evs).await?);
    let mem_consume = rate(n, in_process_consume(&mem, "bench.events", n).await?);

    let mut figures = vec![
        figure(
            "kafka_bus_publish",
            bus_rate,
            "events/s",
            Some("raw rdkafka FutureProducer, same settings and bytes"),
            Some(ratio),
            ">=0.8",
        ),
        figure("raw_rdkafka_publish", raw_rate, "events/s", None, None, "baseline"),
        figure(
            "kafka_bus_consume_commit",
            bus_consume_rate,
            "records/s",
            Some(
                "raw rdkafka StreamConsumer, auto-commit, same records and settings, reading key, headers and payload",
            ),
            Some(consume_ratio),
            ">=0.8",
        ),
        figure("raw_rdkafka_consume", raw_consume_rate, "records/s", None, None, "baseline"),
        figure("raw_rdkafka_consume_payload_length_only", payload_only_rate, "records/s", None, None, "report"),
        figure(
            "kafka_bus_consumer_loop_noop",
            loop_rate,
            "records/s",
            Some("raw rdkafka StreamConsumer (decode + no-op handler + commit on the bus side)"),
            Some(loop_rate / raw_consume_rate),
            "report",
        ),
        figure(
            "kafka_bus_consume_commit_sync",
            sync_rate,
            "records/s",
            Some("raw rdkafka StreamConsumer (commit_every 1: one synchronous commit per record)"),
            Some(sync_rate / raw_consume_rate),
            "report",
        ),
        figure("in_process_publish", mem_publish, "events/s", None, None, "report"),
        figure("in_process_consume_commit", mem_consume, "events/s", None, None, "report"),
    ];
    // CPU of the consuming thread per record: what each side costs apart
    // from waiting for records (librdkafka's own threads not included).
    for (metric, cpu) in [
        ("raw_rdkafka_consume_cpu", raw_cpu),
        ("kafka_bus_consume_commit_cpu", bus_cpu),
        ("kafka_bus_consumer_loop_noop_cpu", loop_cpu),
    ] {
        if let Some(us) = cpu {
            figures.push(figure(metric, us, "us CPU/record", None, None, "report"));
        }
    }
    print!("{}", bench::report(&figures));
    Ok(())
}
