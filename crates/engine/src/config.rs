//! The architecture-independent description of a decoder-only Transformer that the shared layers, the KV
//! cache and the scheduler need. Each model file fills it from its Hugging Face `config.json` struct; GGUF
//! files fill it from their `<arch>.*` metadata keys, so both formats meet in one type.

use candle_core::quantized::gguf_file::Value;
use serde::Deserialize;

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;

/// Which architecture a model is (decides the model file that runs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3 family (`LlamaForCausalLM`, GGUF `llama`).
    Llama,
    /// Qwen2/2.5 (`Qwen2ForCausalLM`, GGUF `qwen2`): QKV bias, often tied embeddings.
    Qwen2,
    /// Ant's Bailing MoE v1 (`BailingMoeForCausalLM`, GGUF `bailingmoe`: Ling-lite, Ling-plus).
    BailingMoe,
    /// Ant's Bailing MoE v2 (`BailingMoeV2ForCausalLM`, GGUF `bailingmoe2`: Ling-mini-2.0, Ling-flash-2.0).
    BailingMoe2,
}

impl Architecture {
    /// Maps a GGUF `general.architecture` or HF `model_type` name.
    pub fn from_name(name: &str) -> Result<Architecture> {
        match name {
            "llama" | "LlamaForCausalLM" => Ok(Architecture::Llama),
            "qwen2" | "Qwen2ForCausalLM" => Ok(Architecture::Qwen2),
            "bailingmoe" | "bailing_moe" | "BailingMoeForCausalLM" => Ok(Architecture::BailingMoe),
            "bailingmoe2" | "bailing_moe_v2" | "bailing_moe2" | "BailingMoeV2ForCausalLM" => {
                Ok(Architecture::BailingMoe2)
            }
            other => Err(EngineError::UnsupportedArchitecture(other.to_owned())),
        }
    }

    /// The GGUF name (also the prefix of its metadata keys).
    pub fn gguf_name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::BailingMoe => "bailingmoe",
            Architecture::BailingMoe2 => "bailingmoe2",
        }
    }
}

/// How a router turns its logits into expert scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gating {
    /// Softmax over all experts (Mixtral, Bailing v1).
    Softmax,
    /// An independent sigmoid per expert (DeepSeek-V3, Bailing v2).
    Sigmoid,
}

/// The mixture-of-experts part of a configuration: which layers route, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    /// Routed experts per MoE layer.
    pub n_experts: usize,
    /// Experts each token is sent to (top-k).
    pub n_experts_used: usize,
    /// Always-on shared experts (their MLPs are fused into one of `n_shared * expert_intermediate` width).
    pub n_shared_experts: usize,
    /// Inner width of one routed expert.
    pub expert_intermediate_size: usize,
    /// Leading layers that keep a dense MLP of `intermediate_size` (`first_k_dense_replace`).
    pub first_dense_layers: usize,
    /// Router score function.
    pub gating: Gating,
    /// Expert groups for group-limited routing (1 = no grouping).
    pub n_groups: usize,
    /// Groups a token may pick experts from.
    pub groups_used: usize,
    /// Whether the chosen experts' weights are renormalised to sum to one.
    pub norm_topk_prob: bool,
    /// Factor applied to the routed experts' weights after renormalisation.
    pub routed_scaling_factor: f32,
}

/// How rotary position embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Dimension `i` pairs with `i + rot/2` (HF `rotate_half`, llama.cpp NEOX).
    NeoX,
    /// Dimension `2i` pairs with `2i + 1` (original Llama/GPT-J, llama.cpp NORM; GGUF llama weights are permuted for it).
    Interleaved,
}

/// RoPE frequency scaling for context extension.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Position interpolation: every frequency divided by `factor`.
    Linear {
        /// The interpolation factor.
        factor: f32,
    },
    /// YaRN (Peng et al. 2023) as in HF `_compute_yarn_parameters`.
    Yarn {
        /// Context extension factor.
        factor: f32,
        /// The context the model was trained with.
        original_max_position: usize,
        /// Rotations above which dimensions are extrapolated (default 32).
        beta_fast: f32,
        /// Rotations below which dimensions are interpolated (default 1).
        beta_slow: f32,
        /// Scale applied to cos/sin (default `0.1 ln(factor) + 1`).
        attention_factor: f32,
    },
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        /// Scaling factor for low frequencies.
        factor: f32,
        /// Low-frequency factor (default 1).
        low_freq_factor: f32,
        /// High-frequency factor (default 4).
        high_freq_factor: f32,
        /// The context the model was trained with (default 8192).
        original_max_position: usize,
    },
}

