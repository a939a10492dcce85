//! The commerce contexts of one process: orders and accounts, each on its
//! own event store, wired to one bus with their outbox relays and saga
//! consumers. The CLI, the demo, the benches and the integration tests all
//! run this one wiring.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use accounts::{AccountSagas, Accounts, SagaConfig};
use domain_core::AggregateRoot;
use domain_core::bus::topics;
use event_store::EventStore;
use orders::{EventSourcedOrders, Order, OrderCommand, OrderRepository, PaymentOutcomeHandler};

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

/// The orders context's embedded store and read model in `DIR/orders`.
pub fn open_orders(data: &Path) -> Result<EventSourcedOrders> {
    let dir = data.join("orders");
    std::fs::create_dir_all(&dir).map_err(crate::error::io(&dir))?;
    Ok(EventSourcedOrders::open_embedded(&dir)?)
}
