//! The payment saga under kill -9 of the accounts context, on real Kafka,
//! with embedded stores and with PostgreSQL.
//!
//! The test process is the orders context (its store, its outbox relay and
//! the orders side of payment); the accounts context runs in the
//! `accounts-worker` process. A merchant and 100 customers are opened (a
//! fifth of them with nothing, most others too poor for all their orders)
//! and 1,000 orders confirmed. A worker is started and killed with SIGKILL
//! once its store holds a few hundred payment outcomes (customers are being
//! charged); the next one takes over the same consumer group, store and
//! relay checkpoint and is killed once a hundred more payments were
//! captured (the merchant is being credited); a third one finishes. Then
//! every order must be paid, or cancelled for a rejection the payer's
//! balance justified; no order charged or credited twice; every customer
//! charged exactly its paid orders and the merchant credited all of them;
//! money conserved at each kill and at the end, with nothing in flight.
//!
//! The worker reports what its saga consumer received and committed, so
//! the test also checks that each killed worker left records behind that a
//! later one received again, and tells which.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accounts::{AccountEvent, Accounts, RejectionReason, TransferPurpose};
use domain_core::bus::{EventBus, topics};
use domain_core::{Currency, Money};
use event_store::{EmbeddedEventStore, EventStore, PostgresEventStore, RecordedEvent};
use orders::{
    CustomerInfo, EventSourcedOrders, MemoryReadModel, OrderCommand, OrderRepository, OrderStatus,
    PaymentOutcomeHandler,
};
use platform::commerce::ORDERS_GROUP;
use platform::node::{BusChoice, Node};
use tokio::sync::mpsc;

use crate::sagas::{Storage, cny, database_url};
use crate::support;

const CUSTOMERS: usize = 100;
const ORDERS: usize = 1_000;
/// Opening balances, customer `i` gets `BALANCES[i % 5]`; each customer
/// places ten orders of 10.00 to 199.99.
const BALANCES: [&str; 5] = ["0", "150", "400", "800", "5000"];
const MERCHANT: &str = "merchant";
/// The first worker is killed once its store holds this many payment
/// outcomes (captured or rejected): while orders are being charged.
const KILL_AT: u64 = 300;
/// The second once this many more payments were captured: while the
/// merchant is being credited.
const KILL_AT_CAPTURED: u64 = 100;
/// Each phase (a worker to its kill, the last one to the end) gets this long.
const LIMIT: Duration = Duration::from_secs(60);
const SEED: u64 = 20_261_208;

/// A small deterministic generator (no dependency for test data).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn customer(i: usize) -> String {
    format!("c{i:03}")
}

/// Where the accounts context keeps its events; removed when dropped
/// (PostgreSQL schemas are dropped at the end of a passing test).
enum AccountsStore {
    Embedded(PathBuf),
    Postgres { url: String, schema: String },
}

impl AccountsStore {
    fn new(storage: Storage, id: &str) -> Self {
        match storage {
            Storage::Embedded => {
                let dir = std::env::temp_dir().join(format!("it-saga-crash-{id}"));
                std::fs::create_dir_all(&dir).expect("accounts dir");
                AccountsStore::Embedded(dir)
            }
            Storage::Postgres => AccountsStore::Postgres { url: database_url(), schema: format!("it_crash_acc_{id}") },
        }
    }

    /// The worker's arguments for this store.
    fn args(&self) -> Vec<String> {
        match self {
            AccountsStore::Embedded(dir) => vec!["--data".into(), dir.display().to_string()],
            AccountsStore::Postgres { url, schema } => {
                vec!["--database-url".into(), url.clone(), "--schema".into(), schema.clone()]
            }
        }
    }

    /// Opens the store in this process. An embedded store is locked by one
    /// process at a time: only while no worker runs, and dropped before the
    /// next one starts.
    async fn open(&self) -> Arc<dyn EventStore> {
        match self {
            AccountsStore::Embedded(dir) => Arc::new(EmbeddedEventStore::open(dir).expect("open the accounts store")),
            AccountsStore::Postgres { url, schema } => {
                Arc::new(PostgresEventStore::connect(url, schema).await.expect("connect the accounts store"))
            }
        }
    }
}

