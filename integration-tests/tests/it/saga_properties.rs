//! A property test of the payment and transfer sagas (fixed seed): random
//! transfers, payments, cancellations, freezes and closures interleaved with
//! deliveries of the two topics, duplicated deliveries, consumer restarts
//! (what was handled but not committed is delivered again) and replays of a
//! group from offset 0.
//!
//! The handlers are driven directly, not through a bus, so the test decides
//! every delivery. The topics are modelled as append-only partitioned logs
//! of wire records: whatever the orders and accounts stores append (their
//! global logs, which are the outboxes) is what the relays would publish to
//! `orders.events` and `accounts.events`, keyed by aggregate id and
//! partitioned by Kafka's murmur2. Two consumer groups read them, each with
//! a handled and a committed offset per partition:
//! - the accounts sagas (both topics, [`AccountSagas::step`]);
//! - the orders side of payment (accounts topic, [`PaymentOutcomeHandler`]).
//!
//! After every action, money is conserved at every position of the accounts
//! log ([`Ledger`]) and the money in flight is never negative (a credit or a
//! payback applied twice keeps the sum but takes more out of flight than
//! went in). At the end both groups are drained, and then: money is
//! conserved and none is in flight; every transfer (holder transfers,
//! payments, refunds) ended exactly once, credited or paid back, never both,
//! never twice; every confirmed order has exactly one payment outcome and
//! none is left confirmed; no order is charged twice; every order cancelled
//! after its capture has exactly one refund outcome (`RefundIssued`, or
//! `RefundFailed` when the payer's or the merchant's account refuses: frozen
//! or closed, never for lack of funds) and its refund recorded on the order
//! iff it was issued; the orders read model agrees with the orders; no record
//! was dead-lettered; and replaying both topics from offset 0 into fresh
//! groups appends nothing and passes the same checks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use accounts::ledger::{Ledger, audit};
use accounts::{AccountCommand, AccountEvent, AccountSagas, Accounts, RejectionReason, SagaConfig, TransferPurpose};
use domain_core::bus::partition::partition_for_key;
use domain_core::bus::{Delivery, Handler, Record, topics};
use domain_core::{Currency, Money, codec};
use event_store::{EventStore, InMemoryEventStore, RecordedEvent};
use orders::{
    CustomerInfo, EventSourcedOrders, MemoryReadModel, OrderCommand, OrderEvent, OrderRepository, OrderStatus,
    PaymentOutcomeHandler,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// The seed of the generated runs (override: `SAGA_PROPERTIES_SEED`).
const SEED: u8 = 8;
/// Generated runs (override: `SAGA_PROPERTIES_CASES`).
const CASES: u32 = 128;
/// Actions per run.
const ACTIONS: std::ops::Range<usize> = 50..250;
/// Partitions of each topic.
const PARTITIONS: u32 = 3;
const MERCHANT: &str = "merchant";
/// Conflict retries of an order command (no concurrent writers here).
const ORDER_RETRIES: u32 = 5;
/// Drain rounds before the sagas are declared stuck.
const MAX_DRAIN_ROUNDS: usize = 100;

const ORDERS_TOPIC: usize = 0;
const ACCOUNTS_TOPIC: usize = 1;
const TOPIC_NAMES: [&str; 2] = [topics::ORDERS, topics::ACCOUNTS];

type Outcome<T = ()> = Result<T, String>;

/// Someone in the story: a customer account (index into the opened ones),
/// the merchant, or an account nobody opened.
#[derive(Debug, Clone, Copy)]
enum Party {
    Customer(usize),
    Merchant,
    Missing(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupId {
    Accounts,
    Orders,
}

#[derive(Debug, Clone)]
enum Action {
    Open {
        usd: bool,
        cents: u64,
    },
    Deposit {
        account: usize,
        cents: u64,
    },
    /// See [`World::place`].
    Place {
        customer: Party,
        usd: bool,
        items: Vec<(u32, u64)>,
        confirm: bool,
        pay_from: Option<Party>,
    },
    /// Many small orders of one customer at once, so the merchant's account
    /// grows past its snapshot interval.
    Rush {
        customer: usize,
        count: usize,
    },
    Cancel {
        order: usize,
    },
    Ship {
        order: usize,
    },
    MarkDelivered {
        order: usize,
    },
    Transfer {
        from: usize,
        to: Party,
        cents: u64,
    },
    Freeze {
        who: Party,
    },
    Unfreeze {
        who: Party,
    },
    /// Withdraw everything, then close.
    Close {
        account: usize,
    },
    /// Handle the next `count` records of one partition the group reads.
    Consume {
        group: GroupId,
        source: usize,
        count: usize,
    },
    /// Handle the last `count` handled records of one partition again.
    Duplicate {
        group: GroupId,
        source: usize,
        count: usize,
    },
    /// Commit what the group handled.
    Commit {
        group: GroupId,
    },
    /// The group loses what it handled but did not commit.
    Restart {
        group: GroupId,
    },
    /// The group starts over from offset 0 (a fresh group).
    Replay {
        group: GroupId,
    },
}

fn party() -> impl Strategy<Value = Party> {
    prop_oneof![
        10 => any::<usize>().prop_map(Party::Customer),
        2 => Just(Party::Merchant),
        1 => (0u8..3).prop_map(Party::Missing),
    ]
}

fn payer() -> impl Strategy<Value = Party> {
    prop_oneof![12 => any::<usize>().prop_map(Party::Customer), 1 => (0u8..3).prop_map(Party::Missing)]
}

fn group() -> impl Strategy<Value = GroupId> + Clone {
    prop_oneof![Just(GroupId::Accounts), Just(GroupId::Orders)]
}

fn action() -> impl Strategy<Value = Action> {
    let item = (1u32..=2, 1u64..=8_000);
    let items = prop_oneof![1 => Just(Vec::new()), 12 => prop::collection::vec(item, 1..=3)];
    let place =
        (payer(), prop::bool::weighted(0.1), items, prop::bool::weighted(0.95), prop::option::weighted(0.1, payer()))
            .prop_map(|(customer, usd, items, confirm, pay_from)| Action::Place {
                customer,
                usd,
                items,
                confirm,
                pay_from,
            });
    let consume = (group(), any::<usize>(), 1usize..=6);
    prop_oneof![
        4 => (prop::bool::weighted(0.2), 0u64..=80_000).prop_map(|(usd, cents)| Action::Open { usd, cents }),
        4 => (any::<usize>(), 1u64..=30_000).prop_map(|(account, cents)| Action::Deposit { account, cents }),
        12 => place,
        1 => (any::<usize>(), 5usize..=25).prop_map(|(customer, count)| Action::Rush { customer, count }),
        4 => any::<usize>().prop_map(|order| Action::Cancel { order }),
        8 => any::<usize>().prop_map(|order| Action::Ship { order }),
        4 => any::<usize>().prop_map(|order| Action::MarkDelivered { order }),
        10 => (any::<usize>(), party(), 1u64..=30_000)
            .prop_map(|(from, to, cents)| Action::Transfer { from, to, cents }),
        1 => party().prop_map(|who| Action::Freeze { who }),
        3 => party().prop_map(|who| Action::Unfreeze { who }),
        1 => any::<usize>().prop_map(|account| Action::Close { account }),
        28 => consume.clone().prop_map(|(group, source, count)| Action::Consume { group, source, count }),
        6 => consume.prop_map(|(group, source, count)| Action::Duplicate { group, source, count }),
        8 => group().prop_map(|group| Action::Commit { group }),
        4 => group().prop_map(|group| Action::Restart { group }),
        1 => group().prop_map(|group| Action::Replay { group }),
    ]
}

/// One partition as a group reads it.
#[derive(Debug, Clone)]
struct Cursor {
    topic: usize,
    partition: usize,
    /// Next offset to hand to the handler.
    handled: usize,
    /// Where a restarted member resumes.
    committed: usize,
}

#[derive(Debug)]
struct Group {
    cursors: Vec<Cursor>,
}

impl Group {
    fn new(topics: &[usize]) -> Self {
        let cursors = topics
            .iter()
            .flat_map(|&topic| {
                (0..PARTITIONS as usize).map(move |partition| Cursor { topic, partition, handled: 0, committed: 0 })
            })
            .collect();
        Self { cursors }
    }
}

/// What one run did, summed over the runs for the coverage report.
#[derive(Debug, Default, Clone)]
struct Tally {
    actions: u64,
    handled: u64,
    duplicated: u64,
    restarts: u64,
    replays: u64,
    refused_commands: u64,
    transfers_completed: u64,
    compensations: BTreeMap<String, u64>,
    payments_captured: u64,
    payments_rejected: BTreeMap<String, u64>,
    refunds_issued: u64,
    refunds_failed: BTreeMap<String, u64>,
    orders_by_status: BTreeMap<String, u64>,
    cancelled_after_capture: u64,
    /// The most versions of one account (snapshots every 100).
    longest_account_stream: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        fn merge(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
            for (k, v) in from {
                *into.entry(k.clone()).or_default() += v;
            }
        }
        self.actions += other.actions;
        self.handled += other.handled;
        self.duplicated += other.duplicated;
        self.restarts += other.restarts;
        self.replays += other.replays;
        self.refused_commands += other.refused_commands;
        self.transfers_completed += other.transfers_completed;
        merge(&mut self.compensations, &other.compensations);
        self.payments_captured += other.payments_captured;
        merge(&mut self.payments_rejected, &other.payments_rejected);
        self.refunds_issued += other.refunds_issued;
        merge(&mut self.refunds_failed, &other.refunds_failed);
        merge(&mut self.orders_by_status, &other.orders_by_status);
        self.cancelled_after_capture += other.cancelled_after_capture;
        self.longest_account_stream = self.longest_account_stream.max(other.longest_account_stream);
    }
}

fn money(cents: u64, currency: Currency) -> Money {
    Money::parse(&format!("{}.{:02}", cents / 100, cents % 100), currency)
        .unwrap_or_else(|e| panic!("{cents} cents: {e}"))
}

fn currency(usd: bool) -> Currency {
    if usd { Currency::USD } else { Currency::CNY }
}

/// The two contexts, the two topics and the two consumer groups.
#[derive(Debug)]
struct World {
    accounts: Accounts,
    accounts_store: Arc<dyn EventStore>,
    orders: EventSourcedOrders,
    sagas: AccountSagas,
    payments: PaymentOutcomeHandler,
    /// `topics[topic][partition]`: the records relayed so far.
    topics: [Vec<Vec<Record>>; 2],
    /// Per store (orders, accounts): the next log position to relay.
    relayed: [u64; 2],
    groups: [Group; 2],
    ledger: Ledger,
    ledger_next: u64,
    customers: Vec<String>,
    currencies: BTreeMap<String, Currency>,
    placed: Vec<String>,
    /// Order statuses as the orders log says, read up to `statuses_next`.
    statuses: BTreeMap<String, OrderStatus>,
    statuses_next: u64,
    transfers: u64,
    dead_letters: Vec<String>,
    tally: Tally,
}

impl World {
    async fn new() -> Outcome<Self> {
        let orders_store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let accounts_store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        let accounts = Accounts::new(Arc::clone(&accounts_store));
        let orders = EventSourcedOrders::new(Arc::clone(&orders_store), Arc::new(MemoryReadModel::new()));
        let sagas = AccountSagas::new(accounts.clone(), SagaConfig { merchant_account_id: MERCHANT.to_owned() });
        let mut world = Self {
            accounts,
            accounts_store,
            orders,
            sagas,
            payments: PaymentOutcomeHandler::new(orders_store),
            topics: [vec![Vec::new(); PARTITIONS as usize], vec![Vec::new(); PARTITIONS as usize]],
            relayed: [1, 1],
            groups: [Group::new(&[ACCOUNTS_TOPIC, ORDERS_TOPIC]), Group::new(&[ACCOUNTS_TOPIC])],
            ledger: Ledger::new(),
            ledger_next: 1,
            customers: Vec::new(),
            currencies: BTreeMap::new(),
            placed: Vec::new(),
            statuses: BTreeMap::new(),
            statuses_next: 1,
            transfers: 0,
            dead_letters: Vec::new(),
            tally: Tally::default(),
        };
        world.open_account(MERCHANT, money(0, Currency::CNY)).await?;
        for (usd, cents) in
            [(false, 50_000), (false, 30_000), (false, 20_000), (false, 8_000), (false, 2_000), (true, 30_000)]
        {
            world.open_customer(usd, cents).await?;
        }
        Ok(world)
    }

    async fn open_account(&mut self, id: &str, initial: Money) -> Outcome {
        self.accounts.open(id, id, initial).await.map_err(|e| format!("open {id}: {e}"))?;
        self.currencies.insert(id.to_owned(), initial.currency);
        Ok(())
    }

    async fn open_customer(&mut self, usd: bool, cents: u64) -> Outcome {
        let id = format!("c{}", self.customers.len());
        self.open_account(&id, money(cents, currency(usd))).await?;
        self.customers.push(id);
        Ok(())
    }

    fn customer(&self, i: usize) -> String {
        self.customers[i % self.customers.len()].clone()
    }

    fn party(&self, p: Party) -> String {
        match p {
            Party::Customer(i) => self.customer(i),
            Party::Merchant => MERCHANT.to_owned(),
            Party::Missing(n) => format!("ghost{n}"),
        }
    }

    fn group(&self, id: GroupId) -> &Group {
        &self.groups[id as usize]
    }

    fn group_mut(&mut self, id: GroupId) -> &mut Group {
        &mut self.groups[id as usize]
    }

    /// Counts a refused user command (a legitimate outcome, not a failure).
    fn refused<T, E>(&mut self, result: Result<T, E>) {
        if result.is_err() {
            self.tally.refused_commands += 1;
        }
    }

    async fn order(&mut self, id: &str, command: OrderCommand) -> bool {
        let result = self.orders.execute(id, command, None, ORDER_RETRIES).await;
        let ok = result.is_ok();
        self.refused(result);
        ok
    }

    async fn account(&mut self, id: &str, command: AccountCommand) -> bool {
        let result = self.accounts.execute(id, command, None).await;
        let ok = result.is_ok();
        self.refused(result);
        ok
    }

    /// Creates an order, adds the items and confirms it when asked (an
    /// order without items cannot be confirmed and stays pending).
    async fn place(
        &mut self,
        customer_id: String,
        currency: Currency,
        items: &[(u32, u64)],
        confirm: bool,
        payment_account_id: Option<String>,
    ) -> Outcome {
        let id = format!("o{}", self.placed.len());
        let info = CustomerInfo::new(customer_id, "张三", "zhangsan@example.com", "13800138000")
            .map_err(|e| format!("customer: {e}"))?;
        self.orders
            .execute(&id, OrderCommand::Create { customer: info, currency }, None, ORDER_RETRIES)
            .await
            .map_err(|e| format!("create {id}: {e}"))?;
        self.placed.push(id.clone());
        for (k, (quantity, cents)) in items.iter().enumerate() {
            let item = OrderCommand::AddItem {
                product_id: format!("p{k}"),
                quantity: *quantity,
                unit_price: money(*cents, currency),
            };
            self.orders.execute(&id, item, None, ORDER_RETRIES).await.map_err(|e| format!("add to {id}: {e}"))?;
        }
        if confirm {
            self.order(&id, OrderCommand::Confirm { payment_account_id }).await;
        }
        Ok(())
    }

    /// What the outbox relays would publish: every event appended since the
    /// last relay, to its context's topic, in the partition of its key.
    async fn relay(&mut self) -> Outcome {
        let stores = [Arc::clone(self.orders.store()), Arc::clone(&self.accounts_store)];
        for (topic, store) in stores.iter().enumerate() {
            loop {
                let page = store.read_all(self.relayed[topic], 1024).await.map_err(|e| format!("read_all: {e}"))?;
                let Some(last) = page.last() else { break };
                self.relayed[topic] = last.position + 1;
                for recorded in &page {
                    let record = codec::encode(&recorded.envelope).map_err(|e| format!("encode: {e}"))?;
                    let key = record.key.clone().unwrap_or_default();
                    let partition = partition_for_key(&key, PARTITIONS) as usize;
                    self.topics[topic][partition].push(record);
                }
            }
        }
        Ok(())
    }

    /// Folds what the accounts store appended since the last check into the
    /// ledger, which checks conservation after every event.
    async fn check_conservation(&mut self, after: &str) -> Outcome {
        loop {
            let page =
                self.accounts_store.read_all(self.ledger_next, 1024).await.map_err(|e| format!("read_all: {e}"))?;
            let Some(last) = page.last() else { return Ok(()) };
            self.ledger_next = last.position + 1;
            for recorded in &page {
                self.ledger.apply(recorded).map_err(|imbalance| format!("after {after}: {imbalance}"))?;
                // A credit or a payback twice would leave the sum intact and
                // take more out of flight than went in.
                if let Some((currency, t)) = self.ledger.totals().iter().find(|(_, t)| t.in_flight.is_sign_negative()) {
                    return Err(format!(
                        "after {after}: {currency} in flight is {} at position {} ({} of {})",
                        t.in_flight, recorded.position, recorded.envelope.event_type, recorded.envelope.subject
                    ));
                }
            }
        }
    }

    /// Hands one record to the group's handler, as the consumer loop does:
    /// decode, handle, and a record that fails is dead-lettered.
    async fn deliver(&mut self, group: GroupId, topic: usize, partition: usize, offset: usize) {
        let record = self.topics[topic][partition][offset].clone();
        self.tally.handled += 1;
        let envelope = match codec::decode(&record) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.dead_letters
                    .push(format!("{group:?} {}[{partition}]@{offset}: undecodable: {e}", TOPIC_NAMES[topic]));
                return;
            }
        };
        let result = match group {
            GroupId::Accounts => self.sagas.step(&envelope).await.map(drop),
            GroupId::Orders => {
                let delivery = Delivery {
                    topic: TOPIC_NAMES[topic].to_owned(),
                    partition: partition as i32,
                    offset: offset as i64,
                    record,
                };
                Handler::handle(&mut self.payments, &envelope, &delivery).await
            }
        };
        if let Err(e) = result {
            self.dead_letters.push(format!(
                "{group:?} {}[{partition}]@{offset} {} of {}: {e}",
                TOPIC_NAMES[topic], envelope.event_type, envelope.subject
            ));
        }
    }

    /// Handles records `from..to` of the group's `cursor`.
    async fn deliver_range(&mut self, group: GroupId, cursor: usize, from: usize, to: usize) {
        let Cursor { topic, partition, .. } = self.group(group).cursors[cursor];
        for offset in from..to {
            self.deliver(group, topic, partition, offset).await;
        }
    }

    fn backlog(&self, group: GroupId, cursor: usize) -> usize {
        let c = &self.group(group).cursors[cursor];
        self.topics[c.topic][c.partition].len() - c.handled
    }

    async fn act(&mut self, action: &Action) -> Outcome {
        self.tally.actions += 1;
        match action {
            Action::Open { usd, cents } => self.open_customer(*usd, *cents).await?,
            Action::Deposit { account, cents } => {
                let id = self.customer(*account);
                let amount = money(*cents, self.currencies[&id]);
                self.account(&id, AccountCommand::Deposit { amount, description: "top-up".into() }).await;
            }
            Action::Place { customer, usd, items, confirm, pay_from } => {
                let customer_id = self.party(*customer);
                let payment_account_id = pay_from.map(|p| self.party(p));
                self.place(customer_id, currency(*usd), items, *confirm, payment_account_id).await?;
            }
            Action::Rush { customer, count } => {
                let customer_id = self.customer(*customer);
                for k in 0..*count {
                    let items = [(1, 1 + k as u64)];
                    self.place(customer_id.clone(), Currency::CNY, &items, true, None).await?;
                }
            }
            Action::Cancel { order } => {
                let open = [OrderStatus::Pending, OrderStatus::Confirmed, OrderStatus::Paid];
                if let Some(id) = self.pick_order(*order, &open).await? {
                    self.order(&id, OrderCommand::Cancel { reason: "changed my mind".into() }).await;
                }
            }
            Action::Ship { order } => {
                if let Some(id) = self.pick_order(*order, &[OrderStatus::Paid]).await? {
                    let ship = OrderCommand::Ship { shipping_address: "北京市朝阳区xxx街道xxx号".into() };
                    self.order(&id, ship).await;
                }
            }
            Action::MarkDelivered { order } => {
                if let Some(id) = self.pick_order(*order, &[OrderStatus::Shipped]).await? {
                    self.order(&id, OrderCommand::Deliver).await;
                }
            }
            Action::Transfer { from, to, cents } => {
                let (from, to) = (self.customer(*from), self.party(*to));
                if from != to {
                    self.transfers += 1;
                    let command = AccountCommand::Transfer {
                        transfer_id: format!("t{}", self.transfers),
                        target_account_id: to,
                        amount: money(*cents, self.currencies[&from]),
                        description: "random".into(),
                    };
                    self.account(&from, command).await;
                }
            }
            Action::Freeze { who } => {
                let id = self.party(*who);
                self.account(&id, AccountCommand::Freeze { reason: "suspicious".into() }).await;
            }
            Action::Unfreeze { who } => {
                let id = self.party(*who);
                self.account(&id, AccountCommand::Unfreeze).await;
            }
            Action::Close { account } => {
                let id = self.customer(*account);
                let balance = self.accounts.load(&id).await.map_err(|e| format!("load {id}: {e}"))?;
                if let Some(amount) = balance.state().balance_money().filter(|m| !m.amount.is_zero()) {
                    self.account(&id, AccountCommand::Withdraw { amount, description: "closing".into() }).await;
                }
                self.account(&id, AccountCommand::Close).await;
            }
            Action::Consume { group, source, count } => {
                self.relay().await?;
                let waiting: Vec<usize> =
                    (0..self.group(*group).cursors.len()).filter(|&c| self.backlog(*group, c) > 0).collect();
                if !waiting.is_empty() {
                    let cursor = waiting[source % waiting.len()];
                    let from = self.group(*group).cursors[cursor].handled;
                    let to = from + (*count).min(self.backlog(*group, cursor));
                    self.deliver_range(*group, cursor, from, to).await;
                    self.group_mut(*group).cursors[cursor].handled = to;
                }
            }
            Action::Duplicate { group, source, count } => {
                let handled: Vec<usize> = (0..self.group(*group).cursors.len())
                    .filter(|&c| self.group(*group).cursors[c].handled > 0)
                    .collect();
                if !handled.is_empty() {
                    let cursor = handled[source % handled.len()];
                    let to = self.group(*group).cursors[cursor].handled;
                    let from = to.saturating_sub(*count);
                    self.tally.duplicated += (to - from) as u64;
                    self.deliver_range(*group, cursor, from, to).await;
                }
            }
            Action::Commit { group } => {
                for c in &mut self.group_mut(*group).cursors {
                    c.committed = c.handled;
                }
            }
            Action::Restart { group } => {
                self.tally.restarts += 1;
                for c in &mut self.group_mut(*group).cursors {
                    c.handled = c.committed;
                }
            }
            Action::Replay { group } => {
                self.tally.replays += 1;
                for c in &mut self.group_mut(*group).cursors {
                    c.handled = 0;
                    c.committed = 0;
                }
            }
        }
        self.check_conservation(&format!("{action:?}")).await
    }

    /// One of the orders whose status is one of `statuses`.
    async fn pick_order(&mut self, i: usize, statuses: &[OrderStatus]) -> Outcome<Option<String>> {
        let store = Arc::clone(self.orders.store());
        loop {
            let page = store.read_all(self.statuses_next, 1024).await.map_err(|e| format!("read_all: {e}"))?;
            let Some(last) = page.last() else { break };
            self.statuses_next = last.position + 1;
            for recorded in &page {
                let event = recorded.envelope.decode::<OrderEvent>().map_err(|e| format!("decode: {e}"))?;
                let status = match event {
                    OrderEvent::OrderCreated { .. } => OrderStatus::Pending,
                    OrderEvent::OrderConfirmed { .. } => OrderStatus::Confirmed,
                    OrderEvent::OrderPaid { .. } => OrderStatus::Paid,
                    OrderEvent::OrderShipped { .. } => OrderStatus::Shipped,
                    OrderEvent::OrderDelivered {} => OrderStatus::Delivered,
                    OrderEvent::OrderPaymentRejected { .. } | OrderEvent::OrderCancelled { .. } => {
                        OrderStatus::Cancelled
                    }
                    OrderEvent::OrderItemAdded { .. } | OrderEvent::OrderRefunded { .. } => continue,
                };
                self.statuses.insert(recorded.envelope.subject.clone(), status);
            }
        }
        let candidates: Vec<&String> =
            self.placed.iter().filter(|id| self.statuses.get(*id).is_some_and(|s| statuses.contains(s))).collect();
        Ok((!candidates.is_empty()).then(|| candidates[i % candidates.len()].clone()))
    }

    /// Relays and delivers everything to both groups, committing as it
    /// goes, until nothing new is appended.
    async fn drain(&mut self, what: &str) -> Outcome {
        for _ in 0..MAX_DRAIN_ROUNDS {
            self.relay().await?;
            let mut progressed = false;
            for group in [GroupId::Accounts, GroupId::Orders] {
                for cursor in 0..self.group(group).cursors.len() {
                    let from = self.group(group).cursors[cursor].handled;
                    let to = from + self.backlog(group, cursor);
                    if to > from {
                        progressed = true;
                        self.deliver_range(group, cursor, from, to).await;
                    }
                    let c = &mut self.group_mut(group).cursors[cursor];
                    c.handled = to;
                    c.committed = to;
                }
            }
            self.check_conservation(what).await?;
            if !progressed {
                return Ok(());
            }
        }
        Err(format!("{what}: the sagas did not settle in {MAX_DRAIN_ROUNDS} rounds"))
    }

    async fn heads(&self) -> Outcome<(u64, u64)> {
        let orders = self.orders.store().head_position().await.map_err(|e| e.to_string())?;
        let accounts = self.accounts_store.head_position().await.map_err(|e| e.to_string())?;
        Ok((orders, accounts))
    }
}