/// Rotary embedding parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    /// Base frequency (`rope_theta`).
    pub theta: f32,
    /// How many leading dimensions of each head rotate (`head_dim * partial_rotary_factor`).
    pub rotary_dim: usize,
    /// Pairing of dimensions.
    pub style: RopeStyle,
    /// Frequency scaling.
    pub scaling: RopeScaling,
}

/// Everything the shared Transformer code needs to know about a dense decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The architecture.
    pub arch: Architecture,
    /// Vocabulary size (rows of the embedding and of the output head).
    pub vocab_size: usize,
    /// Residual stream width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (fewer than `n_heads` under grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary embeddings.
    pub rope: RopeConfig,
    /// The longest sequence the model supports.
    pub max_position: usize,
    /// Whether the output head reuses the token embedding.
    pub tie_embeddings: bool,
    /// Whether Q, K and V projections have a bias.
    pub attention_bias: bool,
    /// Beginning-of-sequence token, if the model declares one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens.
    pub eos_token_ids: Vec<u32>,
    /// Mixture-of-experts layout (`None` for dense models).
    pub moe: Option<MoeConfig>,
    /// Whether each head's queries and keys go through an RMSNorm before RoPE.
    pub qk_norm: bool,
}

impl ModelConfig {
    /// Checks the invariants the layers rely on.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::Config(m));
        if self.n_heads == 0 || self.n_kv_heads == 0 || self.n_layers == 0 || self.head_dim == 0 {
            return bad(format!("zero heads, layers or head_dim in {self:?}"));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} heads is not a multiple of {} KV heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.rope.rotary_dim > self.head_dim || !self.rope.rotary_dim.is_multiple_of(2) {
            return bad(format!(
                "rotary dimension {} invalid for head_dim {}",
                self.rope.rotary_dim, self.head_dim
            ));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.max_position == 0 {
            return bad("zero vocabulary, hidden size or context".to_owned());
        }
        if let Some(m) = &self.moe {
            if m.n_experts == 0 || m.n_experts_used == 0 || m.n_experts_used > m.n_experts {
                return bad(format!(
                    "{} experts used of {}: need 1 ≤ used ≤ experts",
                    m.n_experts_used, m.n_experts
                ));
            }
            if m.expert_intermediate_size == 0 {
                return bad("zero expert intermediate size".to_owned());
            }
            if m.n_groups == 0
                || !m.n_experts.is_multiple_of(m.n_groups)
                || m.groups_used == 0
                || m.groups_used > m.n_groups
                || m.groups_used * (m.n_experts / m.n_groups) < m.n_experts_used
            {
                return bad(format!(
                    "{} expert groups ({} used) cannot route {} of {} experts",
                    m.n_groups, m.groups_used, m.n_experts_used, m.n_experts
                ));
            }
        }
        Ok(())
    }

