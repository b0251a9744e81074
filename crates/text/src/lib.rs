//! Text utilities shared by the guard and the knowledge pipeline: normalisation that undoes obfuscation,
//! bounded decoders that surface hidden payloads, and PII detection that validates what it finds.
//!
//! Everything here is pure, allocation-bounded and total: any input (empty, invalid UTF-8 through the
//! `*_bytes` functions, megabytes long, nested encodings) gets a defined result, never a panic.

pub mod decode;
pub mod mask;
pub mod normalize;
pub mod pii;
mod tables;
pub mod variants;

pub use decode::{Decoded, Encoding, decode_candidates};
pub use mask::{Masked, mask, redact, restore, strip_pii};
pub use normalize::{normalize, normalize_bytes};
pub use pii::{PiiKind, PiiSpan, detect_pii, valid_bank_card, valid_resident_id};
