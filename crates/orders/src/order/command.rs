//! `OrderCommand`: what can be asked of an order. The last three arrive from
//! the payment saga (see [`crate::payments`]) and are idempotent.

use domain_core::{Currency, Money};

use super::CustomerInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Opens the order; all its amounts are in `currency`.
    Create {
        customer: CustomerInfo,
        currency: Currency,
    },
    AddItem {
        product_id: String,
        quantity: u32,
        unit_price: Money,
    },
    /// Fixes the items; the order is paid from `payment_account_id`, by
    /// default the account whose id is the customer id.
    Confirm {
        payment_account_id: Option<String>,
    },
    /// Accounts captured the payment.
    MarkPaid {
        amount: Money,
    },
    /// Accounts refused the payment; the order is cancelled.
    RecordPaymentRejected {
        reason: String,
    },
    Ship {
        shipping_address: String,
    },
    Deliver,
    Cancel {
        reason: String,
    },
    /// Accounts refunded a cancelled order.
    RecordRefund {
        amount: Money,
    },
}
