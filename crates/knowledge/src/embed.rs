//! Sentence embeddings for the vector retriever: a BERT-family encoder (config.json, model.safetensors,
//! tokenizer.json, as sentence-transformers exports them, e.g. all-MiniLM-L6-v2) run in-process on the CPU
//! with candle, mean-pooled over the attention mask and L2-normalised, so a dot product is the cosine.
//!
//! The encoder is written out here (embeddings, N post-LayerNorm transformer layers with GELU) rather than
//! taken from the engine: the layering keeps `knowledge` and `engine` apart, and an encoder is ~100 lines.

use std::{collections::HashMap, path::Path};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder};
use serde::Deserialize;

use crate::{KnowledgeError, Result};

/// Anything that turns texts into unit vectors of one fixed dimension.
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// A name that identifies the model (stored with the vectors, so a different model is noticed).
    fn name(&self) -> &str;
    /// The vector dimension.
    fn dim(&self) -> usize;
    /// One L2-normalised vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// The fields of a Hugging Face BERT `config.json` the encoder needs.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden (and output) dimension.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Feed-forward inner dimension.
    pub intermediate_size: usize,
    /// Longest input in tokens.
    pub max_position_embeddings: usize,
    /// Token type (segment) vocabulary.
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn two() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

fn model_error(what: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::BadInput(format!("embedding model: {what}"))
}

impl From<candle_core::Error> for KnowledgeError {
    fn from(err: candle_core::Error) -> Self {
        model_error(err)
    }
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_norm: LayerNorm,
}

/// A BERT encoder with its tokenizer.
#[derive(Debug)]
pub struct BertEmbedder {
    name: String,
    config: BertConfig,
    tokenizer: tokenizers::Tokenizer,
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    /// Inputs are cut to this many tokens (the model's limit at most).
    pub max_tokens: usize,
    /// Texts encoded per forward pass.
    pub batch_size: usize,
}

