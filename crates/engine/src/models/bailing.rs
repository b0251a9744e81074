//! Ant Group's Bailing (百灵) mixture-of-experts models, published openly as inclusionAI's Ling family:
//! BailingMoe v1 (Ling-lite, Ling-plus; Ling Team 2025, "Every FLOP Counts", arXiv:2503.05139) and BailingMoeV2
//! (Ling-mini-2.0, Ling-flash-2.0). Reference implementations: inclusionAI/Ling `modeling_bailing_moe.py` and
//! inclusionAI/Ling-V2 `modeling_bailing_moe_v2.py`; GGUF layout: llama.cpp `src/models/bailingmoe{,2}.cpp`.
//!
//! Both are pre-norm decoders with a fused `query_key_value` projection and sparse MoE MLPs plus shared experts.
//! v1 routes by softmax top-k and renormalises; its `norm_head` divides the output head by its L2 norm over
//! the vocabulary (folded in here at load; llama.cpp's converter folds it into the GGUF). v2 adds per-head
//! QK RMSNorm, RoPE on the first half of each head, a sigmoid router whose learned `expert_bias` only steers
//! selection, group-limited top-k, `routed_scaling_factor`, dense leading layers, and multi-token-prediction
//! layers that plain decoding skips. llama.cpp's converter splits v1's fused QKV into Q/K/V with Q/K permuted
//! for interleaved RoPE; v2 files keep the fused matrix and NeoX RoPE.

use candle_core::Tensor;
use serde::Deserialize;

use crate::batch::StepBatch;
use crate::config::{ArchDefaults, Architecture, Gating, HfDecoderConfig, ModelConfig, MoeConfig};
use crate::error::{EngineError, Result};
use crate::kv_cache::{KvCache, LayerKv};
use crate::layers::{Attention, Block, RmsNorm, StepContext, SwiGluMlp, add_assign};
use crate::model::{CausalLm, Decoder};
use crate::moe::{Routes, SparseMoe};
use crate::weights::{Linear, StackedLinear, Weights};

/// `config.json` of a `BailingMoeForCausalLM` or `BailingMoeV2ForCausalLM` checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct BailingMoeConfig {
    /// The fields all Llama-layout decoders share (`intermediate_size` is the dense layers' width).
    #[serde(flatten)]
    pub base: HfDecoderConfig,
    /// Routed experts per MoE layer.
    pub num_experts: usize,
    /// Experts per token.
    pub num_experts_per_tok: usize,
    /// Shared experts (fused into one MLP of `num_shared_experts * moe_intermediate_size`).
    #[serde(default)]
    pub num_shared_experts: Option<usize>,
    /// One expert's inner width.
    pub moe_intermediate_size: usize,
    /// Leading layers with a dense MLP.
    #[serde(default)]
    pub first_k_dense_replace: usize,
    /// Renormalise the chosen experts' weights (default true in both versions).
    #[serde(default = "yes")]
    pub norm_topk_prob: bool,
    /// v1: divide the output head by its L2 norm over the vocabulary.
    #[serde(default)]
    pub norm_head: bool,
    /// `softmax` (v1) or `sigmoid` (v2).
    #[serde(default)]
    pub score_function: Option<String>,
    /// Expert groups for group-limited routing.
    #[serde(default)]
    pub n_group: Option<usize>,
    /// Groups a token may use.
    #[serde(default)]
    pub topk_group: Option<usize>,
    /// Scale on the routed experts' weights.
    #[serde(default)]
    pub routed_scaling_factor: Option<f32>,
    /// Per-head QK RMSNorm (v2).
    #[serde(default)]
    pub use_qk_norm: bool,
    /// Bias on the fused QKV projection.
    #[serde(default)]
    pub use_qkv_bias: bool,
    /// Multi-token-prediction layers after the decoder (skipped for plain decoding).
    #[serde(default)]
    pub num_nextn_predict_layers: usize,
}

fn yes() -> bool {
    true
}

impl BailingMoeConfig {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<BailingMoeConfig> {
        HfDecoderConfig::parse(text)
    }

