//! The `Order` aggregate (seed: `OrderAggregate`): pending → confirmed →
//! paid → shipped → delivered, or cancelled from pending, confirmed or paid.
//!
//! `handle` decides from the current state alone and mutates nothing;
//! `apply` folds a recorded fact into the state and cannot fail. Totals are
//! derived from the items, never stored beside them.

mod amount;
mod command;
mod customer;
mod error;
mod event;
#[cfg(test)]
mod tests;

use std::fmt;

use domain_core::{Aggregate, Currency, Money};
use serde::{Deserialize, Serialize};

pub(crate) use amount::at_minor_units;
use amount::check_amount;
pub use command::OrderCommand;
pub use customer::CustomerInfo;
pub(crate) use customer::{account_like_id, check_email};
pub use error::OrderError;
pub use event::OrderEvent;

/// Where an order is in its life (seed: `OrderStatus`, plus `paid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    #[default]
    Pending,
    Confirmed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    /// The seed's `status.value`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Nothing more happens to the order (a refund may still be recorded).
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an order (seed: `OrderItem`; its `total_price` is derived).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub product_id: String,
    pub quantity: u32,
    pub unit_price: Money,
}

impl OrderItem {
    /// `quantity × unit_price`, exact.
    pub fn total_price(&self) -> Result<Money, OrderError> {
        self.unit_price.checked_mul(self.quantity).map_err(|_| OrderError::AmountOverflow)
    }
}

/// The state of one order, rebuilt from its events (and snapshotted as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// `None` until `OrderCreated`.
    customer: Option<CustomerInfo>,
    currency: Option<Currency>,
    items: Vec<OrderItem>,
    status: OrderStatus,
    payment_account_id: Option<String>,
    paid: Option<Money>,
    shipping_address: Option<String>,
    cancellation_reason: Option<String>,
    refunded: Option<Money>,
}

impl Order {
    /// Whether `OrderCreated` happened.
    pub fn exists(&self) -> bool {
        self.customer.is_some()
    }

    pub fn customer(&self) -> Option<&CustomerInfo> {
        self.customer.as_ref()
    }

    pub fn currency(&self) -> Option<Currency> {
        self.currency
    }

    pub fn items(&self) -> &[OrderItem] {
        &self.items
    }

    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// The sum of the items, with the currency's minor-unit digits
    /// (`399.97`); `None` before the order exists.
    pub fn total(&self) -> Option<Money> {
        self.currency.and_then(|c| self.total_in(c).ok())
    }

    /// Set once confirmed: the account the payment is taken from.
    pub fn payment_account_id(&self) -> Option<&str> {
        self.payment_account_id.as_deref()
    }

    /// What accounts captured, once paid.
    pub fn paid_amount(&self) -> Option<Money> {
        self.paid
    }

    pub fn shipping_address(&self) -> Option<&str> {
        self.shipping_address.as_deref()
    }

    pub fn cancellation_reason(&self) -> Option<&str> {
        self.cancellation_reason.as_deref()
    }

    /// What accounts refunded after a cancellation.
    pub fn refunded_amount(&self) -> Option<Money> {
        self.refunded
    }

    fn total_in(&self, currency: Currency) -> Result<Money, OrderError> {
        let mut total = Money::zero(currency);
        for item in &self.items {
            total = total.checked_add(item.total_price()?).map_err(|_| OrderError::AmountOverflow)?;
        }
        Ok(at_minor_units(total))
    }

    fn created(&self) -> Result<(&CustomerInfo, Currency), OrderError> {
        match (&self.customer, self.currency) {
            (Some(customer), Some(currency)) => Ok((customer, currency)),
            _ => Err(OrderError::NotCreated),
        }
    }

    fn refuse(&self, action: &'static str) -> OrderError {
        OrderError::InvalidState { action, status: self.status }
    }

    fn add_item(
        &self,
        currency: Currency,
        product_id: String,
        quantity: u32,
        unit_price: Money,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if self.status != OrderStatus::Pending {
            return Err(self.refuse("add items to"));
        }
        let product_id = product_id.trim().to_owned();
        if product_id.is_empty() {
            return Err(OrderError::EmptyProductId);
        }
        if quantity == 0 {
            return Err(OrderError::ZeroQuantity);
        }
        if unit_price.currency != currency {
            return Err(OrderError::CurrencyMismatch { order: currency, given: unit_price.currency });
        }
        check_amount(unit_price)?;
        let line = unit_price.checked_mul(quantity).map_err(|_| OrderError::AmountOverflow)?;
        self.total_in(currency)?.checked_add(line).map_err(|_| OrderError::AmountOverflow)?;
        Ok(vec![OrderEvent::OrderItemAdded { product_id, quantity, unit_price }])
    }

    fn confirm(
        &self,
        customer: &CustomerInfo,
        currency: Currency,
        payment_account_id: Option<String>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if self.status != OrderStatus::Pending {
            return Err(self.refuse("confirm"));
        }
        if self.items.is_empty() {
            return Err(OrderError::EmptyOrder);
        }
        let payment_account_id = match payment_account_id {
            Some(id) => {
                account_like_id(id).map_err(|(value, reason)| OrderError::InvalidPaymentAccount { value, reason })?
            }
            None => customer.customer_id().to_owned(),
        };
        Ok(vec![OrderEvent::OrderConfirmed {
            customer_id: customer.customer_id().to_owned(),
            payment_account_id,
            total_amount: self.total_in(currency)?,
            item_count: u32::try_from(self.items.len()).unwrap_or(u32::MAX),
        }])
    }

