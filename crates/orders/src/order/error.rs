//! `OrderError`: every way the Order aggregate refuses a command (each of the
//! seed's `ValueError`s is one of these).

use domain_core::{Currency, Money};

use super::OrderStatus;

/// Why a command was refused. Nothing changes when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("the order does not exist (create it first)")]
    NotCreated,
    #[error("the order already exists")]
    AlreadyCreated,

    #[error("invalid customer id `{value}`: {reason}")]
    InvalidCustomerId { value: String, reason: &'static str },
    #[error("the customer's name is empty")]
    EmptyCustomerName,
    #[error("invalid email `{value}`: {reason}")]
    InvalidEmail { value: String, reason: &'static str },
    #[error("invalid phone `{value}`: {reason}")]
    InvalidPhone { value: String, reason: &'static str },

    #[error("the product id is empty")]
    EmptyProductId,
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    #[error("amount must be positive, got {0}")]
    NonPositiveAmount(Money),
    #[error("amount {amount} has more than {max_digits} decimal digits")]
    TooPrecise { amount: Money, max_digits: u32 },
    #[error("the order is in {order}, the amount in {given}")]
    CurrencyMismatch { order: Currency, given: Currency },
    #[error("the order total would overflow")]
    AmountOverflow,

    /// The seed's "Cannot add items to non-pending order", "Order cannot be
    /// confirmed" and their kin.
    #[error("cannot {action} an order that is {status}")]
    InvalidState { action: &'static str, status: OrderStatus },
    /// The seed's "Order must have items".
    #[error("the order has no items")]
    EmptyOrder,
    #[error("invalid payment account id `{value}`: {reason}")]
    InvalidPaymentAccount { value: String, reason: &'static str },
    #[error("a payment outcome arrived for an order that is not confirmed yet")]
    PaymentBeforeConfirmation,
    #[error("payment of {got} does not match the order total {expected}")]
    PaymentAmountMismatch { expected: Money, got: Money },
    #[error("the payment was already captured (the order is {status})")]
    PaymentAlreadyCaptured { status: OrderStatus },
    /// The seed shipped confirmed orders that nobody had paid for.
    #[error("only paid orders can be shipped (the order is {status})")]
    NotPaid { status: OrderStatus },
    #[error("a shipping address is required to ship")]
    EmptyShippingAddress,
    #[error("a reason is required")]
    EmptyReason,
}
