//! One module per subcommand: its clap arguments and its `run` function.

pub mod config;
pub mod errors;
pub mod serve;
