//! The vocabulary every finllm crate shares.
//!
//! This crate exists so that crates on the same layer (engine, guard, knowledge, finance) can agree on
//! words without depending on each other: one error-code table that maps every failure to an HTTP status
//! and a stable machine-readable code, and a few small value types (ids, timestamps, money).
//! It depends only on serialisation and value crates, never on I/O, HTTP or async runtimes.

mod error_code;
mod id;
mod money;
mod timestamp;

pub use error_code::{Code, ErrorCode, ErrorType};
pub use id::{Id, ParseIdError};
pub use money::{Currency, Money, MoneyError};
pub use timestamp::{Timestamp, TimestampError};
