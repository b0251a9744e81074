//! Where a model's tensors come from: a GGUF file or a Hugging Face safetensors folder (single file or
//! sharded with `model.safetensors.index.json`), both memory-mapped. Model code asks for tensors by their
//! Hugging Face name; GGUF files are looked up under llama.cpp's name for the same tensor. Every tensor's shape
//! is checked against what the configuration implies before candle sees it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::SafeTensors;
use safetensors::tensor::Metadata;

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::kernels::PackedMatrix;

/// An open source of weights.
#[derive(Debug)]
pub enum Weights {
    /// A GGUF file (quantized or not).
    Gguf(GgufFile),
    /// A Hugging Face folder of safetensors.
    SafeTensors(SafeTensorsFolder),
}

/// The safetensors files of a Hugging Face checkpoint, memory-mapped, with their parsed headers.
#[derive(Debug)]
pub struct SafeTensorsFolder {
    files: Vec<(PathBuf, Mmap, usize, Metadata)>,
    index: HashMap<String, usize>,
}

impl SafeTensorsFolder {
    /// Opens `model.safetensors`, or every shard listed in `model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<SafeTensorsFolder> {
        let index_path = dir.join("model.safetensors.index.json");
        let names: Vec<String> = if index_path.exists() {
            let text = read_to_string(&index_path)?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                EngineError::corrupt(&index_path.display().to_string(), e.to_string())
            })?;
            let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| {
                EngineError::corrupt(&index_path.display().to_string(), "no weight_map object")
            })?;
            let mut files: Vec<String> =
                map.values().filter_map(|v| v.as_str().map(str::to_owned)).collect();
            files.sort();
            files.dedup();
            files
        } else {
            vec!["model.safetensors".to_owned()]
        };
        let mut files = Vec::with_capacity(names.len());
        let mut index = HashMap::new();
        for name in names {
            if name.contains('/') || name.contains("..") {
                return Err(EngineError::corrupt(
                    &index_path.display().to_string(),
                    format!("bad shard name {name}"),
                ));
            }
            let path = dir.join(&name);
            let map = crate::mmap::map_file(&path)?;
            let (header_len, meta) = SafeTensors::read_metadata(&map)
                .map_err(|e| EngineError::corrupt(&path.display().to_string(), e.to_string()))?;
            for tensor in meta.tensors().keys() {
                index.insert(tensor.clone(), files.len());
            }
            files.push((path, map, header_len, meta));
        }
        Ok(SafeTensorsFolder { files, index })
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        let &file =
            self.index.get(name).ok_or_else(|| EngineError::MissingTensor(name.to_owned()))?;
        let (path, map, header_len, meta) = &self.files[file];
        let info = meta.info(name).ok_or_else(|| EngineError::MissingTensor(name.to_owned()))?;
        let dtype = match info.dtype {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => {
                return Err(EngineError::UnsupportedQuant {
                    tensor: name.to_owned(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let start = 8 + header_len + info.data_offsets.0;
        let end = 8 + header_len + info.data_offsets.1;
        let bytes = map.get(start..end).ok_or_else(|| {
            EngineError::corrupt(
                &path.display().to_string(),
                format!("tensor `{name}` out of bounds"),
            )
        })?;
        let t = Tensor::from_raw_buffer(bytes, dtype, &info.shape, &Device::Cpu)?;
        Ok(t.to_dtype(DType::F32)?)
    }
}

/// A linear layer's weight and optional bias, ready to multiply `[tokens, in]` activations.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: MatrixWeight,
    bias: Option<Vec<f32>>,
    out_dim: usize,
    in_dim: usize,
}

/// Where a weight matrix lives: repacked for our kernels, or in candle (types without a kernel of ours).
#[derive(Debug, Clone)]
enum MatrixWeight {
    Packed(Arc<PackedMatrix>),
    Candle(QMatMul),
}

impl MatrixWeight {
    /// `[n, in] → [n, out]`.
    fn matmul(&self, x: &[f32], n: usize, in_dim: usize, out_dim: usize) -> Result<Vec<f32>> {
        match self {
            MatrixWeight::Packed(p) => {
                let mut out = vec![0.0; n * out_dim];
                p.matmul(x, n, &mut out)?;
                Ok(out)
            }
            MatrixWeight::Candle(q) => {
                let t = Tensor::from_slice(x, (n, in_dim), &Device::Cpu)?;
                Ok(candle_core::Module::forward(q, &t)?.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }
}

impl Linear {
    /// A linear layer without bias from a dense `[out, in]` f32 tensor.
    pub fn from_tensor(weight: Tensor) -> Result<Linear> {
        let (out_dim, in_dim) = weight.dims2()?;
        Ok(Linear {
            weight: MatrixWeight::Candle(QMatMul::Tensor(weight)),
            bias: None,
            out_dim,
            in_dim,
        })
    }

    /// `x @ W^T + b` for `x` of shape `[n, in]` (row-major); returns `[n, out]`.
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let mut y = self.weight.matmul(x, n, self.in_dim, self.out_dim)?;
        if let Some(b) = &self.bias {
            for row in y.chunks_mut(self.out_dim) {
                row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
            }
        }
        Ok(y)
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// The repacked weight, when the layer has one and no bias (callers then batch products themselves).
    pub fn packed(&self) -> Option<&PackedMatrix> {
        match (&self.weight, &self.bias) {
            (MatrixWeight::Packed(p), None) => Some(p),
            _ => None,
        }
    }

    /// Bytes of weights read per token (decode streams them once per step).
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            MatrixWeight::Packed(p) => p.bytes(),
            MatrixWeight::Candle(QMatMul::QTensor(q)) => q.storage_size_in_bytes(),
            MatrixWeight::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => {
                t.elem_count() * t.dtype().size_in_bytes()
            }
        }
    }
}

/// Linear layers that read the same input (Q/K/V, gate/up), multiplied as one stacked matrix when their
/// weights allow it (see [`PackedMatrix::stack_rows`]) and one by one otherwise.
#[derive(Debug, Clone)]
pub struct StackedLinear {
    /// Each part's output width.
    widths: Vec<usize>,
    /// The parts, when they could not be stacked (otherwise empty: the stacked copy replaces them).
    parts: Vec<Linear>,
    stacked: Option<Linear>,
}

impl StackedLinear {
    /// Stacks `parts` if they can be.
    pub fn new(parts: Vec<Linear>) -> StackedLinear {
        let packed: Option<Vec<&PackedMatrix>> = parts
            .iter()
            .map(|l| match &l.weight {
                MatrixWeight::Packed(p) => Some(p.as_ref()),
                MatrixWeight::Candle(_) => None,
            })
            .collect();
        let stacked = packed.and_then(|p| PackedMatrix::stack_rows(&p)).map(|m| {
            let bias = parts.iter().any(|l| l.bias.is_some()).then(|| {
                parts
                    .iter()
                    .flat_map(|l| l.bias.clone().unwrap_or_else(|| vec![0.0; l.out_dim]))
                    .collect()
            });
            Linear {
                out_dim: m.rows(),
                in_dim: m.cols(),
                weight: MatrixWeight::Packed(Arc::new(m)),
                bias,
            }
        });
        let widths = parts.iter().map(|l| l.out_dim).collect();
        match stacked {
            Some(s) => StackedLinear { widths, parts: Vec::new(), stacked: Some(s) },
            None => StackedLinear { widths, parts, stacked: None },
        }
    }

    /// One fused matrix whose output rows are the parts, in order (e.g. a checkpoint's `query_key_value`).
    pub fn fused(linear: Linear, widths: Vec<usize>) -> Result<StackedLinear> {
        if widths.iter().sum::<usize>() != linear.out_dim {
            return Err(EngineError::Config(format!(
                "fused matrix of {} rows cannot split into {widths:?}",
                linear.out_dim
            )));
        }
        Ok(StackedLinear { widths, parts: Vec::new(), stacked: Some(linear) })
    }

    /// Each part's output for `x` (`[n, in]`): one `[n, out_i]` vector per part, in order.
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let Some(stacked) = &self.stacked else {
            return self.parts.iter().map(|l| l.forward(x, n)).collect();
        };
        let y = stacked.forward(x, n)?;
        let mut outs: Vec<Vec<f32>> =
            self.widths.iter().map(|w| Vec::with_capacity(n * w)).collect();
        for row in y.chunks(stacked.out_dim) {
            let mut at = 0;
            for (out, &w) in outs.iter_mut().zip(&self.widths) {
                out.extend_from_slice(&row[at..at + w]);
                at += w;
            }
        }
        Ok(outs)
    }

    /// Bytes of weights read per token.
    pub fn weight_bytes(&self) -> usize {
        self.stacked.iter().chain(&self.parts).map(Linear::weight_bytes).sum()
    }

    /// The stacked repacked matrix (all parts' rows in order), when the parts could be stacked.
    pub fn packed(&self) -> Option<&PackedMatrix> {
        self.stacked.as_ref().and_then(Linear::packed)
    }
}

/// The token embedding table (kept quantized for GGUF; rows are dequantized on lookup).
#[derive(Debug, Clone)]
pub struct Embedding {
    table: MatrixWeight,
    vocab: usize,
    hidden: usize,
}

impl Embedding {
    /// Rows for `tokens`, `[tokens, hidden]` row-major; ids must be below the vocabulary size.
    pub fn forward(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(EngineError::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.vocab
            )));
        }
        match &self.table {
            MatrixWeight::Packed(p) => {
                let mut out = vec![0.0; tokens.len() * self.hidden];
                for (row, &t) in out.chunks_mut(self.hidden).zip(tokens) {
                    p.dequantize_row(t as usize, row);
                }
                Ok(out)
            }
            MatrixWeight::Candle(q) => {
                let ids = Tensor::new(tokens, &Device::Cpu)?;
                Ok(q.embedding(&ids)?.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }

    /// The same table as an output head (tied embeddings).
    pub fn as_linear(&self) -> Linear {
        Linear { weight: self.table.clone(), bias: None, out_dim: self.vocab, in_dim: self.hidden }
    }
}

/// A GGML tensor's bytes as a matrix: repacked when a kernel of ours takes the type, on candle otherwise.
fn matrix_from_ggml(
    dtype: GgmlDType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<MatrixWeight> {
    if PackedMatrix::supports(dtype) {
        return Ok(MatrixWeight::Packed(Arc::new(PackedMatrix::from_ggml(
            dtype, bytes, rows, cols,
        )?)));
    }
    let q = candle_core::quantized::ggml_file::qtensor_from_ggml(
        dtype,
        bytes,
        vec![rows, cols],
        &Device::Cpu,
    )?;
    Ok(MatrixWeight::Candle(match q.dtype() {
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
            QMatMul::Tensor(q.dequantize(&Device::Cpu)?)
        }
        _ => QMatMul::QTensor(Arc::new(q)),
    }))
}

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|source| EngineError::Io { path: path.display().to_string(), source })
}

