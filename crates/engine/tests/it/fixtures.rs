//! Shared helpers: paths of the committed fixture models and a loader for their expected logits.

use std::collections::HashMap;
use std::path::PathBuf;

use engine::batch::{LogitsWanted, SeqChunk, step};
use engine::kv_cache::{KvCache, KvCacheConfig};
use engine::model::{LoadOptions, LoadedModel, load};

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

pub struct Expected {
    pub tokens: Vec<u32>,
    /// Logits of every position by source: `numpy`, `llamacpp_f32`, `llamacpp_q8_0`, `llamacpp_<quant>`.
    pub logits: HashMap<String, Vec<Vec<f32>>>,
}

impl Expected {
    pub fn rows(&self, source: &str) -> &Vec<Vec<f32>> {
        self.logits.get(source).unwrap_or_else(|| panic!("expected.json has no `{source}`"))
    }
}

pub fn expected(arch: &str) -> Expected {
    let text = std::fs::read_to_string(fixture(&format!("{arch}/expected.json"))).unwrap();
    let mut v: HashMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let tokens = serde_json::from_value(v.remove("tokens").unwrap()).unwrap();
    v.remove("arch");
    let logits =
        v.into_iter().map(|(k, rows)| (k, serde_json::from_value(rows).unwrap())).collect();
    Expected { tokens, logits }
}

pub fn load_fixture(rel: &str) -> LoadedModel {
    load(&fixture(rel), &LoadOptions { warm_up: true }).unwrap()
}

pub fn cache_for(m: &LoadedModel, block_size: usize, tokens: usize) -> KvCache {
    let cfg = m.model.config();
    KvCache::new(
        cfg,
        &KvCacheConfig {
            block_size,
            max_bytes: KvCache::bytes_per_token(cfg) * tokens,
            max_context: tokens,
        },
    )
    .unwrap()
}

/// Logits of every position of `tokens`, run as one prefill chunk.
pub fn all_logits(m: &LoadedModel, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = cache_for(m, 4, 64);
    let seq = cache.add_sequence();
    let out =
        step(m.model.as_ref(), &mut cache, &[SeqChunk { seq, tokens, logits: LogitsWanted::All }])
            .unwrap();
    out.into_iter().next().unwrap().rows
}

pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(u, v)| (u - v).abs()))
        .fold(0.0, f32::max)
}