    /// The engine's configuration for `arch` (v1 or v2, from the checkpoint's class name).
    pub fn into_config(self, arch: Architecture) -> Result<ModelConfig> {
        let mut cfg = self.base.to_model_config(&ArchDefaults {
            arch,
            rms_norm_eps: 1e-6,
            rope_theta: 600_000.0,
            max_position: 32_768,
            attention_bias: self.use_qkv_bias,
        })?;
        let gating = match self.score_function.as_deref() {
            None | Some("softmax") => Gating::Softmax,
            Some("sigmoid") => Gating::Sigmoid,
            Some(other) => {
                return Err(EngineError::Config(format!("unsupported score_function `{other}`")));
            }
        };
        let n_groups = self.n_group.unwrap_or(1).max(1);
        cfg.moe = Some(MoeConfig {
            n_experts: self.num_experts,
            n_experts_used: self.num_experts_per_tok,
            n_shared_experts: self.num_shared_experts.unwrap_or(0),
            expert_intermediate_size: self.moe_intermediate_size,
            first_dense_layers: self.first_k_dense_replace,
            gating,
            n_groups,
            groups_used: self.topk_group.unwrap_or(n_groups).clamp(1, n_groups),
            norm_topk_prob: self.norm_topk_prob,
            routed_scaling_factor: self.routed_scaling_factor.unwrap_or(1.0),
        });
        cfg.qk_norm = self.use_qk_norm;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A layer's feed-forward part: dense for the leading layers, sparse after.
#[derive(Debug, Clone)]
enum FeedForward {
    Dense(SwiGluMlp),
    Moe(SparseMoe),
}

/// A Bailing decoder layer.
#[derive(Debug, Clone)]
pub struct BailingBlock {
    input_norm: RmsNorm,
    attn: Attention,
    post_attention_norm: RmsNorm,
    ffn: FeedForward,
}

impl BailingBlock {
    /// Loads layer `i` under HF names `model.layers.<i>.*`.
    pub fn load(w: &Weights, cfg: &ModelConfig, moe: &MoeConfig, i: usize) -> Result<BailingBlock> {
        let p = format!("model.layers.{i}");
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let (nh, nkv, hd) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
        let fused = format!("{p}.attention.query_key_value");
        let qkv = if w.contains(&format!("{fused}.weight")) {
            let widths = vec![nh * hd, nkv * hd, nkv * hd];
            let rows = widths.iter().sum();
            StackedLinear::fused(w.linear(&fused, rows, h, cfg.attention_bias)?, widths)?
        } else {
            // llama.cpp's v1 files: Q, K and V stored apart.
            let part = |name: &str, rows| {
                w.linear(&format!("{p}.self_attn.{name}"), rows, h, cfg.attention_bias)
            };
            StackedLinear::new(vec![
                part("q_proj", nh * hd)?,
                part("k_proj", nkv * hd)?,
                part("v_proj", nkv * hd)?,
            ])
        };
        let qk_norm = if cfg.qk_norm {
            let norm =
                |name: &str| RmsNorm::load(w, &format!("{p}.attention.{name}.weight"), hd, eps);
            Some((norm("query_layernorm")?, norm("key_layernorm")?))
        } else {
            None
        };
        let o = w.linear(&format!("{p}.attention.dense"), h, nh * hd, false)?;
        let ffn = if i < moe.first_dense_layers {
            FeedForward::Dense(SwiGluMlp::load(w, &format!("{p}.mlp"), h, cfg.intermediate_size)?)
        } else {
            FeedForward::Moe(SparseMoe::load(w, i, h, moe)?)
        };
        Ok(BailingBlock {
            input_norm: RmsNorm::load(w, &format!("{p}.input_layernorm.weight"), h, eps)?,
            attn: Attention::from_parts(qkv, o, qk_norm, cfg),
            post_attention_norm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm.weight"),
                h,
                eps,
            )?,
            ffn,
        })
    }

    /// The layer's router, when it is a MoE layer.
    pub fn moe_mut(&mut self) -> Option<&mut SparseMoe> {
        match &mut self.ffn {
            FeedForward::Moe(m) => Some(m),
            FeedForward::Dense(_) => None,
        }
    }
}

impl Block for BailingBlock {
    fn forward(
        &self,
        x: &mut [f32],
        step: &StepContext<'_>,
        kv: &mut LayerKv,
        routes: Option<&mut Routes>,
    ) -> Result<()> {
        let n = step.batch.tokens.len();
        let h = self.attn.forward(&self.input_norm.forward(x), step, kv)?;
        add_assign(x, &h);
        let normed = self.post_attention_norm.forward(x);
        let h = match &self.ffn {
            FeedForward::Dense(mlp) => mlp.forward(&normed, n)?,
            FeedForward::Moe(moe) => {
                if let Some(routes) = routes {
                    routes.push(moe.route(&normed, n)?);
                }
                moe.forward(&normed, n)?
            }
        };
        add_assign(x, &h);
        Ok(())
    }