/// The llama.cpp name of a tensor given its Hugging Face name.
pub fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" | "model.word_embeddings.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(n) = fixed {
        return Some(n.to_owned());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, name) = rest.split_once('.')?;
    let mapped = match name {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        // Bailing (Ling) names.
        "attention.query_key_value.weight" => "attn_qkv.weight",
        "attention.query_key_value.bias" => "attn_qkv.bias",
        "attention.dense.weight" => "attn_output.weight",
        "attention.query_layernorm.weight" => "attn_q_norm.weight",
        "attention.key_layernorm.weight" => "attn_k_norm.weight",
        "mlp.gate.weight" => "ffn_gate_inp.weight",
        "mlp.gate.expert_bias" => "exp_probs_b.bias",
        "mlp.shared_experts.gate_proj.weight" => "ffn_gate_shexp.weight",
        "mlp.shared_experts.up_proj.weight" => "ffn_up_shexp.weight",
        "mlp.shared_experts.down_proj.weight" => "ffn_down_shexp.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{mapped}"))
}

fn check_shape(name: &str, actual: &[usize], expected: &[usize]) -> Result<()> {
    if actual != expected {
        return Err(EngineError::ShapeMismatch {
            tensor: name.to_owned(),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        });
    }
    Ok(())
}

impl Weights {
    /// Whether a tensor is present (by its Hugging Face name).
    pub fn contains(&self, hf_name: &str) -> bool {
        match self {
            Weights::Gguf(g) => gguf_name(hf_name).is_some_and(|n| g.has_tensor(&n)),
            Weights::SafeTensors(s) => s.index.contains_key(hf_name),
        }
    }

