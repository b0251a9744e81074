//! One module per subcommand: its clap arguments and its `run` function.

pub mod audit;
pub mod bench;
pub mod chat;
pub mod config;
pub mod errors;
pub mod eval;
pub mod finance;
pub mod generate;
pub mod guard;
pub mod kb;
pub mod keys;
pub mod models;
pub mod pull;
pub mod redteam;
pub mod serve;
