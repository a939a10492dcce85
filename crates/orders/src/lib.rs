//! Orders bounded context (seed section 1.1).
//!
//! It will own: the `Order` aggregate (create, add item, confirm, ship,
//! cancel), its commands and `orders.*` events, its own event-store directory
//! or schema, and the orders side of the payment saga.
//!
//! It must never: depend on another bounded context's crate; whatever it
//! learns about payments arrives as events on `accounts.events`.