impl Drop for AccountsStore {
    fn drop(&mut self) {
        if let AccountsStore::Embedded(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A running `accounts-worker`, killed and reaped when dropped, so no path
/// out of the test leaves it behind. Its stdout is read on a thread into an
/// unbounded channel, so the worker never blocks on a full pipe.
struct Worker {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Worker {
    fn start(store: &AccountsStore, prefix: &str) -> Self {
        let mut args = vec!["--bootstrap".to_owned(), support::bootstrap(), "--prefix".to_owned(), prefix.to_owned()];
        args.extend(store.args());
        let mut child = Command::new(env!("CARGO_BIN_EXE_accounts-worker"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn accounts-worker");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child: Some(child), stdin, lines }
    }

    /// The next line, `None` once the worker's stdout closed or at `deadline`.
    async fn line(&mut self, deadline: tokio::time::Instant) -> Option<String> {
        tokio::time::timeout_at(deadline, self.lines.recv()).await.ok().flatten()
    }

    /// SIGKILL (by pid) and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Closes its stdin, which makes it leave its group and exit; kills it
    /// if it has not exited within `limit`. True if it exited cleanly.
    async fn stop(&mut self, limit: Duration) -> bool {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        while let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return status.success();
                }
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => break,
            }
        }
        self.kill();
        false
    }

    /// Every line still buffered (the worker has ended).
    async fn rest(&mut self, trace: &mut Trace) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Some(line) = self.line(deadline).await {
            trace.take(&line);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A topic and one of its partitions.
type Partition = (String, i32);
/// Where a record is: its partition and offset.
type Place<'a> = (&'a Partition, i64);

/// One record the worker's saga consumer received.
#[derive(Debug, Clone)]
struct Received {
    partition: Partition,
    offset: i64,
    event_id: String,
    event_type: String,
}

/// What one worker run reported (see the `accounts-worker` docs). Only
/// complete lines count: one cut short by the kill lacks its final ".".
#[derive(Debug, Default)]
struct Trace {
    received: Vec<Received>,
    /// Highest offset each commit call returned for, per partition.
    committed: BTreeMap<Partition, i64>,
    dead_lettered: Vec<String>,
    outcomes: u64,
    captured: u64,
    /// `handled dead-lettered relayed` after a clean stop.
    done: Option<(u64, u64, u64)>,
    warnings: Vec<String>,
}

impl Trace {
    fn take(&mut self, line: &str) {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.last() != Some(&".") {
            return;
        }
        let number = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("bad number in worker line `{line}`"));
        let offset = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("bad offset in worker line `{line}`"));
        let partition = |t: &str, p: &str| (t.to_owned(), offset(p) as i32);
        match parts.as_slice() {
            ["d", topic, p, o, id, ty, "."] => self.received.push(Received {
                partition: partition(topic, p),
                offset: offset(o),
                event_id: (*id).to_owned(),
                event_type: (*ty).to_owned(),
            }),
            ["c", topic, p, o, "."] => {
                let at = self.committed.entry(partition(topic, p)).or_insert(-1);
                *at = (*at).max(offset(o));
            }
            ["x", ..] => self.dead_lettered.push(line.to_owned()),
            ["ok", n, captured, _head, "."] => {
                self.outcomes = self.outcomes.max(number(n));
                self.captured = self.captured.max(number(captured));
            }
            ["done", handled, dlq, relayed, "."] => self.done = Some((number(handled), number(dlq), number(relayed))),
            _ => self.warnings.push(line.to_owned()),
        }
    }

    /// Counts, for failure messages.
    fn summary(&self) -> String {
        format!(
            "received {}, last received {:?}, committed up to {:?}, dead-lettered {:?}, {} outcomes ({} captured), \
             done {:?}, other lines {:?}",
            self.received.len(),
            self.last_received(),
            self.committed,
            self.dead_lettered,
            self.outcomes,
            self.captured,
            self.done,
            self.warnings
        )
    }

    /// The highest offset received per partition.
    fn last_received(&self) -> BTreeMap<Partition, i64> {
        let mut out = BTreeMap::new();
        for r in &self.received {
            let at = out.entry(r.partition.clone()).or_insert(-1);
            *at = (*at).max(r.offset);
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Placed {
    id: String,
    customer: String,
    total: Money,
}

async fn place(orders: &EventSourcedOrders, p: &Placed) {
    let info = CustomerInfo::new(p.customer.as_str(), "张三", "zhangsan@example.com", "13800138000").expect("customer");
    let commands = [
        OrderCommand::Create { customer: info, currency: Currency::CNY },
        OrderCommand::AddItem { product_id: "product_001".into(), quantity: 1, unit_price: p.total },
        OrderCommand::Confirm { payment_account_id: None },
    ];
    for command in commands {
        orders.execute(&p.id, command, None, 10).await.unwrap_or_else(|e| panic!("order {}: {e}", p.id));
    }
}

/// Creates and confirms every order, 25 chains at a time.
async fn place_all(orders: &EventSourcedOrders) -> Vec<Placed> {
    let mut rng = Lcg(SEED);
    let placed: Vec<Placed> = (0..ORDERS)
        .map(|i| {
            let price = format!("{}.{:02}", 10 + rng.next(190), rng.next(100));
            Placed { id: format!("o{i:04}"), customer: customer(i % CUSTOMERS), total: cny(&price) }
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in placed.chunks(ORDERS / 25) {
        let (orders, chunk) = (orders.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for p in &chunk {
                place(&orders, p).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("placing orders");
    }
    placed
}

/// The merchant and the customers, with their opening balances.
async fn open_accounts(store: Arc<dyn EventStore>) -> BTreeMap<String, Money> {
    let accounts = Accounts::new(store);
    let mut initial: BTreeMap<String, Money> = (0..CUSTOMERS).map(|i| (customer(i), cny(BALANCES[i % 5]))).collect();
    initial.insert(MERCHANT.to_owned(), cny("0"));
    let mut tasks = tokio::task::JoinSet::new();
    for (id, balance) in initial.clone() {
        let accounts = accounts.clone();
        tasks.spawn(async move { accounts.open(&id, &id, balance).await.unwrap_or_else(|e| panic!("open {id}: {e}")) });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("opening accounts");
    }
    initial
}

/// Order ids whose payment the orders store has an outcome for.
#[derive(Default)]
struct Outcomes {
    next: u64,
    decided: HashSet<String>,
}

impl Outcomes {
    async fn follow(&mut self, store: &dyn EventStore) -> usize {
        loop {
            let page = store.read_all(self.next.max(1), 1024).await.expect("read the orders log");
            let Some(last) = page.last() else { break };
            self.next = last.position + 1;
            for e in &page {
                if matches!(e.envelope.event_type.name(), "OrderPaid" | "OrderPaymentRejected") {
                    self.decided.insert(e.envelope.subject.clone());
                }
            }
        }
        self.decided.len()
    }
}

/// What the accounts store says about the payments.
#[derive(Debug, Default)]
struct Payments {
    /// Per order id.
    debits: HashMap<String, u32>,
    credits: HashMap<String, u32>,
    captured: HashMap<String, u32>,
    rejected: HashMap<String, u32>,
    /// Payments paid back after a debit (the merchant refused): none here.
    paid_back: u32,
    /// Rejections the payer's balance did not justify at that point.
    unjustified: Vec<String>,
    audit: Option<accounts::ledger::Audit>,
    balances: BTreeMap<String, Money>,
    /// Per order id, its events in the accounts log (for failure messages).
    story: HashMap<String, Vec<String>>,
}

impl Payments {
    async fn of(store: Arc<dyn EventStore>) -> Self {
        let mut out = Payments::default();
        let mut balance: HashMap<String, Money> = HashMap::new();
        let mut from = 1;
        loop {
            let page = store.read_all(from, 4096).await.expect("read the accounts log");
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            page.iter().for_each(|e| out.note(e, &mut balance));
        }
        let accounts = Accounts::new(store);
        for id in accounts.ids().await.expect("account ids") {
            let root = accounts.load(&id).await.expect("load account");
            if let Some(m) = root.state().balance_money() {
                out.balances.insert(id, m);
            }
        }
        out.audit = Some(accounts::ledger::audit(&accounts).await.expect("audit"));
        out
    }

    fn note(&mut self, e: &RecordedEvent, balance: &mut HashMap<String, Money>) {
        let Ok(event) = e.envelope.decode::<AccountEvent>() else { return };
        let account = e.envelope.subject.clone();
        let order = match &event {
            AccountEvent::MoneyTransferredOut { purpose: TransferPurpose::Payment { order_id }, .. }
            | AccountEvent::MoneyTransferredIn { purpose: TransferPurpose::Payment { order_id }, .. }
            | AccountEvent::PaymentCaptured { order_id, .. }
            | AccountEvent::PaymentRejected { order_id, .. } => Some(order_id.clone()),
            _ => None,
        };
        if let Some(order) = order {
            let cause = match &event {
                AccountEvent::MoneyTransferredIn { cause, .. } => {
                    format!(" cause {}@{}", cause.account_id, cause.version)
                }
                _ => String::new(),
            };
            self.story.entry(order).or_default().push(format!(
                "#{} {}@{} (envelope v{}) {} id {} caused by {:?}{cause}",
                e.position,
                account,
                e.version,
                e.envelope.aggregate_version,
                e.envelope.event_type,
                e.envelope.id,
                e.envelope.causation_id
            ));
        }
        let bump = |m: &mut HashMap<String, u32>, order: &str| *m.entry(order.to_owned()).or_default() += 1;
        match event {
            AccountEvent::AccountCreated { initial_balance, .. } => {
                balance.insert(account, initial_balance);
            }
            AccountEvent::MoneyTransferredOut { purpose, amount, new_balance, .. } => {
                balance.insert(account, Money::new(new_balance, amount.currency));
                if let TransferPurpose::Payment { order_id } = purpose {
                    bump(&mut self.debits, &order_id);
                }
            }
            AccountEvent::MoneyTransferredIn { purpose, amount, new_balance, .. } => {
                balance.insert(account, Money::new(new_balance, amount.currency));
                if let TransferPurpose::Payment { order_id } = purpose {
                    bump(&mut self.credits, &order_id);
                }
            }
            AccountEvent::TransferRefunded { amount, new_balance, .. } => {
                balance.insert(account, Money::new(new_balance, amount.currency));
                self.paid_back += 1;
            }
            AccountEvent::MoneyDeposited { amount, new_balance, .. }
            | AccountEvent::MoneyWithdrawn { amount, new_balance, .. } => {
                balance.insert(account, Money::new(new_balance, amount.currency));
            }
            AccountEvent::PaymentCaptured { order_id, .. } => bump(&mut self.captured, &order_id),
            AccountEvent::PaymentRejected { order_id, amount, reason } => {
                bump(&mut self.rejected, &order_id);
                let had = balance.get(&account).copied();
                let justified =
                    reason == RejectionReason::InsufficientFunds && had.is_some_and(|b| b.amount < amount.amount);
                if !justified {
                    self.unjustified.push(format!("{order_id} on {account}: {reason} with {had:?} for {amount}"));
                }
            }
            _ => {}
        }
    }

    fn count(m: &HashMap<String, u32>, order: &str) -> u32 {
        m.get(order).copied().unwrap_or(0)
    }

    fn outcomes(&self) -> u64 {
        (self.captured.values().sum::<u32>() + self.rejected.values().sum::<u32>()).into()
    }

    /// Debited orders whose credit to the merchant has not happened yet.
    fn in_flight(&self) -> usize {
        self.debits.keys().filter(|o| Self::count(&self.credits, o) == 0).count()
    }
}

async fn orders_store(storage: Storage, id: &str) -> Arc<dyn EventStore> {
    match storage {
        Storage::Embedded => Arc::new(EmbeddedEventStore::temporary().expect("orders store")),
        Storage::Postgres => Arc::new(
            PostgresEventStore::connect(&database_url(), &format!("it_crash_ord_{id}")).await.expect("orders store"),
        ),
    }
}

/// What the accounts store held right after a kill.
struct AtKill {
    after: Duration,
    outcomes: u64,
    captured: u64,
    /// Orders debited whose credit to the merchant had not happened.
    in_flight: usize,
    /// Orders accounts had not answered at all.
    untouched: usize,
}

impl std::fmt::Debug for AtKill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "after {:.1?}: {} outcomes ({} captured), {} orders debited and not yet credited, {} not answered",
            self.after, self.outcomes, self.captured, self.in_flight, self.untouched
        )
    }
}

/// Runs a worker until `enough` holds for its trace, then kills it.
async fn run_and_kill(
    store: &AccountsStore,
    prefix: &str,
    enough: impl Fn(&Trace) -> bool,
    started: Instant,
) -> (Trace, AtKill) {
    let mut worker = Worker::start(store, prefix);
    let mut trace = Trace::default();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !enough(&trace) {
        match worker.line(deadline).await {
            Some(line) => trace.take(&line),
            None => panic!("the worker stopped or stalled before its kill: {}", trace.summary()),
        }
    }
    worker.kill();
    let after = started.elapsed();
    worker.rest(&mut trace).await;
    drop(worker);
    let seen = Payments::of(store.open().await).await;
    let audit = seen.audit.as_ref().expect("audit");
    assert!(audit.money_conserved, "money is conserved at the kill too: {audit:?}");
    let at = AtKill {
        after,
        outcomes: seen.outcomes(),
        captured: seen.captured.values().map(|n| u64::from(*n)).sum(),
        in_flight: seen.in_flight(),
        untouched: ORDERS.saturating_sub(seen.debits.len() + seen.rejected.len()),
    };
    assert!(at.outcomes < ORDERS as u64, "killed in the middle: {at:?}");
    (trace, at)
}

/// Records a killed worker had received that a later worker received
/// again (each record once).
fn received_again<'t>(killed: &Trace, later: &'t [Trace]) -> Vec<&'t Received> {
    let had: HashSet<Place<'_>> = killed.received.iter().map(|r| (&r.partition, r.offset)).collect();
    let mut seen = HashSet::new();
    later
        .iter()
        .flat_map(|t| &t.received)
        .filter(|r| had.contains(&(&r.partition, r.offset)) && seen.insert((&r.partition, r.offset)))
        .collect()
}

async fn survives_kill_9(storage: Storage) {
    let started = Instant::now();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("{}.", support::unique("crash"));
    let accounts_store = AccountsStore::new(storage, &id);
    let initial = open_accounts(accounts_store.open().await).await;

    // This process is the orders context: store, relay, payment outcomes.
    let orders_events = orders_store(storage, &id).await;
    let orders = EventSourcedOrders::new(Arc::clone(&orders_events), Arc::new(MemoryReadModel::new()));
    let bus: Arc<dyn EventBus> = Arc::new(support::bus());
    let mut node = Node::on_bus(bus, BusChoice::Kafka(support::bootstrap()), &prefix).await.expect("orders node");
    node.relay("orders", Arc::clone(&orders_events));
    node.consume(ORDERS_GROUP, &[topics::ACCOUNTS], PaymentOutcomeHandler::new(Arc::clone(&orders_events)))
        .await
        .expect("orders consumer");
    let (stop_orders, stopped) = tokio::sync::oneshot::channel::<()>();
    let orders_node = tokio::spawn(async move {
        let stats = node.run(async {
            let _ = stopped.await;
        });
        let stats = stats.await;
        let close = node.close().await;
        (stats, close)
    });
    let placed = place_all(&orders).await;
    let placing = started.elapsed();

    // Killed while charging orders, then while crediting the merchant; each
    // next worker takes the same group, store and relay checkpoint.
    let (run1, kill1) = run_and_kill(&accounts_store, &prefix, |t| t.outcomes >= KILL_AT, started).await;
    let credits = kill1.captured + KILL_AT_CAPTURED;
    let (run2, kill2) = run_and_kill(&accounts_store, &prefix, |t| t.captured >= credits, started).await;

    let mut last = Worker::start(&accounts_store, &prefix);
    let progress = Arc::new(tokio::sync::Mutex::new(Outcomes::default()));
    let settled = support::wait_until_async(LIMIT, || {
        let (progress, store) = (Arc::clone(&progress), Arc::clone(&orders_events));
        async move { progress.lock().await.follow(store.as_ref()).await >= ORDERS }
    })
    .await;
    let decided = progress.lock().await.decided.len();
    let stopped_cleanly = last.stop(Duration::from_secs(30)).await;
    let mut run3 = Trace::default();
    last.rest(&mut run3).await;
    drop(last);
    let settled_at = started.elapsed();
    let _ = stop_orders.send(());
    let (orders_stats, orders_close) = orders_node.await.expect("orders node task");
    let orders_stats = orders_stats.expect("orders node");
    orders_close.expect("orders node closes");
    assert!(settled, "only {decided} of {ORDERS} orders have a payment outcome after the restarts");
    assert!(stopped_cleanly, "the last worker stops when its stdin closes: {}", run3.summary());
    assert_eq!(orders_stats.dead_lettered, 0, "the orders side dead-lettered nothing");
    let runs = [run1, run2, run3];
    for (n, run) in runs.iter().enumerate() {
        assert!(run.dead_lettered.is_empty(), "worker {} dead-lettered {:?}", n + 1, run.dead_lettered);
    }
    assert_eq!(runs[2].done.map(|d| d.1), Some(0), "the last worker dead-lettered nothing");

    // Orders: every one paid, or cancelled because the money was not there.
    let mut problems = Vec::new();
    let mut paid_by: BTreeMap<String, Money> = BTreeMap::new();
    let mut paid_orders = 0;
    let end = Payments::of(accounts_store.open().await).await;
    for p in &placed {
        let order = orders.get_by_id(&p.id).await.expect("load order").expect("order exists");
        let state = order.state();
        let (debits, credits) = (Payments::count(&end.debits, &p.id), Payments::count(&end.credits, &p.id));
        let (captured, rejected) = (Payments::count(&end.captured, &p.id), Payments::count(&end.rejected, &p.id));
        match state.status() {
            OrderStatus::Paid
                if state.paid_amount() == Some(p.total) && (debits, credits, captured, rejected) == (1, 1, 1, 0) =>
            {
                paid_orders += 1;
                let sum = paid_by.entry(p.customer.clone()).or_insert_with(|| cny("0"));
                *sum = sum.checked_add(p.total).expect("sum");
            }
            OrderStatus::Cancelled
                if state.cancellation_reason().is_some_and(|r| r.contains("insufficient_funds"))
                    && (debits, credits, captured, rejected) == (0, 0, 0, 1) => {}
            status => problems.push(format!(
                "{} {status}, paid {:?}, reason {:?}: debits {debits} credits {credits} captured {captured} \
                 rejected {rejected} in {:#?}",
                p.id,
                state.paid_amount(),
                state.cancellation_reason(),
                end.story.get(&p.id)
            )),
        }
    }
    assert!(problems.is_empty(), "{} orders are wrong, e.g. {:?}", problems.len(), &problems[..problems.len().min(2)]);
    assert!(end.unjustified.is_empty(), "rejections without cause: {:?}", end.unjustified);
    assert_eq!(end.paid_back, 0, "no payment was refused by the merchant's account");

    // Money: each customer charged exactly its paid orders, the merchant
    // credited all of them, conserved with nothing in flight.
    let mut merchant = cny("0");
    for (account, opening) in initial.iter().filter(|(a, _)| *a != MERCHANT) {
        let paid = paid_by.get(account).copied().unwrap_or_else(|| cny("0"));
        merchant = merchant.checked_add(paid).expect("sum");
        let expected = opening.checked_sub(paid).expect("difference");
        assert_eq!(end.balances.get(account).copied(), Some(expected), "balance of {account}");
    }
    assert_eq!(end.balances.get(MERCHANT).copied(), Some(merchant), "the merchant got every paid order once");
    let audit = end.audit.as_ref().expect("audit");
    assert!(audit.money_conserved, "{audit:?}");
    assert!(audit.currencies["CNY"].in_flight.is_zero(), "nothing in flight: {audit:?}");
    assert_eq!(audit.counts.payments_captured as usize, paid_orders);
    assert_eq!(audit.counts.payments_rejected as usize, end.rejected.len());

    // What each killed worker had in hand and a later one got again.
    let mut again = Vec::new();
    for k in 0..runs.len() - 1 {
        let records = received_again(&runs[k], &runs[k + 1..]);
        let summaries: Vec<String> = runs.iter().map(Trace::summary).collect();
        assert!(
            !records.is_empty(),
            "killed worker {} had received records it had not committed; kills {kill1:?} {kill2:?}; {summaries:#?}",
            k + 1
        );
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &records {
            *by_type.entry(r.event_type.as_str()).or_default() += 1;
        }
        again.push(format!("{} ({by_type:?})", records.len()));
    }
    let mut places: HashMap<&str, HashSet<Place<'_>>> = HashMap::new();
    for r in runs.iter().flat_map(|t| &t.received) {
        places.entry(r.event_id.as_str()).or_default().insert((&r.partition, r.offset));
    }
    let republished = places.values().filter(|p| p.len() > 1).count();
    let received: Vec<usize> = runs.iter().map(|t| t.received.len()).collect();
    println!(
        "saga crash ({storage:?}): orders placed after {placing:?}; kill 1 {kill1:?}; kill 2 {kill2:?}; \
         settled after {settled_at:?}: {paid_orders} orders paid, {} rejected; records received per worker \
         {received:?}; received by a killed worker and again later {again:?}; {republished} events relayed twice",
        end.rejected.len(),
    );

    if let AccountsStore::Postgres { url, schema } = &accounts_store {
        for schema in [schema.clone(), format!("it_crash_ord_{id}")] {
            let store = PostgresEventStore::connect(url, &schema).await.expect("connect");
            store.drop_schema().await.expect("drop schema");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_survives_kill_9_of_the_accounts_worker_embedded() {
    survives_kill_9(Storage::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_survives_kill_9_of_the_accounts_worker_postgres() {
    survives_kill_9(Storage::Postgres).await;
}
