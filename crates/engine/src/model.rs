//! What every architecture implements ([`CausalLm`]), the dense decoder stack that Llama and Qwen2 share,
//! and [`load`], which opens a GGUF file or a Hugging Face folder and builds the right model.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::batch::StepBatch;
use crate::config::{Architecture, ModelConfig};
use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::kv_cache::{KvCache, KvCacheConfig};
use crate::layers::{Block, DenseBlock, RmsNorm, StepContext, missing_layer};
use crate::models::{bailing, llama, qwen2};
use crate::moe::Routes;
use crate::rope::Rope;
use crate::weights::{Embedding, Linear, SafeTensorsFolder, Weights};

/// A causal language model that runs batched steps over the paged KV cache.
pub trait CausalLm: Send + Sync + std::fmt::Debug {
    /// The model's dimensions.
    fn config(&self) -> &ModelConfig;

    /// Runs one step: writes every token's K/V into `cache` and returns logits `[batch.logit_rows.len(), vocab]`
    /// (or `None` when no logits were requested). Use [`crate::batch::step`] rather than calling this directly.
    fn forward(&self, batch: &StepBatch, cache: &mut KvCache) -> Result<Option<Tensor>>;

    /// [`CausalLm::forward`] that also records every mixture-of-experts layer's routing (one entry per MoE
    /// layer, `top-k` `(expert, weight)` pairs per token). Dense models record nothing.
    fn forward_traced(
        &self,
        batch: &StepBatch,
        cache: &mut KvCache,
        routes: &mut Routes,
    ) -> Result<Option<Tensor>> {
        let _ = routes;
        self.forward(batch, cache)
    }
}

/// Embedding, pre-norm decoder blocks, final norm and output head: the stack every architecture shares.
/// Architectures differ in their blocks (dense SwiGLU, mixture of experts) and in how they load.
#[derive(Debug, Clone)]
pub struct Decoder<B> {
    cfg: ModelConfig,
    embed: Embedding,
    blocks: Vec<B>,
    norm: RmsNorm,
    head: Linear,
    rope: Rope,
}

/// The Llama layout that Llama and Qwen2 share (they differ in configuration only: QKV bias, tied head,
/// RoPE base).
pub type DenseDecoder = Decoder<DenseBlock>;

impl DenseDecoder {
    /// Loads all tensors under their Hugging Face names.
    pub fn load(w: &Weights, cfg: ModelConfig) -> Result<DenseDecoder> {
        cfg.validate()?;
        let embed = w.embedding("model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size)?;
        let blocks =
            (0..cfg.n_layers).map(|i| DenseBlock::load(w, &cfg, i)).collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(w, "model.norm.weight", cfg.hidden_size, cfg.rms_norm_eps)?;
        let head = if cfg.tie_embeddings && !w.contains("lm_head.weight") {
            embed.as_linear()
        } else {
            w.linear("lm_head", cfg.vocab_size, cfg.hidden_size, false)?
        };
        Ok(Decoder::from_parts(cfg, embed, blocks, norm, head))
    }
}

impl<B: Block> Decoder<B> {
    /// Assembles a stack from loaded parts.
    pub fn from_parts(
        cfg: ModelConfig,
        embed: Embedding,
        blocks: Vec<B>,
        norm: RmsNorm,
        head: Linear,
    ) -> Decoder<B> {
        let rope = Rope::new(&cfg.rope);
        Decoder { cfg, embed, blocks, norm, head, rope }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The layers (to adjust one after loading).
    pub fn blocks_mut(&mut self) -> &mut [B] {
        &mut self.blocks
    }

    /// Runs the stack on a step; mixture-of-experts layers record their routing in `routes` when given.
    pub fn forward(
        &self,
        batch: &StepBatch,
        cache: &mut KvCache,
        mut routes: Option<&mut Routes>,
    ) -> Result<Option<Tensor>> {
        let geo = cache.geometry();
        let mut x = self.embed.forward(&batch.tokens)?;
        let tables = self.rope.tables(&batch.positions);
        let step = StepContext { batch, rope: &self.rope, tables: &tables, geo: &geo };
        for (i, block) in self.blocks.iter().enumerate() {
            let _span = tracing::trace_span!("layer", i).entered();
            let kv = cache.layer_mut(i).ok_or_else(|| missing_layer(i))?;
            block.forward(&mut x, &step, kv, routes.as_deref_mut())?;
        }
        if batch.logit_rows.is_empty() {
            return Ok(None);
        }
        let h = self.cfg.hidden_size;
        let mut rows = Vec::with_capacity(batch.logit_rows.len() * h);
        for &r in &batch.logit_rows {
            rows.extend_from_slice(x.get(r * h..(r + 1) * h).ok_or_else(|| {
                EngineError::InvalidRequest(format!("logit row {r} is outside the step"))
            })?);
        }
        let n = batch.logit_rows.len();
        let logits = self.head.forward(&self.norm.forward(&rows), n)?;
        Ok(Some(Tensor::from_vec(logits, (n, self.cfg.vocab_size), &Device::Cpu)?))
    }

    /// Bytes of weights one decode step streams (every block plus the output head), for roofline figures.
    pub fn weight_bytes_per_token(&self) -> usize {
        self.blocks.iter().map(B::weight_bytes).sum::<usize>() + self.head.weight_bytes()
    }
}

/// A loaded model and what came with it.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn CausalLm>,
    /// The GGUF file, when the model came from one (its metadata holds the tokenizer and chat template).
    pub gguf: Option<GgufFile>,
    /// The folder, when the model came from a Hugging Face checkpoint (holds tokenizer.json etc.).
    pub hf_dir: Option<std::path::PathBuf>,
}

/// Options for [`load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Run one small forward pass after loading so that candle repacks quantized weights now, not on the
    /// first request.
    pub warm_up: bool,
}