    /// Reads the configuration from GGUF metadata (`general.architecture` and `<arch>.*` keys).
    pub fn from_gguf(file: &GgufFile) -> Result<ModelConfig> {
        let arch_name = match file.meta("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(EngineError::Config("GGUF has no general.architecture".to_owned())),
        };
        let arch = Architecture::from_name(&arch_name)?;
        let p = arch.gguf_name();
        let get_usize = |key: &str| -> Result<Option<usize>> {
            match file.meta(&format!("{p}.{key}")) {
                None => Ok(None),
                Some(v) => meta_usize(v)
                    .map(Some)
                    .ok_or_else(|| EngineError::Config(format!("{p}.{key} is not an integer"))),
            }
        };
        let req = |key: &str| -> Result<usize> {
            get_usize(key)?
                .ok_or_else(|| EngineError::Config(format!("GGUF metadata lacks {p}.{key}")))
        };
        let get_f32 = |key: &str| file.meta(&format!("{p}.{key}")).and_then(meta_f32);
        let hidden_size = req("embedding_length")?;
        let n_heads = req("attention.head_count")?;
        let n_kv_heads = get_usize("attention.head_count_kv")?.unwrap_or(n_heads);
        let head_dim = get_usize("attention.key_length")?
            .unwrap_or(hidden_size.checked_div(n_heads).unwrap_or(0));
        let rotary_dim = get_usize("rope.dimension_count")?.unwrap_or(head_dim);
        let max_position = req("context_length")?;
        let scaling = match file.meta(&format!("{p}.rope.scaling.type")) {
            Some(Value::String(s)) if s == "linear" => {
                RopeScaling::Linear { factor: get_f32("rope.scaling.factor").unwrap_or(1.0) }
            }
            Some(Value::String(s)) if s == "yarn" => {
                let factor = get_f32("rope.scaling.factor").unwrap_or(1.0);
                RopeScaling::Yarn {
                    factor,
                    original_max_position: get_usize("rope.scaling.original_context_length")?
                        .unwrap_or(max_position),
                    beta_fast: get_f32("rope.scaling.yarn_beta_fast").unwrap_or(32.0),
                    beta_slow: get_f32("rope.scaling.yarn_beta_slow").unwrap_or(1.0),
                    attention_factor: get_f32("rope.scaling.attn_factor")
                        .unwrap_or_else(|| yarn_default_mscale(factor)),
                }
            }
            Some(Value::String(s)) if s == "none" => RopeScaling::None,
            None => RopeScaling::None,
            Some(v) => {
                return Err(EngineError::Config(format!(
                    "unsupported {p}.rope.scaling.type {v:?}"
                )));
            }
        };
        // llama.cpp's converter permutes Q/K rows for the interleaved (NORM) rope of `llama` and `bailingmoe`;
        // the others keep the HF layout and rotate halves (NEOX).
        let style = match arch {
            Architecture::Llama | Architecture::BailingMoe => RopeStyle::Interleaved,
            Architecture::Qwen2 | Architecture::BailingMoe2 => RopeStyle::NeoX,
        };
        let moe = match get_usize("expert_count")? {
            None | Some(0) => None,
            Some(n_experts) => {
                let expert_ff = req("expert_feed_forward_length")?;
                // llama.cpp's gating enum: 1 = softmax, 2 = sigmoid; v1 files carry no key (softmax).
                let gating = match get_usize("expert_gating_func")? {
                    None | Some(1) => Gating::Softmax,
                    Some(2) => Gating::Sigmoid,
                    Some(other) => {
                        return Err(EngineError::Config(format!(
                            "unsupported {p}.expert_gating_func {other}"
                        )));
                    }
                };
                let n_groups = get_usize("expert_group_count")?.unwrap_or(1).max(1);
                Some(MoeConfig {
                    n_experts,
                    n_experts_used: req("expert_used_count")?,
                    n_shared_experts: get_usize("expert_shared_count")?.unwrap_or(0),
                    expert_intermediate_size: expert_ff,
                    first_dense_layers: get_usize("leading_dense_block_count")?.unwrap_or(0),
                    gating,
                    n_groups,
                    groups_used: get_usize("expert_group_used_count")?
                        .filter(|_| n_groups > 1)
                        .unwrap_or(n_groups),
                    norm_topk_prob: match file.meta(&format!("{p}.expert_weights_norm")) {
                        Some(Value::Bool(b)) => *b,
                        _ => false,
                    },
                    routed_scaling_factor: get_f32("expert_weights_scale")
                        .filter(|s| *s != 0.0)
                        .unwrap_or(1.0),
                })
            }
        };
        // Multi-token-prediction layers sit after the decoder layers and are not run for plain decoding.
        let nextn = get_usize("nextn_predict_layers")?.unwrap_or(0);
        let n_layers = req("block_count")?.checked_sub(nextn).ok_or_else(|| {
            EngineError::Config(format!("{p}.nextn_predict_layers exceeds the block count"))
        })?;
        let vocab_size = match get_usize("vocab_size")? {
            Some(v) => v,
            None => match file.meta("tokenizer.ggml.tokens") {
                Some(Value::Array(a)) => a.len(),
                _ => file
                    .content()
                    .tensor_infos
                    .get("token_embd.weight")
                    .map(|t| t.shape.dims()[0])
                    .unwrap_or(0),
            },
        };
        let token =
            |key: &str| file.meta(key).and_then(meta_usize).and_then(|v| u32::try_from(v).ok());
        let cfg = ModelConfig {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: match &moe {
                // An all-MoE file may leave the dense width out.
                Some(_) => get_usize("feed_forward_length")?.unwrap_or(0),
                None => req("feed_forward_length")?,
            },
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            rms_norm_eps: f64::from(get_f32("attention.layer_norm_rms_epsilon").unwrap_or(1e-6)),
            rope: RopeConfig {
                theta: get_f32("rope.freq_base").unwrap_or(10_000.0),
                rotary_dim,
                style,
                scaling,
            },
            max_position,
            tie_embeddings: !file.has_tensor("output.weight"),
            attention_bias: file.has_tensor("blk.0.attn_q.bias"),
            bos_token_id: token("tokenizer.ggml.bos_token_id"),
            eos_token_ids: token("tokenizer.ggml.eos_token_id").into_iter().collect(),
            moe,
            qk_norm: file.has_tensor("blk.0.attn_q_norm.weight"),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// YaRN's default attention scaling (HF `get_mscale`).
pub(crate) fn yarn_default_mscale(factor: f32) -> f32 {
    if factor <= 1.0 { 1.0 } else { 0.1 * factor.ln() + 1.0 }
}

fn meta_usize(v: &Value) -> Option<usize> {
    match *v {
        Value::U8(x) => Some(usize::from(x)),
        Value::U16(x) => Some(usize::from(x)),
        Value::U32(x) => usize::try_from(x).ok(),
        Value::U64(x) => usize::try_from(x).ok(),
        Value::I32(x) => usize::try_from(x).ok(),
        Value::I64(x) => usize::try_from(x).ok(),
        _ => None,
    }
}

fn meta_f32(v: &Value) -> Option<f32> {
    match *v {
        Value::F32(x) => Some(x),
        Value::F64(x) => Some(x as f32),
        _ => None,
    }
}

/// The `rope_scaling` object of a Hugging Face `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct HfRopeScaling {
    /// `rope_type` (newer configs) or `type` (older ones).
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Scaling factor.
    #[serde(default)]
    pub factor: Option<f32>,
    /// YaRN / Llama 3: trained context.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// YaRN.
    #[serde(default)]
    pub beta_fast: Option<f32>,
    /// YaRN.
    #[serde(default)]
    pub beta_slow: Option<f32>,
    /// YaRN.
    #[serde(default)]
    pub attention_factor: Option<f32>,
    /// Llama 3.
    #[serde(default)]
    pub low_freq_factor: Option<f32>,
    /// Llama 3.
    #[serde(default)]
    pub high_freq_factor: Option<f32>,
}

impl HfRopeScaling {
    /// Converts to the engine's scaling description.
    pub fn to_scaling(&self, max_position: usize) -> Result<RopeScaling> {
        let factor = self.factor.unwrap_or(1.0);
        Ok(match self.rope_type.as_str() {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor },
            "yarn" => RopeScaling::Yarn {
                factor,
                original_max_position: self
                    .original_max_position_embeddings
                    .unwrap_or(max_position),
                beta_fast: self.beta_fast.unwrap_or(32.0),
                beta_slow: self.beta_slow.unwrap_or(1.0),
                attention_factor: self
                    .attention_factor
                    .unwrap_or_else(|| yarn_default_mscale(factor)),
            },
            "llama3" => RopeScaling::Llama3 {
                factor,
                low_freq_factor: self.low_freq_factor.unwrap_or(1.0),
                high_freq_factor: self.high_freq_factor.unwrap_or(4.0),
                original_max_position: self.original_max_position_embeddings.unwrap_or(8192),
            },
            other => {
                return Err(EngineError::Config(format!(
                    "unsupported rope_scaling type `{other}`"
                )));
            }
        })
    }
}

/// `eos_token_id` in config.json: one id or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HfTokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl HfTokenIds {
    /// All ids.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            HfTokenIds::One(x) => vec![*x],
            HfTokenIds::Many(v) => v.clone(),
        }
    }
}

