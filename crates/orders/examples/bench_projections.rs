//! `cargo xtask bench projections`: the orders-by-customer read model.
//!
//! Writes a fixed-seed history of orders into an embedded event store
//! (1,000,000 events; `--quick` 100,000), then projects it from position 1
//! with the projection runner: a catch-up into memory and into redb (one
//! durable transaction per batch, as live projection runs), and an online
//! rebuild of a redb read model that serves (a fresh generation fed beside
//! it, staged in memory and written sorted in its one durable commit,
//! switched over; the median of three). Then `find_by_customer` queries on
//! the rebuilt copy. Baseline: reading the same events from the store as
//! projections read them (payloads as JSON text) with nothing applied.
//!
//! Usage: bench_projections [--quick] [--only read|memory|redb|rebuild]
//! (`--only` runs one phase and prints its rate, for profiling it alone)

use std::sync::Arc;
use std::time::Instant;

use domain_core::seeded::SplitMix64;
use domain_core::testkit::bench;
use domain_core::{AggregateRoot, Currency, Money};
use event_store::{EmbeddedEventStore, EventStore, ExpectedVersion, Repository};
use orders::{
    CustomerInfo, MemoryReadModel, Order, OrderCommand, Projector, ReadModel, RedbGenerations, RedbReadModel,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CUSTOMERS: u64 = 10_000;

fn cny(s: &str) -> Money {
    Money::parse(s, Currency::CNY).unwrap_or_else(|e| panic!("{e}"))
}

/// Orders of 5 events each (create, two items, confirm, paid), appended in
/// batches of one order per append, 64 appends at a time.
async fn write_history(store: &Arc<dyn EventStore>, events: usize) {
    let orders = events / 5;
    let mut rng = SplitMix64::new(20_261_201);
    let mut pending = Vec::new();
    for n in 0..orders {
        let customer = format!("c{:05}", rng.below(CUSTOMERS));
        let id = format!("o{n:07}");
        let mut root = AggregateRoot::<Order>::new(&id);
        let info =
            CustomerInfo::new(&customer, "客户", "c@example.com", "13800138000").unwrap_or_else(|e| panic!("{e}"));
        let mut run = |c: OrderCommand| root.execute(c).map(|_| ()).unwrap_or_else(|e| panic!("{e}"));
        run(OrderCommand::Create { customer: info, currency: Currency::CNY });
        for item in 0..2 {
            let price = cny(&format!("{}.{:02}", 1 + rng.below(300), rng.below(100)));
            run(OrderCommand::AddItem { product_id: format!("p{item}"), quantity: 1, unit_price: price });
        }
        run(OrderCommand::Confirm { payment_account_id: None });
        let total = root.state().total().unwrap_or_else(|| cny("0"));
        root.execute(OrderCommand::MarkPaid { amount: total }).unwrap_or_else(|e| panic!("{e}"));
        let envelopes = root.uncommitted_envelopes(None).unwrap_or_else(|e| panic!("{e}"));
        let stream = Repository::<Order>::stream_of(&id).unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::clone(store);
        pending.push(tokio::spawn(async move { store.append(&stream, ExpectedVersion::NoStream, &envelopes).await }));
        if pending.len() == 64 {
            for p in pending.drain(..) {
                p.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    for p in pending {
        p.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Events per second of a catch-up from 0 into `read_model`.
async fn rebuild(store: &Arc<dyn EventStore>, read_model: Arc<dyn ReadModel>) -> f64 {
    let projector = Projector::new(Arc::clone(store), read_model).with_batch_size(4096);
    let started = Instant::now();
    let applied = projector.catch_up().await.unwrap_or_else(|e| panic!("{e}"));
    applied as f64 / started.elapsed().as_secs_f64()
}

/// Rebuilds of a redb read model that serves (empty here), each into its
/// next generation as `platform projections rebuild` runs it: the median
/// rate of [`REBUILDS`] (one run moves by up to 25% on the 2-core box).
async fn online_rebuild(store: &Arc<dyn EventStore>, dir: &std::path::Path) -> f64 {
    let serving: Arc<dyn ReadModel> = Arc::new(RedbGenerations::open_serving(dir).unwrap_or_else(|e| panic!("{e}")));
    let projector = Projector::new(Arc::clone(store), serving);
    let mut rates = Vec::new();
    for _ in 0..REBUILDS {
        rates.push(projector.rebuild().await.unwrap_or_else(|e| panic!("{e}")).events_per_second);
    }
    eprintln!("online rebuilds: {rates:.0?} events/s");
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Rebuilds [`online_rebuild`] runs.
const REBUILDS: usize = 3;

/// Events per second of reading the log with nothing applied.
async fn read_only(store: &Arc<dyn EventStore>) -> f64 {
    let started = Instant::now();
    let (mut from, mut n) = (1, 0usize);
    loop {
        let page = store.read_all_text(from, 4096).await.unwrap_or_else(|e| panic!("{e}"));
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        n += page.len();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events = if quick { 100_000 } else { 1_000_000 };
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::temporary().unwrap_or_else(|e| panic!("{e}")));
    let started = Instant::now();
    write_history(&store, events).await;
    eprintln!("wrote {events} events in {:.1} s", started.elapsed().as_secs_f64());
    let args: Vec<String> = std::env::args().collect();
    if let Some(phase) = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)) {
        let dir = std::env::temp_dir().join(format!("bench-projections-{}", uuid::Uuid::now_v7().simple()));
        let rate = match phase.as_str() {
            "read" => read_only(&store).await,
            "memory" => rebuild(&store, Arc::new(MemoryReadModel::new())).await,
            "redb" => rebuild(&store, Arc::new(RedbReadModel::open(&dir).unwrap_or_else(|e| panic!("{e}")))).await,
            "rebuild" => online_rebuild(&store, &dir).await,
            other => panic!("unknown phase `{other}`: read, memory, redb or rebuild"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("{phase}: {rate:.0} events/s");
        return;
    }

    let ceiling = read_only(&store).await;
    let memory = rebuild(&store, Arc::new(MemoryReadModel::new())).await;
    let dir = std::env::temp_dir().join(format!("bench-projections-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let redb = Arc::new(RedbReadModel::open(dir.join("catch-up")).unwrap_or_else(|e| panic!("{e}")));
    let on_disk = rebuild(&store, Arc::clone(&redb) as Arc<dyn ReadModel>).await;
    drop(redb);
    let online = online_rebuild(&store, &dir.join("rebuild")).await;
    eprintln!(
        "catch-up: memory {memory:.0} events/s, redb {on_disk:.0} events/s; online rebuild on redb {online:.0} events/s; \
         reading alone {ceiling:.0} events/s"
    );
    let redb = RedbGenerations::open_serving(dir.join("rebuild")).unwrap_or_else(|e| panic!("{e}"));

    let mut rng = SplitMix64::new(7);
    let mut latencies = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let customer = format!("c{:05}", rng.below(CUSTOMERS));
        let t = Instant::now();
        let rows = redb.by_customer(&customer).await.unwrap_or_else(|e| panic!("{e}"));
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(rows);
    }
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let _ = std::fs::remove_dir_all(&dir);

    let base = Some("reading the same events with nothing applied (events/s)");
    let figures = vec![
        bench::figure(
            "projections",
            "rebuild_by_customer_memory",
            memory,
            "events/s",
            base,
            Some(memory / ceiling),
            ">=500000",
        ),
        bench::figure(
            "projections",
            "catch_up_by_customer_redb",
            on_disk,
            "events/s",
            base,
            Some(on_disk / ceiling),
            "report",
        ),
        bench::figure(
            "projections",
            "rebuild_by_customer_redb",
            online,
            "events/s",
            base,
            Some(online / ceiling),
            ">=500000",
        ),
        bench::figure("projections", "find_by_customer_redb_p50", p(0.5), "us", None, None, "report"),
        bench::figure("projections", "find_by_customer_redb_p99", p(0.99), "us", None, None, "<1000"),
    ];
    print!("{}", bench::report(&figures));
}