/// Opens a `.gguf` file or a Hugging Face folder (`config.json` + safetensors) and builds its model.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    let loaded = if path.is_dir() {
        let cfg_path = path.join("config.json");
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|source| EngineError::Io { path: cfg_path.display().to_string(), source })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::corrupt(&cfg_path.display().to_string(), e.to_string()))?;
        // `architectures` names the modeling class exactly; `model_type` is the fallback (custom-code
        // checkpoints such as Ling's reuse model types across versions).
        let class = json.get("architectures").and_then(|a| a.get(0)).and_then(|v| v.as_str());
        let model_type = json.get("model_type").and_then(|v| v.as_str());
        let arch = match (class.map(Architecture::from_name), model_type) {
            (Some(Ok(arch)), _) => arch,
            (_, Some(name)) => Architecture::from_name(name)?,
            (Some(Err(e)), None) => return Err(e),
            (None, None) => {
                return Err(EngineError::Config(
                    "config.json has neither architectures nor model_type".to_owned(),
                ));
            }
        };
        let weights = Weights::SafeTensors(SafeTensorsFolder::open(path)?);
        let model: Box<dyn CausalLm> = match arch {
            Architecture::Llama => Box::new(llama::Llama::load(
                &weights,
                llama::LlamaConfig::from_json(&text)?.into_config()?,
            )?),
            Architecture::Qwen2 => Box::new(qwen2::Qwen2::load(
                &weights,
                qwen2::Qwen2Config::from_json(&text)?.into_config()?,
            )?),
            Architecture::BailingMoe | Architecture::BailingMoe2 => {
                let hf = bailing::BailingMoeConfig::from_json(&text)?;
                let norm_head = hf.norm_head;
                Box::new(bailing::BailingMoe::load(&weights, hf.into_config(arch)?, norm_head)?)
            }
        };
        LoadedModel { model, gguf: None, hf_dir: Some(path.to_path_buf()) }
    } else {
        let file = GgufFile::open(path)?;
        let cfg = ModelConfig::from_gguf(&file)?;
        let weights = Weights::Gguf(file);
        let model: Box<dyn CausalLm> = match cfg.arch {
            Architecture::Llama => Box::new(llama::Llama::load(&weights, cfg)?),
            Architecture::Qwen2 => Box::new(qwen2::Qwen2::load(&weights, cfg)?),
            // llama.cpp's converter folds `norm_head` into `output.weight` already.
            Architecture::BailingMoe | Architecture::BailingMoe2 => {
                Box::new(bailing::BailingMoe::load(&weights, cfg, false)?)
            }
        };
        let Weights::Gguf(file) = weights else {
            return Err(EngineError::Config("internal: weights changed kind".to_owned()));
        };
        file.release_pages();
        LoadedModel { model, gguf: Some(file), hf_dir: None }
    };
    if opts.warm_up {
        warm_up(loaded.model.as_ref())?;
    }
    Ok(loaded)
}

/// One throw-away step of a few tokens through a private cache: candle repacks quantized weights lazily on
/// first use (for batched and single-token shapes separately), so this moves that cost to load time.
pub fn warm_up(model: &dyn CausalLm) -> Result<()> {
    let cfg = model.config();
    let mut cache = KvCache::new(
        cfg,
        &KvCacheConfig {
            block_size: 16,
            max_bytes: KvCache::bytes_per_token(cfg) * 32,
            max_context: 32,
        },
    )?;
    let seq = cache.add_sequence();
    // Sixteen tokens take candle's batched matmul path, the seventeenth its single-row path.
    let n = 16.min(cache.max_context().saturating_sub(1)).max(1);
    let prompt = vec![0u32; n];
    let chunk =
        |tokens| crate::batch::SeqChunk { seq, tokens, logits: crate::batch::LogitsWanted::Last };
    crate::batch::step(model, &mut cache, &[chunk(&prompt)])?;
    crate::batch::step(model, &mut cache, &[chunk(&prompt[..1])])?;
    Ok(())
}
