//! Orders bounded context (seed section 1.1: `OrderAggregate`,
//! `OrderRepository`, `demo_domain_driven_modeling`).
//!
//! It owns:
//! - the [`Order`] aggregate (pending → confirmed → paid → shipped →
//!   delivered, or cancelled from pending, confirmed or paid), its
//!   [`OrderCommand`]s, its `orders.*` [`OrderEvent`]s and every reason it
//!   refuses a command ([`OrderError`]); money is [`domain_core::Money`],
//!   totals are derived from the items, and nothing ships unpaid;
//! - its own event store (a directory of its own, `--data DIR/orders`, or a
//!   schema of its own) behind the seed's [`OrderRepository`] port,
//!   implemented by [`EventSourcedOrders`] (snapshots every 100 versions);
//! - the read side (CQRS): [`OrderSummary`] rows by customer in a
//!   [`ReadModel`] ([`MemoryReadModel`], [`RedbReadModel`] in
//!   `orders.redb`, [`PostgresReadModel`] in a schema of its own or beside
//!   the event store in the orders schema), kept by the [`Projector`] from
//!   the store's global log with its checkpoint in the same transaction as
//!   the rows (on PostgreSQL under a lock on the checkpoint row, so
//!   projectors racing on one schema apply each event once);
//!   `find_by_customer` answers from there, with summaries, not aggregates;
//! - customer master data ([`customers`]): each customer an event-sourced
//!   `Customer` whose events carry the whole profile, and the
//!   `customer_data_v1` data product (ODCS contract and product document)
//!   that announces them on `mesh.events` for the registry;
//! - the orders side of the payment saga: [`PaymentOutcomeHandler`] reads
//!   `PaymentCaptured`, `PaymentRejected` and `RefundIssued` from
//!   `accounts.events` with this crate's own tolerant types.
//!
//! It must never: depend on another bounded context's crate (whatever it
//! learns about payments arrives as events on `accounts.events`), hold money
//! in a float, ship an order that was not paid, or let a stale writer
//! overwrite newer events.
//!
//! The seed's order, in memory (in production `MarkPaid` arrives from
//! accounts and the events go to the store through [`OrderRepository::save`]):
//!
//! ```
//! use domain_core::{AggregateRoot, Currency, Money};
//! use orders::{CustomerInfo, Order, OrderCommand, OrderEvent, OrderStatus};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cny = |amount: &str| -> Result<Money, rust_decimal::Error> { Ok(Money::new(amount.parse()?, Currency::CNY)) };
//! let customer = CustomerInfo::new("cust_123", "张三", "zhangsan@example.com", "13800138000")?;
//! let mut order = AggregateRoot::<Order>::new("order_001");
//! order.execute(OrderCommand::Create { customer, currency: Currency::CNY })?;
//! order.execute(OrderCommand::AddItem { product_id: "product_001".into(), quantity: 2, unit_price: cny("99.99")? })?;
//! order.execute(OrderCommand::AddItem { product_id: "product_002".into(), quantity: 1, unit_price: cny("199.99")? })?;
//! order.execute(OrderCommand::Confirm { payment_account_id: None })?;
//! let ship = OrderCommand::Ship { shipping_address: "北京市朝阳区xxx街道xxx号".into() };
//! assert!(order.execute(ship.clone()).is_err(), "not paid yet");
//! order.execute(OrderCommand::MarkPaid { amount: cny("399.97")? })?;
//! order.execute(ship)?;
//!
//! assert_eq!(order.state().status(), OrderStatus::Shipped);
//! assert_eq!(order.state().total().map(|t| t.amount.to_string()).as_deref(), Some("399.97"));
//! assert!(matches!(&order.uncommitted()[3], OrderEvent::OrderConfirmed { total_amount, .. } if *total_amount == cny("399.97")?));
//! assert_eq!(order.uncommitted().len(), 6);
//! # Ok(())
//! # }
//! ```

pub mod customers;
pub mod error;
pub mod order;
pub mod payments;
pub mod projector;
pub mod read_model;
pub mod repository;

pub use error::{Error, Result};
pub use order::{CustomerInfo, Order, OrderCommand, OrderError, OrderEvent, OrderItem, OrderStatus};
pub use payments::PaymentOutcomeHandler;
pub use projector::Projector;
pub use read_model::{
    DailyOrders, Generations, MemoryGenerations, MemoryReadModel, OrderGenerations, OrderSummary, PostgresGenerations,
    PostgresReadModel, ReadModel, RedbGenerations, RedbReadModel, ServingReadModel,
};
pub use repository::{EventSourcedOrders, OrderRepository};
