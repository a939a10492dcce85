//! The byte-level pieces of the on-disk formats that the storage engines
//! (the embedded event store, the time-series engine) share: CRC-framed
//! records for append-only logs ([`frame`]), the exclusive lock on a data
//! directory ([`lock`]), LEB128 varints ([`varint`]) and a bounds-checked
//! reader that says where input ended or went wrong ([`ByteReader`]).
//!
//! It owns no format of its own and knows no engine: what a frame's kind
//! byte means, and what a record holds, is each engine's. It never panics
//! on input and never allocates for a read.

pub mod error;
pub mod frame;
pub mod lock;
pub mod reader;
pub mod varint;

pub use error::{Error, ReadError, Result};
pub use frame::{FrameWriter, Scan};
pub use lock::{DirLock, lock_dir};
pub use reader::ByteReader;
