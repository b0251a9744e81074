//! Llama 2/3 (Touvron et al. 2023, "Llama 2: Open Foundation and Fine-Tuned Chat Models"; Meta, "The Llama 3
//! Herd of Models", 2024). Reference implementation: Hugging Face `transformers/models/llama/modeling_llama.py`;
//! GGUF layout: llama.cpp `src/models/llama.cpp` (Q/K rows are permuted by the converter, so GGUF files use
//! interleaved RoPE and HF checkpoints `rotate_half`).

use candle_core::Tensor;
use serde::Deserialize;

use crate::batch::StepBatch;
use crate::config::{ArchDefaults, Architecture, HfDecoderConfig, ModelConfig};
use crate::error::Result;
use crate::kv_cache::KvCache;
use crate::model::{CausalLm, DenseDecoder};
use crate::weights::Weights;

/// `config.json` of a `LlamaForCausalLM` checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    /// The fields all Llama-layout decoders share.
    #[serde(flatten)]
    pub base: HfDecoderConfig,
    /// Whether Q/K/V have biases (some Llama derivatives).
    #[serde(default)]
    pub attention_bias: bool,
}

impl LlamaConfig {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<LlamaConfig> {
        HfDecoderConfig::parse(text)
    }

    /// The engine's configuration.
    pub fn into_config(self) -> Result<ModelConfig> {
        self.base.to_model_config(&ArchDefaults {
            arch: Architecture::Llama,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            max_position: 4096,
            attention_bias: self.attention_bias,
        })
    }
}

/// A Llama model.
#[derive(Debug, Clone)]
pub struct Llama {
    decoder: DenseDecoder,
}

impl Llama {
    /// Loads the weights for `cfg`.
    pub fn load(w: &Weights, cfg: ModelConfig) -> Result<Llama> {
        Ok(Llama { decoder: DenseDecoder::load(w, cfg)? })
    }
}

impl CausalLm for Llama {
    fn config(&self) -> &ModelConfig {
        self.decoder.config()
    }

    fn forward(&self, batch: &StepBatch, cache: &mut KvCache) -> Result<Option<Tensor>> {
        self.decoder.forward(batch, cache, None)
    }
}
