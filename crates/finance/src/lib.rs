//! Exact financial tools for finllm's assistants (支小宝 for consumers, 支小助 for professionals).
//!
//! A language model is bad at arithmetic and has no fresh data, so every number the assistant states
//! about liquidity, rates, portfolios, allocations, suitability, loans or lender ratings comes from a
//! tool in this crate. The crate is pure computation: no HTTP, no model, no network, no files. Callers
//! (the CLI, the server) read files and pass their text in. Money is `rust_decimal::Decimal`;
//! statistics are `f64` but never leave as NaN. Every tool has a name, a description, a JSON schema and
//! a `run(Value) -> Result<Value, FinanceError>` entry point, collected in [`tools::registry`].

pub mod allocation;
pub mod calc;
pub mod credit;
mod error;
pub mod linalg;
pub mod liquidity;
pub mod portfolio;
pub mod prices;
pub mod rates;
pub mod rating;
pub mod stats;
pub mod suitability;
pub mod table;
pub mod tools;

pub use error::{FinanceError, Result};