async fn read_log(store: &Arc<dyn EventStore>) -> Outcome<Vec<RecordedEvent>> {
    let mut out = Vec::new();
    loop {
        let page = store.read_all(out.len() as u64 + 1, 4096).await.map_err(|e| format!("read_all: {e}"))?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// What the accounts log says about one order's payment.
#[derive(Debug, Default)]
struct PaymentTrail {
    payment_debits: u32,
    captured: u32,
    rejected: u32,
    refund_requested: u32,
    refund_debits: u32,
    refunds_issued: u32,
    refunds_failed: u32,
}

/// What the accounts log says about one transfer id.
#[derive(Debug, Default)]
struct TransferTrail {
    debited: u32,
    credited: u32,
    paid_back: u32,
}

/// The end state: every check of the module docs.
async fn check_end(world: &mut World) -> Outcome {
    let audit = audit(&world.accounts).await.map_err(|e| format!("audit: {e}"))?;
    if !audit.money_conserved {
        return Err(format!("money not conserved: {audit:?}"));
    }
    for (currency, totals) in &audit.currencies {
        if !totals.in_flight.is_zero() {
            return Err(format!("{currency}: {} still in flight after draining: {audit:?}", totals.in_flight));
        }
    }
    if !world.dead_letters.is_empty() {
        return Err(format!("dead-lettered records: {:#?}", world.dead_letters));
    }

    let mut transfers: BTreeMap<String, TransferTrail> = BTreeMap::new();
    let mut payments: BTreeMap<String, PaymentTrail> = BTreeMap::new();
    let tally = &mut world.tally;
    for recorded in read_log(&world.accounts_store).await? {
        tally.longest_account_stream = tally.longest_account_stream.max(recorded.version);
        let event = recorded.envelope.decode::<AccountEvent>().map_err(|e| format!("decode: {e}"))?;
        let order_of = |purpose: &TransferPurpose| match purpose {
            TransferPurpose::Payment { order_id } | TransferPurpose::Refund { order_id } => Some(order_id.clone()),
            TransferPurpose::Transfer => None,
        };
        match &event {
            AccountEvent::MoneyTransferredOut { transfer_id, purpose, .. } => {
                transfers.entry(transfer_id.clone()).or_default().debited += 1;
                if let Some(order) = order_of(purpose) {
                    let trail = payments.entry(order).or_default();
                    match purpose {
                        TransferPurpose::Payment { .. } => trail.payment_debits += 1,
                        _ => trail.refund_debits += 1,
                    }
                }
            }
            AccountEvent::MoneyTransferredIn { transfer_id, purpose, .. } => {
                transfers.entry(transfer_id.clone()).or_default().credited += 1;
                if *purpose == TransferPurpose::Transfer {
                    tally.transfers_completed += 1;
                }
            }
            AccountEvent::TransferFailed { reason, .. } => {
                *tally.compensations.entry(reason.as_str().to_owned()).or_default() += 1;
            }
            AccountEvent::TransferRefunded { transfer_id, .. } => {
                transfers.entry(transfer_id.clone()).or_default().paid_back += 1;
            }
            AccountEvent::PaymentCaptured { order_id, .. } => {
                tally.payments_captured += 1;
                payments.entry(order_id.clone()).or_default().captured += 1;
            }
            AccountEvent::PaymentRejected { order_id, reason, .. } => {
                *tally.payments_rejected.entry(reason.as_str().to_owned()).or_default() += 1;
                payments.entry(order_id.clone()).or_default().rejected += 1;
            }
            AccountEvent::RefundRequested { order_id, .. } => {
                payments.entry(order_id.clone()).or_default().refund_requested += 1;
            }
            AccountEvent::RefundIssued { order_id, .. } => {
                tally.refunds_issued += 1;
                payments.entry(order_id.clone()).or_default().refunds_issued += 1;
            }
            AccountEvent::RefundFailed { order_id, reason, .. } => {
                // The merchant never spends (no transfer, withdrawal or
                // closure here), so it can always pay a refund back.
                if *reason == RejectionReason::InsufficientFunds {
                    return Err(format!("the refund of {order_id} failed for lack of funds"));
                }
                *tally.refunds_failed.entry(reason.as_str().to_owned()).or_default() += 1;
                payments.entry(order_id.clone()).or_default().refunds_failed += 1;
            }
            _ => {}
        }
    }
    for (id, t) in &transfers {
        if t.debited != 1 || t.credited + t.paid_back != 1 {
            return Err(format!("transfer {id} did not end exactly once: {t:?}"));
        }
    }

    let mut confirmed = BTreeSet::new();
    for recorded in read_log(world.orders.store()).await? {
        if let Ok(OrderEvent::OrderConfirmed { .. }) = recorded.envelope.decode::<OrderEvent>() {
            confirmed.insert(recorded.envelope.subject.clone());
        }
    }
    let mut by_customer: BTreeMap<String, BTreeMap<String, OrderStatus>> = BTreeMap::new();
    let empty = PaymentTrail::default();
    for id in &world.placed {
        let order = world
            .orders
            .get_by_id(id)
            .await
            .map_err(|e| format!("load {id}: {e}"))?
            .ok_or_else(|| format!("order {id} is gone"))?;
        let state = order.state();
        let status = state.status();
        *tally.orders_by_status.entry(status.as_str().to_owned()).or_default() += 1;
        let customer = state.customer().map(|c| c.customer_id().to_owned()).unwrap_or_default();
        by_customer.entry(customer).or_default().insert(id.clone(), status);
        let p = payments.get(id).unwrap_or(&empty);
        let fail = |what: &str| Err(format!("order {id} ({status}, {state:?}): {what}: {p:?}"));
        let once = [p.payment_debits, p.captured, p.rejected, p.refund_requested, p.refund_debits];
        if once.iter().any(|n| *n > 1) || p.refunds_issued > 1 || p.refunds_failed > 1 {
            return fail("a payment step happened twice");
        }
        let was_confirmed = confirmed.contains(id);
        if p.captured + p.rejected != u32::from(was_confirmed) {
            return fail("a confirmed order needs exactly one payment outcome, any other none");
        }
        if p.captured > p.payment_debits {
            return fail("captured without a debit");
        }
        match status {
            OrderStatus::Confirmed => return fail("stuck confirmed"),
            OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered if p.captured != 1 => {
                return fail("paid without a capture");
            }
            _ => {}
        }
        if p.rejected == 1 && status != OrderStatus::Cancelled {
            return fail("payment rejected but the order is not cancelled");
        }
        let cancelled_after_capture = p.captured == 1 && status == OrderStatus::Cancelled;
        if cancelled_after_capture {
            tally.cancelled_after_capture += 1;
            if p.refunds_issued + p.refunds_failed != 1 {
                return fail("cancelled after capture: needs exactly one refund outcome");
            }
            let refunded = state.refunded_amount();
            if (p.refunds_issued == 1) != (refunded.is_some() && refunded == state.total()) {
                return fail("the order's refund does not match the accounts' refund");
            }
        } else if p.refund_requested + p.refund_debits + p.refunds_issued + p.refunds_failed > 0 && p.captured == 1 {
            return fail("refund of an order that was not cancelled");
        } else if p.captured == 0 && (p.refund_debits + p.refunds_issued > 0 || state.refunded_amount().is_some()) {
            return fail("refund of a payment that was never captured");
        }
    }
    for (customer, expected) in &by_customer {
        let rows = world.orders.find_by_customer(customer).await.map_err(|e| format!("read model: {e}"))?;
        let seen: BTreeMap<String, OrderStatus> = rows.into_iter().map(|r| (r.order_id, r.status)).collect();
        if &seen != expected {
            return Err(format!("read model of {customer}: {seen:?}, the orders say {expected:?}"));
        }
    }
    Ok(())
}

async fn run(actions: &[Action]) -> Outcome<Tally> {
    let mut world = World::new().await?;
    for (i, action) in actions.iter().enumerate() {
        world.act(action).await.map_err(|e| format!("action {i} {action:?}: {e}"))?;
    }
    world.drain("the final drain").await?;
    check_end(&mut world).await?;
    // Both topics again from offset 0, as fresh groups: nothing may change.
    let before = world.heads().await?;
    for group in [GroupId::Accounts, GroupId::Orders] {
        for c in &mut world.group_mut(group).cursors {
            c.handled = 0;
            c.committed = 0;
        }
    }
    world.drain("the replay from offset 0").await?;
    let tally = world.tally.clone();
    check_end(&mut world).await.map_err(|e| format!("after the replay from offset 0: {e}"))?;
    world.tally = tally;
    let after = world.heads().await?;
    if before != after {
        return Err(format!("the replay from offset 0 appended: (orders, accounts) heads {before:?} -> {after:?}"));
    }
    Ok(world.tally)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn sagas_end_and_conserve_money_under_duplicates_and_restarts() {
    let seed = env_or("SAGA_PROPERTIES_SEED", SEED);
    let cases = env_or("SAGA_PROPERTIES_CASES", CASES);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        // A failing run of 250 actions takes a while to shrink; a minute is enough.
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]));
    let total = RefCell::new(Tally::default());
    let started = Instant::now();
    let strategy = prop::collection::vec(action(), ACTIONS);
    // Shrinking may end at another failure than the first: keep that one.
    let first_failure = RefCell::new(None);
    let result = runner.run(&strategy, |actions| {
        let tally = runtime.block_on(run(&actions)).map_err(|e| {
            first_failure.borrow_mut().get_or_insert_with(|| format!("{e} (in a run of {} actions)", actions.len()));
            TestCaseError::fail(e)
        })?;
        total.borrow_mut().add(&tally);
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, actions)) => {
            let mut listing = String::new();
            for (i, a) in actions.iter().enumerate() {
                let _ = writeln!(listing, "  {i:3}: {a:?}");
            }
            let first = first_failure.borrow().clone().unwrap_or_default();
            panic!("seed {seed}: {reason}\nminimal actions:\n{listing}first failure: {first}");
        }
        Err(e) => panic!("seed {seed}: {e}"),
    }
    let t = total.into_inner();
    eprintln!("saga properties: {cases} cases, seed {seed}, {:.1?}: {t:#?}", started.elapsed());
    // The generator must reach every kind of saga ending, or the checks
    // above proved little.
    let reached = [
        ("a completed transfer", t.transfers_completed),
        ("a captured payment", t.payments_captured),
        ("a refund", t.refunds_issued),
        ("a cancellation after capture", t.cancelled_after_capture),
        ("a duplicate", t.duplicated),
        ("a restart", t.restarts),
        ("a replay", t.replays),
    ];
    for (what, n) in reached {
        assert!(n > 0, "no run reached {what}: {t:#?}");
    }
    for reason in ["account_not_found", "account_frozen", "account_closed", "currency_mismatch"] {
        assert!(t.compensations.get(reason).is_some_and(|n| *n > 0), "no transfer compensated for {reason}: {t:#?}");
    }
    assert!(t.payments_rejected.contains_key("insufficient_funds"), "no payment rejected for lack of funds: {t:#?}");
}
