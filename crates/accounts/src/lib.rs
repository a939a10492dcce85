//! Accounts bounded context (seed section 2.1).
//!
//! It will own: the event-sourced `Account` aggregate (open, deposit,
//! withdraw, transfer), money as `Decimal` with a currency, snapshots through
//! the event store, and paying for orders it hears about on `orders.events`.
//!
//! It must never: depend on another bounded context's crate, or hold money in
//! a float.