    fn weight_bytes(&self) -> usize {
        self.attn.weight_bytes()
            + match &self.ffn {
                FeedForward::Dense(mlp) => mlp.weight_bytes(),
                FeedForward::Moe(moe) => moe.weight_bytes(),
            }
    }
}

/// A Bailing MoE model (v1 or v2).
#[derive(Debug, Clone)]
pub struct BailingMoe {
    decoder: Decoder<BailingBlock>,
}

impl BailingMoe {
    /// Loads the weights for `cfg`; `norm_head` divides the output head by its L2 norm over the vocabulary
    /// (Hugging Face v1 checkpoints that set it; GGUF files have it folded in).
    pub fn load(w: &Weights, mut cfg: ModelConfig, norm_head: bool) -> Result<BailingMoe> {
        // Multi-token-prediction layers (marked by `eh_proj`) are not part of the decoder. GGUF files already
        // leave them out of the count; Hugging Face checkpoints differ on whether `num_hidden_layers`
        // includes them, so trailing MTP layers are dropped here.
        while cfg.n_layers > 1
            && w.contains(&format!("model.layers.{}.eh_proj.weight", cfg.n_layers - 1))
        {
            cfg.n_layers -= 1;
        }
        cfg.validate()?;
        let moe = cfg.moe.clone().ok_or_else(|| {
            EngineError::Config(
                "a Bailing model needs expert counts in its configuration".to_owned(),
            )
        })?;
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed = w.embedding("model.word_embeddings.weight", v, h)?;
        let blocks = (0..cfg.n_layers)
            .map(|i| BailingBlock::load(w, &cfg, &moe, i))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(w, "model.norm.weight", h, cfg.rms_norm_eps)?;
        let head = if cfg.tie_embeddings && !w.contains("lm_head.weight") {
            embed.as_linear()
        } else if norm_head {
            let t = w.tensor("lm_head.weight", &[v, h])?;
            // Each hidden column gets unit norm over the vocabulary, with llama.cpp's converter's epsilon.
            let norms = (t.sqr()?.sum_keepdim(0)?.sqrt()? + 1e-7)?;
            Linear::from_tensor(t.broadcast_div(&norms)?)?
        } else {
            w.linear("lm_head", v, h, false)?
        };
        Ok(BailingMoe { decoder: Decoder::from_parts(cfg, embed, blocks, norm, head) })
    }

    /// Layer `i`'s MoE part, when it has one (to inspect or re-bias its router).
    pub fn moe_layer_mut(&mut self, i: usize) -> Option<&mut SparseMoe> {
        self.decoder.blocks_mut().get_mut(i).and_then(BailingBlock::moe_mut)
    }

    /// Bytes of weights the average decode step reads (attention, shared and `top-k` routed experts, head).
    pub fn weight_bytes_per_token(&self) -> usize {
        self.decoder.weight_bytes_per_token()
    }
}

impl CausalLm for BailingMoe {
    fn config(&self) -> &ModelConfig {
        self.decoder.config()
    }

    fn forward(&self, batch: &StepBatch, cache: &mut KvCache) -> Result<Option<Tensor>> {
        self.decoder.forward(batch, cache, None)
    }

    fn forward_traced(
        &self,
        batch: &StepBatch,
        cache: &mut KvCache,
        routes: &mut Routes,
    ) -> Result<Option<Tensor>> {
        self.decoder.forward(batch, cache, Some(routes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ling-mini-2.0's `config.json` (inclusionAI/Ling-mini-2.0), trimmed to the keys the engine reads.
    const LING_MINI_2: &str = r#"{"architectures": ["BailingMoeV2ForCausalLM"], "model_type": "bailing_moe",
        "vocab_size": 157184, "hidden_size": 2048, "intermediate_size": 5120, "num_hidden_layers": 20,
        "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 128, "rms_norm_eps": 1e-6,
        "rope_theta": 600000, "partial_rotary_factor": 0.5, "max_position_embeddings": 32768,
        "num_experts": 256, "num_experts_per_tok": 8, "num_shared_experts": 1, "moe_intermediate_size": 512,
        "first_k_dense_replace": 1, "norm_topk_prob": true, "score_function": "sigmoid", "n_group": 8,
        "topk_group": 4, "routed_scaling_factor": 2.5, "use_qk_norm": true, "use_qkv_bias": false,
        "num_nextn_predict_layers": 1, "tie_word_embeddings": false, "eos_token_id": 156892}"#;

    #[test]
    fn ling_mini_2_config_maps_every_routing_key() {
        let cfg = v2(LING_MINI_2).unwrap();
        assert_eq!((cfg.head_dim, cfg.rope.rotary_dim, cfg.n_layers), (128, 64, 20));
        assert!(cfg.qk_norm);
        let moe = cfg.moe.unwrap();
        assert_eq!(
            (moe.n_experts, moe.n_experts_used, moe.n_shared_experts, moe.expert_intermediate_size),
            (256, 8, 1, 512)
        );
        assert_eq!((moe.n_groups, moe.groups_used, moe.first_dense_layers), (8, 4, 1));
        assert_eq!((moe.gating, moe.routed_scaling_factor), (Gating::Sigmoid, 2.5));
    }

    fn v2(text: &str) -> Result<ModelConfig> {
        BailingMoeConfig::from_json(text)?.into_config(Architecture::BailingMoe2)
    }

    #[test]
    fn impossible_routing_is_a_config_error() {
        let bad = LING_MINI_2
            .replace("\"topk_group\": 4", "\"topk_group\": 0")
            .replace("\"num_experts_per_tok\": 8", "\"num_experts_per_tok\": 300");
        let err = v2(&bad).unwrap_err();
        assert!(err.to_string().contains("experts used"), "{err}");
        let groups = LING_MINI_2.replace("\"topk_group\": 4", "\"topk_group\": 0");
        // topk_group 0 is clamped to one group of 32 experts, which still holds 8.
        assert!(v2(&groups).is_ok());
        let sparse = LING_MINI_2
            .replace("\"topk_group\": 4", "\"topk_group\": 0")
            .replace("\"n_group\": 8", "\"n_group\": 128");
        let err = v2(&sparse).unwrap_err();
        assert!(err.to_string().contains("expert groups"), "{err}");
    }
}
