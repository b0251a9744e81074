//! 天鉴, the runtime guard: judges requests before the model and answers after it, with three verdicts
//! (safe, controversial, unsafe), the risk categories, intents and attack techniques behind each, and
//! the action the tenant's policy takes.
//!
//! Layers, cheapest first: normalisation and decoding (crate `text`), lexicons (Aho-Corasick), PII
//! detectors, a char-n-gram linear classifier trained in Rust (`train`), an optional LLM judge for
//! the uncertain band (`judge`), then the policy. The server
//! wires [`Guard::check_input`] / [`Guard::check_output`] / [`StreamModerator`] into its request path;
//! the CLI exposes check, scan, train and eval.

pub mod conversation;
pub mod dataset;
mod error;
pub mod eval;
pub mod frames;
pub mod guard;
pub mod injection;
pub mod judge;
pub mod lexicon;
pub mod model;
pub mod policy;
pub mod refusal;
pub mod reload;
pub mod stream;
pub mod taxonomy;
pub mod train;

pub use conversation::{Conversation, Turn};
pub use error::GuardError;
pub use guard::{Guard, Judgement, Verdict};
pub use judge::{Judge, JudgeStyle, JudgeVerdict, OpenAiJudge};
pub use policy::{Action, Policy, SharedPolicy};
pub use stream::{StreamDecision, StreamModerator};
pub use taxonomy::Taxonomy;

/// Where `finllm guard train` writes the model in a source checkout (the file committed with the crate).
pub const DEFAULT_MODEL_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/model/guard.bin");

/// The committed model, compiled into the binary so a deployed `finllm` needs no source tree.
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../model/guard.bin");
