//! finllm's inference engine: Transformer language models on the CPU, with no HTTP and no arguments.
//!
//! A private deployment lives or dies by inference cost, so this crate owns the whole path from a model file
//! to sampled tokens: GGUF and safetensors loading, the model's own tokenizer and chat template, a paged KV
//! cache written in place, a batched step API that advances many sequences at once (the server's scheduler
//! drives it), and sampling. The model code and the hot kernels (quantized matrix products, attention) are our
//! own; candle supplies tensors and the kernels for less common weight types.

pub mod attention;
pub mod batch;
pub mod catalog;
pub mod chat_template;
pub mod config;
pub mod constrain;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod kernels;
pub mod kv_cache;
pub mod layers;
mod mmap;
pub mod model;
pub mod models;
pub mod moe;
pub mod rope;
pub mod sampling;
pub mod tokenizer;
pub mod weights;
