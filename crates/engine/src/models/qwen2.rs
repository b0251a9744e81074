//! Qwen2 / Qwen2.5 (Qwen Team 2024, "Qwen2 Technical Report", arXiv:2407.10671). Reference implementation:
//! Hugging Face `transformers/models/qwen2/modeling_qwen2.py`; GGUF layout: llama.cpp `src/models/qwen2.cpp`.
//! Differs from Llama by biases on the Q/K/V projections, a large RoPE base and (small models) tied embeddings;
//! RoPE is `rotate_half` (NeoX) in both formats.

use candle_core::Tensor;
use serde::Deserialize;

use crate::batch::StepBatch;
use crate::config::{ArchDefaults, Architecture, HfDecoderConfig, ModelConfig};
use crate::error::Result;
use crate::kv_cache::KvCache;
use crate::model::{CausalLm, DenseDecoder};
use crate::weights::Weights;

/// `config.json` of a `Qwen2ForCausalLM` checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen2Config {
    /// The fields all Llama-layout decoders share.
    #[serde(flatten)]
    pub base: HfDecoderConfig,
}

impl Qwen2Config {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<Qwen2Config> {
        HfDecoderConfig::parse(text)
    }

    /// The engine's configuration.
    pub fn into_config(self) -> Result<ModelConfig> {
        self.base.to_model_config(&ArchDefaults {
            arch: Architecture::Qwen2,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            max_position: 32_768,
            attention_bias: true,
        })
    }
}

/// A Qwen2 model.
#[derive(Debug, Clone)]
pub struct Qwen2 {
    decoder: DenseDecoder,
}

impl Qwen2 {
    /// Loads the weights for `cfg`.
    pub fn load(w: &Weights, cfg: ModelConfig) -> Result<Qwen2> {
        Ok(Qwen2 { decoder: DenseDecoder::load(w, cfg)? })
    }
}

impl CausalLm for Qwen2 {
    fn config(&self) -> &ModelConfig {
        self.decoder.config()
    }

    fn forward(&self, batch: &StepBatch, cache: &mut KvCache) -> Result<Option<Tensor>> {
        self.decoder.forward(batch, cache, None)
    }
}
