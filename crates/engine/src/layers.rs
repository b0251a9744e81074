//! The Transformer building blocks shared by every architecture: RMSNorm, the SwiGLU MLP, and grouped-query
//! self-attention over the paged KV cache. Model files compose these; the Bailing MoE models reuse the
//! attention and norms with their own expert MLPs.

use crate::attention::{paged_attention, tiles};
use crate::batch::StepBatch;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache::{KvGeometry, LayerKv};
use crate::moe::Routes;
use crate::rope::{Rope, RopeTables};
use crate::weights::{Linear, StackedLinear, Weights};

/// What every layer of one step shares: the step's layout, the RoPE tables for its positions, the cache shape.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The step's tokens, positions and cache slots.
    pub batch: &'a StepBatch,
    /// The model's rotary embedding.
    pub rope: &'a Rope,
    /// cos/sin for the step's positions.
    pub tables: &'a RopeTables,
    /// The cache's storage layout.
    pub geo: &'a KvGeometry,
}

/// Root-mean-square layer norm (Zhang & Sennrich 2019).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    /// Loads `<name>` of width `dim`.
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: w.vector(name, dim)?, eps: eps as f32 })
    }

    /// Normalises each row of `x` (`[tokens, dim]` row-major).
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.weight.len();
        let mut out = vec![0.0; x.len()];
        for (row, out) in x.chunks(dim).zip(out.chunks_mut(dim)) {
            let mean_square = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
            let scale = 1.0 / (mean_square + self.eps).sqrt();
            for ((o, v), w) in out.iter_mut().zip(row).zip(&self.weight) {
                *o = v * scale * w;
            }
        }
        out
    }
}

/// The gated MLP of Llama-style models: `down(silu(gate(x)) * up(x))` (Shazeer 2020).
#[derive(Debug, Clone)]
pub struct SwiGluMlp {
    gate_up: StackedLinear,
    down: Linear,
}

impl SwiGluMlp {
    /// Loads `<prefix>.{gate,up,down}_proj`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        hidden: usize,
        intermediate: usize,
    ) -> Result<SwiGluMlp> {
        Ok(SwiGluMlp {
            gate_up: StackedLinear::new(vec![
                w.linear(&format!("{prefix}.gate_proj"), intermediate, hidden, false)?,
                w.linear(&format!("{prefix}.up_proj"), intermediate, hidden, false)?,
            ]),
            down: w.linear(&format!("{prefix}.down_proj"), hidden, intermediate, false)?,
        })
    }

    /// Applies the MLP to `x` (`[n, hidden]`).
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let [mut gate, up]: [Vec<f32>; 2] =
            self.gate_up.forward(x, n)?.try_into().map_err(|_| {
                EngineError::Config("internal: gate/up stack lost a part".to_owned())
            })?;
        crate::kernels::silu_mul(&mut gate, &up);
        self.down.forward(&gate, n)
    }
}

/// Grouped-query self-attention with rotary embeddings; K/V go straight into the paged cache.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv: StackedLinear,
    o: Linear,
    /// Per-head RMSNorm of queries and keys before RoPE (Bailing v2, Qwen3).
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Loads `<prefix>.{q,k,v,o}_proj` (with Q/K/V biases when the config says so).
    pub fn load(w: &Weights, prefix: &str, cfg: &ModelConfig) -> Result<Attention> {
        let (h, nh, nkv, hd) = (cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
        let bias = cfg.attention_bias;
        Ok(Attention {
            qkv: StackedLinear::new(vec![
                w.linear(&format!("{prefix}.q_proj"), nh * hd, h, bias)?,
                w.linear(&format!("{prefix}.k_proj"), nkv * hd, h, bias)?,
                w.linear(&format!("{prefix}.v_proj"), nkv * hd, h, bias)?,
            ]),
            o: w.linear(&format!("{prefix}.o_proj"), h, nh * hd, false)?,
            qk_norm: None,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        })
    }

    /// Builds the layer from projections loaded elsewhere: `qkv` yields Q, K and V in that order (separate
    /// matrices or one fused), `qk_norm` holds the query and key norms of width `head_dim` when the model has them.
    pub fn from_parts(
        qkv: StackedLinear,
        o: Linear,
        qk_norm: Option<(RmsNorm, RmsNorm)>,
        cfg: &ModelConfig,
    ) -> Attention {
        Attention {
            qkv,
            o,
            qk_norm,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: cfg.head_dim,
        }
    }

    /// Bytes of weights one decode step reads.
    pub fn weight_bytes(&self) -> usize {
        self.qkv.weight_bytes() + self.o.weight_bytes()
    }

    /// Attends every token of the step to its own sequence's cached context (including the step's own tokens).
    pub fn forward(&self, x: &[f32], step: &StepContext<'_>, kv: &mut LayerKv) -> Result<Vec<f32>> {
        let StepContext { batch, rope, tables, geo } = *step;
        let n = batch.tokens.len();
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let [mut q, mut k, v]: [Vec<f32>; 3] = self
            .qkv
            .forward(x, n)?
            .try_into()
            .map_err(|_| EngineError::Config("internal: QKV stack lost a part".to_owned()))?;
        if let Some((q_norm, k_norm)) = &self.qk_norm {
            // The norms' width is one head, so normalising the rows normalises every head separately.
            q = q_norm.forward(&q);
            k = k_norm.forward(&k);
        }
        rope.apply(&mut q, nh, hd, tables);
        rope.apply(&mut k, nkv, hd, tables);
        let row = nkv * hd;
        for (t, slot) in batch.slots.iter().enumerate() {
            kv.write(geo, *slot, &k[t * row..(t + 1) * row], &v[t * row..(t + 1) * row]);
        }
        let tiles = tiles(&batch.token_seq, &batch.positions, &batch.seq_blocks);
        let mut out = vec![0.0f32; n * nh * hd];
        paged_attention(&q, nh, kv, geo, &tiles, &mut out);
        self.o.forward(&out, n)
    }
}

