//! `OrderEvent`: what an order records. The variant name is the wire name
//! (`orders.OrderConfirmed.v1`); the payloads are a contract with the
//! accounts context, which reads `OrderConfirmed` to charge and
//! `OrderCancelled` to refund.

use domain_core::{Currency, DomainEvent, Money};
use serde::{Deserialize, Serialize};

use super::CustomerInfo;

/// Every event of the orders context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The seed's data was `{customer_id}`; the whole customer travels now.
    OrderCreated {
        customer: CustomerInfo,
        currency: Currency,
    },
    OrderItemAdded {
        product_id: String,
        quantity: u32,
        unit_price: Money,
    },
    /// Accounts debits `payment_account_id` by `total_amount`.
    /// `item_count` is the number of item lines.
    OrderConfirmed {
        customer_id: String,
        payment_account_id: String,
        total_amount: Money,
        item_count: u32,
    },
    OrderPaid {
        amount: Money,
    },
    /// Accounts refused the payment; the order is cancelled with `reason`.
    OrderPaymentRejected {
        reason: String,
    },
    OrderShipped {
        shipping_address: String,
    },
    OrderDelivered {},
    /// `payment_account_id` is set once the order was confirmed: accounts
    /// refunds a payment it captured from that account.
    OrderCancelled {
        reason: String,
        customer_id: String,
        payment_account_id: Option<String>,
        was_paid: bool,
    },
    OrderRefunded {
        amount: Money,
    },
}

impl DomainEvent for OrderEvent {
    const CONTEXT: &'static str = "orders";
}
