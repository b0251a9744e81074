//! Llama 2/3 (Touvron et al. 2023, "Llama 2: Open Foundation and Fine-Tuned Chat Models"; Meta, "The Llama 3
//! Herd of Models", 2024). Reference implementation: Hugging Face `transformers/models/llama/modeling_llama.py`;
//! GGUF layout: llama.cpp `src/models/llama.cpp` (Q/K rows are permuted by the converter, so GGUF files use
//! interleaved RoPE and HF checkpoints `rotate_half`).

use candle_core::Tensor;
use serde::Deserialize;

use crate::batch::StepBatch;
use crate::config::{
    Architecture, HfRopeScaling, HfTokenIds, ModelConfig, RopeConfig, RopeScaling, RopeStyle,
};
use crate::error::{EngineError, Result};
use crate::kv_cache::KvCache;
use crate::model::{CausalLm, DenseDecoder};
use crate::weights::Weights;

/// `config.json` of a `LlamaForCausalLM` checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// KV heads (defaults to the query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head width (defaults to hidden / heads).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    /// RoPE scaling (linear, YaRN, Llama 3).
    #[serde(default)]
    pub rope_scaling: Option<HfRopeScaling>,
    /// Context window.
    #[serde(default = "default_max_position")]
    pub max_position_embeddings: usize,
    /// Whether the output head is the embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Whether Q/K/V/O have biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// BOS token.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// EOS token(s).
    #[serde(default)]
    pub eos_token_id: Option<HfTokenIds>,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_theta() -> f32 {
    10_000.0
}

fn default_max_position() -> usize {
    4096
}

impl LlamaConfig {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<LlamaConfig> {
        serde_json::from_str(text).map_err(|e| EngineError::Config(format!("config.json: {e}")))
    }

    /// The engine's configuration.
    pub fn into_config(self) -> Result<ModelConfig> {
        let head_dim = self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1));
        let scaling = match &self.rope_scaling {
            Some(s) => s.to_scaling(self.max_position_embeddings)?,
            None => RopeScaling::None,
        };
        let cfg = ModelConfig {
            arch: Architecture::Llama,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            n_layers: self.num_hidden_layers,
            n_heads: self.num_attention_heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope: RopeConfig {
                theta: self.rope_theta,
                rotary_dim: head_dim,
                style: RopeStyle::NeoX,
                scaling,
            },
            max_position: self.max_position_embeddings,
            tie_embeddings: self.tie_word_embeddings,
            attention_bias: self.attention_bias,
            bos_token_id: self.bos_token_id,
            eos_token_ids: self.eos_token_id.map(|e| e.to_vec()).unwrap_or_default(),
        };
        cfg.validate()?;
        Ok(cfg)
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
        self.decoder.forward(batch, cache)
    }
}