    fn qtensor(&self, hf_name: &str, shape: &[usize]) -> Result<QTensor> {
        let t = match self {
            Weights::Gguf(g) => {
                let name = gguf_name(hf_name)
                    .ok_or_else(|| EngineError::MissingTensor(hf_name.to_owned()))?;
                let info = g
                    .content()
                    .tensor_infos
                    .get(&name)
                    .ok_or(EngineError::MissingTensor(name.clone()))?;
                check_shape(&name, info.shape.dims(), shape)?;
                g.tensor(&name)?
            }
            Weights::SafeTensors(s) => {
                let t = s.tensor(hf_name)?;
                check_shape(hf_name, t.dims(), shape)?;
                QTensor::quantize(&t, GgmlDType::F32)?
            }
        };
        Ok(t)
    }

    fn dense(&self, hf_name: &str, shape: &[usize]) -> Result<Tensor> {
        match self {
            Weights::Gguf(_) => Ok(self.qtensor(hf_name, shape)?.dequantize(&Device::Cpu)?),
            Weights::SafeTensors(s) => {
                let t = s.tensor(hf_name)?;
                check_shape(hf_name, t.dims(), shape)?;
                Ok(t)
            }
        }
    }

    /// A linear layer `[out, in]` with an optional bias `[out]`.
    pub fn linear(
        &self,
        hf_prefix: &str,
        out_dim: usize,
        in_dim: usize,
        bias: bool,
    ) -> Result<Linear> {
        let weight = self.matrix(&format!("{hf_prefix}.weight"), out_dim, in_dim)?;
        let bias =
            if bias { Some(self.vector(&format!("{hf_prefix}.bias"), out_dim)?) } else { None };
        Ok(Linear { weight, bias, out_dim, in_dim })
    }

