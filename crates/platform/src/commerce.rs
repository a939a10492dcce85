//! The commerce contexts of one process: orders and accounts, each on its
//! own event store, wired to one bus with their outbox relays and saga
//! consumers. The CLI, the demo, the benches and the integration tests all
//! run this one wiring.
//!
//! [`CommercePort`] is what the seed's scenarios need of the two contexts;
//! [`Commerce`] answers it in-process, `remote::RemoteCommerce` over the
//! HTTP APIs of `platform serve orders` and `platform serve accounts`, so
//! one scenario code runs against both.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use accounts::ledger::Audit;
use accounts::{Account, AccountCommand, AccountSagas, Accounts, SagaConfig};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain_core::bus::topics;
use domain_core::{Aggregate, AggregateRoot, EventType, Money};
use event_store::EventStore;
use orders::{EventSourcedOrders, Order, OrderCommand, OrderRepository, PaymentOutcomeHandler};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::node::{BusChoice, Node, SettleStats, open_store};

/// Consumer group of the accounts sagas.
pub const ACCOUNTS_GROUP: &str = "accounts.sagas";
/// Consumer group of the orders side of payment.
pub const ORDERS_GROUP: &str = "orders.payments";
/// Conflict retries of an order command.
const ORDER_RETRIES: u32 = 50;

/// Orders and accounts on one bus.
#[derive(Debug)]
pub struct Commerce {
    pub accounts: Accounts,
    pub orders: EventSourcedOrders,
    node: Node,
}

impl Commerce {
    /// Embedded stores in `DIR/orders` (with the orders read model) and
    /// `DIR/accounts`.
    pub async fn open(data: &Path, bus: BusChoice, config: SagaConfig) -> Result<Self> {
        let orders = open_orders(data)?;
        let accounts_store = open_store(data, "accounts")?;
        Self::on_node(orders, accounts_store, Node::connect(bus).await?, config).await
    }

    /// On a node connected already (a test's own bus, other stores).
    pub async fn on_node(
        orders: EventSourcedOrders,
        accounts_store: Arc<dyn EventStore>,
        mut node: Node,
        config: SagaConfig,
    ) -> Result<Self> {
        let accounts = Accounts::new(Arc::clone(&accounts_store));
        let orders_store = Arc::clone(orders.store());
        node.relay("orders", Arc::clone(&orders_store));
        node.relay("accounts", accounts_store);
        node.consume(ACCOUNTS_GROUP, &[topics::ACCOUNTS, topics::ORDERS], AccountSagas::new(accounts.clone(), config))
            .await?;
        node.consume(ORDERS_GROUP, &[topics::ACCOUNTS], PaymentOutcomeHandler::new(orders_store)).await?;
        Ok(Self { accounts, orders, node })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// Runs an order command (retried on fresh state after a conflict).
    pub async fn order(&self, id: &str, command: OrderCommand) -> Result<AggregateRoot<Order>> {
        Ok(self.orders.execute(id, command, None, ORDER_RETRIES).await?)
    }

    /// The order as its events say.
    pub async fn get_order(&self, id: &str) -> Result<AggregateRoot<Order>> {
        self.orders.get_by_id(id).await?.ok_or_else(|| Error::OrderNotFound(id.to_owned()))
    }

    /// Runs relays and consumers until the sagas started so far settled.
    pub async fn settle(&mut self, timeout: Duration) -> Result<SettleStats> {
        self.node.settle(timeout).await
    }

    pub async fn close(self) -> Result<()> {
        self.node.close().await
    }
}

/// One stored event of an aggregate, as the scenarios read it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub version: u64,
    pub time: DateTime<Utc>,
    pub event_type: EventType,
    pub data: Value,
}

impl Recorded {
    fn of(e: event_store::RecordedEvent) -> Self {
        Self { version: e.version, time: e.envelope.time, event_type: e.envelope.event_type, data: e.envelope.data }
    }
}

/// The aggregate as its recorded events say (a replay from the first).
pub fn replay<A: Aggregate>(id: &str, history: &[Recorded]) -> Result<AggregateRoot<A>> {
    let mut state = A::default();
    for e in history {
        let event: A::Event = domain_core::event::from_wire(&e.event_type, &e.data)?;
        state.apply(&event);
    }
    Ok(AggregateRoot::from_snapshot(id, state, history.last().map_or(0, |e| e.version)))
}