/// The `config.json` fields every Llama-layout decoder shares; model files flatten it into their own config
/// struct and add what is specific to them.
#[derive(Debug, Clone, Deserialize)]
pub struct HfDecoderConfig {
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
    /// KV heads (default: the query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head width (default: hidden / heads).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon (default per architecture).
    #[serde(default)]
    pub rms_norm_eps: Option<f64>,
    /// RoPE base (default per architecture).
    #[serde(default)]
    pub rope_theta: Option<f32>,
    /// RoPE scaling (linear, YaRN, Llama 3).
    #[serde(default)]
    pub rope_scaling: Option<HfRopeScaling>,
    /// Share of each head that rotates (default 1).
    #[serde(default)]
    pub partial_rotary_factor: Option<f32>,
    /// Context window (default per architecture).
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Whether the output head is the embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// BOS token.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// EOS token(s).
    #[serde(default)]
    pub eos_token_id: Option<HfTokenIds>,
}

/// What an architecture assumes when `config.json` leaves a value out.
#[derive(Debug, Clone, Copy)]
pub struct ArchDefaults {
    /// The architecture.
    pub arch: Architecture,
    /// Default `rms_norm_eps`.
    pub rms_norm_eps: f64,
    /// Default `rope_theta`.
    pub rope_theta: f32,
    /// Default `max_position_embeddings`.
    pub max_position: usize,
    /// Whether Q/K/V have biases.
    pub attention_bias: bool,
}

