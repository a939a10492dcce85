//! Shared kernel of the platform: the vocabulary every bounded context speaks.
//!
//! It owns: the [`Aggregate`] model (pure command handlers and event
//! appliers), CloudEvents [`Envelope`]s with their JSON and Kafka-header
//! codecs, versioned [`EventType`] names and the [`UpcasterRegistry`],
//! [`Money`], the [`bus::EventBus`] port with its retry/dead-letter consumer
//! loop and an in-process adapter with real partition and consumer-group
//! semantics, plus test kits (aggregate given/when/then and the bus contract
//! suite every adapter must pass).
//!
//! It must never: do I/O (files, sockets, databases; the in-process bus is
//! memory only), know any bounded context's concrete events, or depend on a
//! context crate.

pub mod aggregate;
pub mod bus;
pub mod codec;
pub mod envelope;
pub mod error;
pub mod event;
pub mod event_type;
pub mod json;
pub mod money;
pub mod seeded;
pub mod testkit;
pub mod upcast;

pub use aggregate::{Aggregate, AggregateRoot};
pub use envelope::Envelope;
pub use error::{Error, Result};
pub use event::DomainEvent;
pub use event_type::EventType;
pub use money::{Currency, Money};
pub use upcast::UpcasterRegistry;