    /// A `[rows, cols]` matrix: GGUF types with a kernel of ours are repacked for it, the rest go to candle.
    fn matrix(&self, hf_name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        match self {
            Weights::Gguf(g) => {
                let name = gguf_name(hf_name)
                    .ok_or_else(|| EngineError::MissingTensor(hf_name.to_owned()))?;
                let (dtype, dims, bytes) = g.tensor_data(&name)?;
                check_shape(&name, dims, &[rows, cols])?;
                let matrix = matrix_from_ggml(dtype, bytes, rows, cols)?;
                g.release(bytes);
                Ok(matrix)
            }
            Weights::SafeTensors(s) => {
                let t = s.tensor(hf_name)?;
                check_shape(hf_name, t.dims(), &[rows, cols])?;
                Ok(MatrixWeight::Candle(QMatMul::Tensor(t)))
            }
        }
    }

    /// The `which` projection (`gate_proj`, `up_proj` or `down_proj`) of each of layer `layer`'s `n` routed
    /// experts, each `[out, in]`. GGUF stacks them in one `[n, out, in]` tensor (`ffn_{gate,up,down}_exps`)
    /// that is cut per expert; Hugging Face names them `mlp.experts.<e>.<which>`.
    pub fn expert_linears(
        &self,
        layer: usize,
        which: &str,
        n: usize,
        out_dim: usize,
        in_dim: usize,
    ) -> Result<Vec<Linear>> {
        let linear = |weight| Linear { weight, bias: None, out_dim, in_dim };
        match self {
            Weights::Gguf(g) => {
                let short = which.strip_suffix("_proj").unwrap_or(which);
                let name = format!("blk.{layer}.ffn_{short}_exps.weight");
                let (dtype, dims, bytes) = g.tensor_data(&name)?;
                check_shape(&name, dims, &[n, out_dim, in_dim])?;
                let per_expert = bytes.len() / n;
                bytes
                    .chunks_exact(per_expert)
                    .map(|b| {
                        let matrix = matrix_from_ggml(dtype, b, out_dim, in_dim)?;
                        g.release(b);
                        Ok(linear(matrix))
                    })
                    .collect()
            }
            Weights::SafeTensors(_) => (0..n)
                .map(|e| {
                    self.linear(
                        &format!("model.layers.{layer}.mlp.experts.{e}.{which}"),
                        out_dim,
                        in_dim,
                        false,
                    )
                })
                .collect(),
        }
    }

    /// A dense f32 tensor of the given shape (for weights the model transforms at load).
    pub fn tensor(&self, hf_name: &str, shape: &[usize]) -> Result<Tensor> {
        self.dense(hf_name, shape)
    }

    /// A 1-D f32 vector (norm weights, biases).
    pub fn vector(&self, hf_name: &str, len: usize) -> Result<Vec<f32>> {
        Ok(self.dense(hf_name, &[len])?.to_vec1::<f32>()?)
    }

    /// A token embedding `[vocab, hidden]`.
    pub fn embedding(&self, hf_name: &str, vocab: usize, hidden: usize) -> Result<Embedding> {
        Ok(Embedding { table: self.matrix(hf_name, vocab, hidden)?, vocab, hidden })
    }
}