impl HfDecoderConfig {
    /// Parses `config.json` text into `T` (a model file's config, which flattens this struct).
    pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
        serde_json::from_str(text).map_err(|e| EngineError::Config(format!("config.json: {e}")))
    }

    /// The engine's configuration. HF checkpoints always use `rotate_half` (NeoX) RoPE.
    pub fn to_model_config(&self, d: &ArchDefaults) -> Result<ModelConfig> {
        let head_dim = self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1));
        let max_position = self.max_position_embeddings.unwrap_or(d.max_position);
        let scaling = match &self.rope_scaling {
            Some(s) => s.to_scaling(max_position)?,
            None => RopeScaling::None,
        };
        let rotary_dim = match self.partial_rotary_factor {
            Some(f) => ((head_dim as f32 * f) as usize) & !1,
            None => head_dim,
        };
        let cfg = ModelConfig {
            arch: d.arch,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            n_layers: self.num_hidden_layers,
            n_heads: self.num_attention_heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(d.rms_norm_eps),
            rope: RopeConfig {
                theta: self.rope_theta.unwrap_or(d.rope_theta),
                rotary_dim,
                style: RopeStyle::NeoX,
                scaling,
            },
            max_position,
            tie_embeddings: self.tie_word_embeddings,
            attention_bias: d.attention_bias,
            bos_token_id: self.bos_token_id,
            eos_token_ids: self.eos_token_id.as_ref().map(HfTokenIds::to_vec).unwrap_or_default(),
            moe: None,
            qk_norm: false,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{llama::LlamaConfig, qwen2::Qwen2Config};

    #[test]
    fn llama31_config_with_llama3_scaling_and_eos_list() {
        let text = r#"{"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "max_position_embeddings": 131072, "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009], "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}}"#;
        let cfg = LlamaConfig::from_json(text).unwrap().into_config().unwrap();
        assert_eq!((cfg.n_kv_heads, cfg.head_dim, cfg.max_position), (8, 128, 131_072));
        assert_eq!(cfg.eos_token_ids, vec![128_001, 128_008, 128_009]);
        assert_eq!(cfg.rope.style, RopeStyle::NeoX);
        assert!(matches!(
            cfg.rope.scaling,
            RopeScaling::Llama3 { factor: 8.0, original_max_position: 8192, .. }
        ));
        assert!(!cfg.attention_bias);
    }

    #[test]
    fn qwen2_defaults_yarn_and_partial_rotary() {
        let text = r#"{"vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
            "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "partial_rotary_factor": 0.5,
            "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}"#;
        let cfg = Qwen2Config::from_json(text).unwrap().into_config().unwrap();
        assert_eq!((cfg.head_dim, cfg.rope.rotary_dim, cfg.rope.theta), (64, 32, 1_000_000.0));
        assert!(cfg.attention_bias);
        match cfg.rope.scaling {
            RopeScaling::Yarn { factor, attention_factor, .. } => {
                assert_eq!(factor, 4.0);
                assert!((attention_factor - (0.1 * 4f32.ln() + 1.0)).abs() < 1e-6);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inconsistent_configs_are_errors() {
        let text = r#"{"vocab_size": 10, "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 4, "num_key_value_heads": 3}"#;
        let err = LlamaConfig::from_json(text).unwrap().into_config().unwrap_err();
        assert!(err.to_string().contains("multiple of 3 KV heads"), "{err}");
        let err = LlamaConfig::from_json("{\"vocab_size\": 1}").unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        let bad_scaling = r#"{"vocab_size": 10, "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 4, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}"#;
        let err = LlamaConfig::from_json(bad_scaling).unwrap().into_config().unwrap_err();
        assert!(err.to_string().contains("dynamic"), "{err}");
    }
}