/// What the seed's commerce scenarios and the demo's workload need of the
/// orders and accounts contexts, wherever they run.
#[async_trait]
pub trait CommercePort: Send {
    /// Opens an account with a first balance (its currency is the account's).
    async fn open_account(&mut self, id: &str, holder: &str, initial: Money) -> Result<()>;
    /// Deposit, withdraw, freeze, unfreeze or close.
    async fn run_account(&mut self, id: &str, command: AccountCommand) -> Result<()>;
    /// Starts a transfer; `Ok(false)` when the accounts context refused it
    /// at once (a rule of the source account: funds, state, currency).
    async fn start_transfer(&mut self, from: &str, to: &str, amount: Money, description: &str) -> Result<bool>;
    /// Every stored event of the account, oldest first; empty if it was never opened.
    async fn account_history(&mut self, id: &str) -> Result<Vec<Recorded>>;
    /// The account as its events say (not opened: the default state).
    async fn load_account(&mut self, id: &str) -> Result<AggregateRoot<Account>> {
        let history = self.account_history(id).await?;
        replay(id, &history)
    }
    /// Runs an order command.
    async fn run_order(&mut self, id: &str, command: OrderCommand) -> Result<()>;
    /// Every stored event of the order, oldest first.
    async fn order_history(&mut self, id: &str) -> Result<Vec<Recorded>>;
    /// The order as its events say.
    async fn load_order(&mut self, id: &str) -> Result<AggregateRoot<Order>> {
        let history = self.order_history(id).await?;
        if history.is_empty() {
            return Err(Error::OrderNotFound(id.to_owned()));
        }
        replay(id, &history)
    }
    /// Waits until the sagas started so far have settled.
    async fn wait_settled(&mut self, timeout: Duration) -> Result<()>;
    /// The accounts ledger audit (balances, saga counts, conservation).
    async fn audit(&mut self) -> Result<Audit>;
}

#[async_trait]
impl CommercePort for Commerce {
    async fn open_account(&mut self, id: &str, holder: &str, initial: Money) -> Result<()> {
        self.accounts.open(id, holder, initial).await?;
        Ok(())
    }

    async fn run_account(&mut self, id: &str, command: AccountCommand) -> Result<()> {
        self.accounts.execute(id, command, None).await?;
        Ok(())
    }

    async fn start_transfer(&mut self, from: &str, to: &str, amount: Money, description: &str) -> Result<bool> {
        match self.accounts.transfer(from, to, amount, description).await {
            Ok(_) => Ok(true),
            Err(accounts::Error::Account(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn account_history(&mut self, id: &str) -> Result<Vec<Recorded>> {
        Ok(self.accounts.history(id).await?.into_iter().map(Recorded::of).collect())
    }

    async fn load_account(&mut self, id: &str) -> Result<AggregateRoot<Account>> {
        Ok(self.accounts.load(id).await?)
    }

    async fn run_order(&mut self, id: &str, command: OrderCommand) -> Result<()> {
        // Through the field: `Commerce` itself is not `Sync` (its node).
        self.orders.execute(id, command, None, ORDER_RETRIES).await?;
        Ok(())
    }

    async fn order_history(&mut self, id: &str) -> Result<Vec<Recorded>> {
        Ok(self.orders.history(id).await?.into_iter().map(Recorded::of).collect())
    }

    async fn load_order(&mut self, id: &str) -> Result<AggregateRoot<Order>> {
        self.orders.get_by_id(id).await?.ok_or_else(|| Error::OrderNotFound(id.to_owned()))
    }

    async fn wait_settled(&mut self, timeout: Duration) -> Result<()> {
        self.settle(timeout).await?;
        Ok(())
    }

    async fn audit(&mut self) -> Result<Audit> {
        Ok(accounts::ledger::audit(&self.accounts).await?)
    }
}

/// The orders context's embedded store and read model in `DIR/orders`.
pub fn open_orders(data: &Path) -> Result<EventSourcedOrders> {
    let dir = data.join("orders");
    std::fs::create_dir_all(&dir).map_err(crate::error::io(&dir))?;
    Ok(EventSourcedOrders::open_embedded(&dir)?)
}
