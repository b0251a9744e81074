//! One file per architecture, each following the same template: the `//!` cites the reference, a serde config
//! mirroring the Hugging Face `config.json`, and a public model implementing [`crate::model::CausalLm`].

pub mod bailing;
pub mod llama;
pub mod qwen2;