/// A pre-norm decoder block: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Debug, Clone)]
pub struct DenseBlock {
    input_norm: RmsNorm,
    attn: Attention,
    post_attention_norm: RmsNorm,
    mlp: SwiGluMlp,
}

impl DenseBlock {
    /// Loads layer `i` under HF names `model.layers.<i>.*`.
    pub fn load(w: &Weights, cfg: &ModelConfig, i: usize) -> Result<DenseBlock> {
        let p = format!("model.layers.{i}");
        let h = cfg.hidden_size;
        Ok(DenseBlock {
            input_norm: RmsNorm::load(
                w,
                &format!("{p}.input_layernorm.weight"),
                h,
                cfg.rms_norm_eps,
            )?,
            attn: Attention::load(w, &format!("{p}.self_attn"), cfg)?,
            post_attention_norm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm.weight"),
                h,
                cfg.rms_norm_eps,
            )?,
            mlp: SwiGluMlp::load(w, &format!("{p}.mlp"), h, cfg.intermediate_size)?,
        })
    }

    /// Runs the block on the step's hidden states `[tokens, hidden]`.
    pub fn forward(&self, x: &mut [f32], step: &StepContext<'_>, kv: &mut LayerKv) -> Result<()> {
        let n = step.batch.tokens.len();
        let h = self.attn.forward(&self.input_norm.forward(x), step, kv)?;
        add_assign(x, &h);
        let h = self.mlp.forward(&self.post_attention_norm.forward(x), n)?;
        add_assign(x, &h);
        Ok(())
    }
}

/// `x += h`, the residual connection.
pub fn add_assign(x: &mut [f32], h: &[f32]) {
    x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
}

impl SwiGluMlp {
    /// Bytes of weights one decode step reads.
    pub fn weight_bytes(&self) -> usize {
        self.gate_up.weight_bytes() + self.down.weight_bytes()
    }
}

/// A decoder layer as the shared stack sees it: it updates the residual stream of a step in place.
pub trait Block: Send + Sync + std::fmt::Debug {
    /// Runs the layer on the step's hidden states `[tokens, hidden]`, writing its K/V into `kv`. A mixture-of-
    /// experts layer appends its routing to `routes` when asked.
    fn forward(
        &self,
        x: &mut [f32],
        step: &StepContext<'_>,
        kv: &mut LayerKv,
        routes: Option<&mut Routes>,
    ) -> Result<()>;

    /// Bytes of weights one decode step reads from this layer (routed experts: the average token's share).
    fn weight_bytes(&self) -> usize;
}

impl Block for DenseBlock {
    fn forward(
        &self,
        x: &mut [f32],
        step: &StepContext<'_>,
        kv: &mut LayerKv,
        _routes: Option<&mut Routes>,
    ) -> Result<()> {
        DenseBlock::forward(self, x, step, kv)
    }

    fn weight_bytes(&self) -> usize {
        self.attn.weight_bytes() + self.mlp.weight_bytes()
    }
}

pub(crate) fn missing_layer(i: usize) -> EngineError {
    EngineError::Config(format!("KV cache has no layer {i}: it was built for another model"))
}