impl BertEmbedder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`. Weight names may carry a
    /// `bert.` prefix (BertModel checkpoints) or not (sentence-transformers exports).
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| KnowledgeError::io(&path, e))
        };
        let config: BertConfig = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| model_error(format!("config.json: {e}")))?;
        if config.num_attention_heads == 0
            || !config.hidden_size.is_multiple_of(config.num_attention_heads)
        {
            return Err(model_error("hidden_size is not a multiple of num_attention_heads"));
        }
        let mut tokenizer = tokenizers::Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| model_error(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| model_error(format!("tokenizer.json: {e}")))?;
        let device = Device::Cpu;
        let weights_path = dir.join("model.safetensors");
        let mut tensors = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|e| model_error(format!("{}: {e}", weights_path.display())))?;
        if tensors.keys().any(|k| k.starts_with("bert.")) {
            tensors = tensors
                .into_iter()
                .map(|(k, v)| (k.strip_prefix("bert.").map_or(k.clone(), str::to_owned), v))
                .collect::<HashMap<_, _>>();
        }
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let c = &config;
        let h = c.hidden_size;
        let emb = vb.pp("embeddings");
        let words = candle_nn::embedding(c.vocab_size, h, emb.pp("word_embeddings"))?;
        let positions =
            candle_nn::embedding(c.max_position_embeddings, h, emb.pp("position_embeddings"))?;
        let types = candle_nn::embedding(c.type_vocab_size, h, emb.pp("token_type_embeddings"))?;
        let embed_norm = candle_nn::layer_norm(h, c.layer_norm_eps, emb.pp("LayerNorm"))?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for n in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{n}"));
            let attn = l.pp("attention");
            layers.push(Layer {
                query: candle_nn::linear(h, h, attn.pp("self.query"))?,
                key: candle_nn::linear(h, h, attn.pp("self.key"))?,
                value: candle_nn::linear(h, h, attn.pp("self.value"))?,
                attn_out: candle_nn::linear(h, h, attn.pp("output.dense"))?,
                attn_norm: candle_nn::layer_norm(h, c.layer_norm_eps, attn.pp("output.LayerNorm"))?,
                inter: candle_nn::linear(h, c.intermediate_size, l.pp("intermediate.dense"))?,
                out: candle_nn::linear(c.intermediate_size, h, l.pp("output.dense"))?,
                out_norm: candle_nn::layer_norm(h, c.layer_norm_eps, l.pp("output.LayerNorm"))?,
            });
        }
        let name = format!(
            "bert:{}:{}x{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
            c.num_hidden_layers,
            h
        );
        Ok(BertEmbedder {
            name,
            max_tokens: c.max_position_embeddings.min(256),
            batch_size: 16,
            config,
            tokenizer,
            words,
            positions,
            types,
            embed_norm,
            layers,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding =
            self.tokenizer.encode(text, true).map_err(|e| model_error(format!("tokenize: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        let max = self.max_tokens.clamp(2, self.config.max_position_embeddings);
        if ids.len() > max {
            // Keep the closing special token ([SEP]) the model was trained to see.
            let last = ids[ids.len() - 1];
            ids.truncate(max - 1);
            ids.push(last);
        }
        Ok(ids)
    }

    /// Encodes one batch of token id lists (padded here) into pooled, normalised vectors.
    fn forward(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let device = Device::Cpu;
        let len = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let n = batch.len();
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for row in batch {
            ids.extend(row.iter().copied());
            ids.extend(std::iter::repeat_n(0u32, len - row.len()));
            mask.extend(std::iter::repeat_n(1f32, row.len()));
            mask.extend(std::iter::repeat_n(0f32, len - row.len()));
        }
        let ids = Tensor::from_vec(ids, (n, len), &device)?;
        let mask = Tensor::from_vec(mask, (n, len), &device)?;
        let positions = Tensor::arange(0u32, len as u32, &device)?.unsqueeze(0)?;
        let type_ids = ids.zeros_like()?;
        let x = self
            .words
            .forward(&ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?
            .add(&self.types.forward(&type_ids)?)?;
        let mut x = self.embed_norm.forward(&x)?;
        // Additive attention bias: 0 for real tokens, a large negative number for padding.
        let bias = ((mask.clone() - 1.0)? * 1e4)?.reshape((n, 1, 1, len))?;
        let heads = self.config.num_attention_heads;
        let head_dim = self.config.hidden_size / heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &self.layers {
            let split = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((n, len, heads, head_dim))?.transpose(1, 2)?.contiguous()?)
            };
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((n, len, heads * head_dim))?;
            let attended = layer.attn_norm.forward(&(layer.attn_out.forward(&context)? + &x)?)?;
            let inner = layer.inter.forward(&attended)?.gelu_erf()?;
            x = layer.out_norm.forward(&(layer.out.forward(&inner)? + attended)?)?;
        }
        let summed = x.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
        let counts = mask.sum_keepdim(1)?.clamp(1.0, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

impl Embedder for BertEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.config.hidden_size
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids = texts.iter().map(|t| self.token_ids(t)).collect::<Result<Vec<_>>>()?;
        // Batch texts of similar length together so little compute goes to padding.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        for group in order.chunks(self.batch_size.max(1)) {
            let batch: Vec<Vec<u32>> = group.iter().map(|&i| ids[i].clone()).collect();
            for (&i, vector) in group.iter().zip(self.forward(&batch)?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }
}

/// Dot product of two equal-length vectors (the cosine for unit vectors). Eight independent partial sums
/// let the compiler use SIMD lanes (a single running sum must stay sequential).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Writes a tiny BERT with seeded random weights (hidden 32, 2 layers, 4 heads) and a character-level
/// WordPiece vocabulary (ASCII letters and digits, `##` continuations, every CJK unified ideograph) into
/// `dir`. Its vectors mean nothing, but the whole path — tokenizer, encoder, pooling, vector index,
/// fusion — runs exactly as with real weights, so tests need no downloaded model.
pub fn write_random_bert(dir: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| KnowledgeError::io(dir, e))?;
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut vocab: Vec<String> = specials.iter().map(|s| (*s).to_owned()).collect();
    let ascii: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    vocab.extend(ascii.iter().map(char::to_string));
    vocab.extend(ascii.iter().map(|c| format!("##{c}")));
    vocab.extend("，。！？；：、,.!?;:%()（）".chars().map(|c| c.to_string()));
    vocab.extend((0x4E00u32..=0x9FFF).filter_map(char::from_u32).map(|c| c.to_string()));
    let config = BertConfig {
        vocab_size: vocab.len(),
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 128,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
    };
    let special = |name: &str, id: usize| {
        serde_json::json!({"id": id, "special": true, "content": name, "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false})
    };
    let seq =
        |type_id: u32, id: &str| serde_json::json!({"Sequence": {"id": id, "type_id": type_id}});
    let tok = |type_id: u32, id: &str| serde_json::json!({"SpecialToken": {"id": id, "type_id": type_id}});
    let vocab_map: serde_json::Map<String, serde_json::Value> =
        vocab.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": specials.iter().enumerate().map(|(i, s)| special(s, i)).collect::<Vec<_>>(),
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [tok(0, "[CLS]"), seq(0, "A"), tok(0, "[SEP]")],
            "pair": [tok(0, "[CLS]"), seq(0, "A"), tok(0, "[SEP]"), seq(1, "B"), tok(1, "[SEP]")],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab_map},
    });
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| KnowledgeError::io(&path, e))
    };
    write("tokenizer.json", tokenizer.to_string().into_bytes())?;
    write("config.json", serde_json::to_vec_pretty(&config).unwrap_or_default())?;
    let mut rng = crate::eval::SplitMix(seed);
    let device = Device::Cpu;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut random = |name: String, shape: &[usize], scale: f32| -> Result<()> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect();
        tensors.insert(name, Tensor::from_vec(values, shape, &device)?);
        Ok(())
    };
    let (h, i) = (config.hidden_size, config.intermediate_size);
    random("embeddings.word_embeddings.weight".into(), &[config.vocab_size, h], 1.0)?;
    random(
        "embeddings.position_embeddings.weight".into(),
        &[config.max_position_embeddings, h],
        0.1,
    )?;
    random("embeddings.token_type_embeddings.weight".into(), &[2, h], 0.1)?;
    let mut norms = vec!["embeddings.LayerNorm".to_owned()];
    for n in 0..config.num_hidden_layers {
        let l = format!("encoder.layer.{n}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            random(format!("{l}.{name}.weight"), &[out, inp], 0.3)?;
            random(format!("{l}.{name}.bias"), &[out], 0.05)?;
        }
        norms.push(format!("{l}.attention.output.LayerNorm"));
        norms.push(format!("{l}.output.LayerNorm"));
    }
    for norm in norms {
        tensors.insert(format!("{norm}.weight"), Tensor::ones(h, DType::F32, &device)?);
        tensors.insert(format!("{norm}.bias"), Tensor::zeros(h, DType::F32, &device)?);
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}