    fn mark_paid(&self, currency: Currency, amount: Money) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::Pending => Err(OrderError::PaymentBeforeConfirmation),
            OrderStatus::Confirmed => {
                let expected = self.total_in(currency)?;
                if amount != expected {
                    return Err(OrderError::PaymentAmountMismatch { expected, got: amount });
                }
                Ok(vec![OrderEvent::OrderPaid { amount }])
            }
            // A repeat, or a capture that raced a cancellation: accounts
            // refunds that one when it reads `OrderCancelled`.
            OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Cancelled => Ok(vec![]),
        }
    }

    fn record_payment_rejected(&self, reason: String) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::Pending => Err(OrderError::PaymentBeforeConfirmation),
            OrderStatus::Confirmed => Ok(vec![OrderEvent::OrderPaymentRejected { reason }]),
            OrderStatus::Cancelled => Ok(vec![]),
            status @ (OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered) => {
                Err(OrderError::PaymentAlreadyCaptured { status })
            }
        }
    }

    fn ship(&self, shipping_address: String) -> Result<Vec<OrderEvent>, OrderError> {
        match self.status {
            OrderStatus::Paid => {}
            status @ (OrderStatus::Pending | OrderStatus::Confirmed) => return Err(OrderError::NotPaid { status }),
            OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Cancelled => return Err(self.refuse("ship")),
        }
        let shipping_address = shipping_address.trim().to_owned();
        if shipping_address.is_empty() {
            return Err(OrderError::EmptyShippingAddress);
        }
        Ok(vec![OrderEvent::OrderShipped { shipping_address }])
    }

    fn deliver(&self) -> Result<Vec<OrderEvent>, OrderError> {
        if self.status != OrderStatus::Shipped {
            return Err(self.refuse("deliver"));
        }
        Ok(vec![OrderEvent::OrderDelivered {}])
    }

    fn cancel(&self, customer: &CustomerInfo, reason: String) -> Result<Vec<OrderEvent>, OrderError> {
        if !matches!(self.status, OrderStatus::Pending | OrderStatus::Confirmed | OrderStatus::Paid) {
            return Err(self.refuse("cancel"));
        }
        let reason = reason.trim().to_owned();
        if reason.is_empty() {
            return Err(OrderError::EmptyReason);
        }
        Ok(vec![OrderEvent::OrderCancelled {
            reason,
            customer_id: customer.customer_id().to_owned(),
            payment_account_id: self.payment_account_id.clone(),
            was_paid: self.status == OrderStatus::Paid,
        }])
    }

    fn record_refund(&self, currency: Currency, amount: Money) -> Result<Vec<OrderEvent>, OrderError> {
        if self.status != OrderStatus::Cancelled {
            return Err(self.refuse("record a refund for"));
        }
        if self.refunded.is_some() {
            return Ok(vec![]);
        }
        if amount.currency != currency {
            return Err(OrderError::CurrencyMismatch { order: currency, given: amount.currency });
        }
        check_amount(amount)?;
        Ok(vec![OrderEvent::OrderRefunded { amount }])
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn handle(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        if let OrderCommand::Create { customer, currency } = command {
            if self.exists() {
                return Err(OrderError::AlreadyCreated);
            }
            return Ok(vec![OrderEvent::OrderCreated { customer, currency }]);
        }
        let (customer, currency) = self.created()?;
        match command {
            OrderCommand::Create { .. } => Err(OrderError::AlreadyCreated),
            OrderCommand::AddItem { product_id, quantity, unit_price } => {
                self.add_item(currency, product_id, quantity, unit_price)
            }
            OrderCommand::Confirm { payment_account_id } => self.confirm(customer, currency, payment_account_id),
            OrderCommand::MarkPaid { amount } => self.mark_paid(currency, amount),
            OrderCommand::RecordPaymentRejected { reason } => self.record_payment_rejected(reason),
            OrderCommand::Ship { shipping_address } => self.ship(shipping_address),
            OrderCommand::Deliver => self.deliver(),
            OrderCommand::Cancel { reason } => self.cancel(customer, reason),
            OrderCommand::RecordRefund { amount } => self.record_refund(currency, amount),
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderCreated { customer, currency } => {
                self.customer = Some(customer.clone());
                self.currency = Some(*currency);
                self.status = OrderStatus::Pending;
            }
            OrderEvent::OrderItemAdded { product_id, quantity, unit_price } => self.items.push(OrderItem {
                product_id: product_id.clone(),
                quantity: *quantity,
                unit_price: *unit_price,
            }),
            OrderEvent::OrderConfirmed { payment_account_id, .. } => {
                self.status = OrderStatus::Confirmed;
                self.payment_account_id = Some(payment_account_id.clone());
            }
            OrderEvent::OrderPaid { amount } => {
                self.status = OrderStatus::Paid;
                self.paid = Some(*amount);
            }
            OrderEvent::OrderPaymentRejected { reason } | OrderEvent::OrderCancelled { reason, .. } => {
                self.status = OrderStatus::Cancelled;
                self.cancellation_reason = Some(reason.clone());
            }
            OrderEvent::OrderShipped { shipping_address } => {
                self.status = OrderStatus::Shipped;
                self.shipping_address = Some(shipping_address.clone());
            }
            OrderEvent::OrderDelivered {} => self.status = OrderStatus::Delivered,
            OrderEvent::OrderRefunded { amount } => self.refunded = Some(*amount),
        }
    }
}
