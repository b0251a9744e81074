//! Hybrid fusion of N ranked lists by weighted reciprocal rank: a chunk at rank r (1-based) in list i
//! earns `w_i / (k + r)`. RRF needs no score calibration between BM25 fields and (later) vector
//! similarities. Weights are explicit and tested, because "hybrid weighting that silently does nothing"
//! is a known failure of other RAG systems: a list with weight 0 contributes nothing, and changing the
//! weights changes the ranking (see tests/it/fusion.rs).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One retriever's answer: chunk keys best first, with the retriever's own scores (kept for display).
#[derive(Debug, Clone, PartialEq)]
pub struct RankedList {
    /// Which retriever produced it (e.g. `jieba`, `bigram`, `vector`).
    pub name: String,
    /// How much this list counts in the fusion.
    pub weight: f32,
    /// `(chunk key, retriever score)`, best first.
    pub items: Vec<(u64, f32)>,
}

/// The fusion rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fuser {
    /// RRF rank constant: larger flattens the difference between ranks (Elasticsearch uses 60).
    pub k: f32,
}

impl Default for Fuser {
    fn default() -> Self {
        Fuser { k: 60.0 }
    }
}

impl Fuser {
    /// Fused `(key, score)` best first; ties broken by key so the order is deterministic.
    pub fn fuse(&self, lists: &[RankedList]) -> Vec<(u64, f32)> {
        let mut scores: HashMap<u64, f32> = HashMap::new();
        for list in lists {
            if list.weight <= 0.0 {
                continue;
            }
            for (rank, (key, _)) in list.items.iter().enumerate() {
                *scores.entry(*key).or_insert(0.0) += list.weight / (self.k + rank as f32 + 1.0);
            }
        }
        let mut fused: Vec<(u64, f32)> = scores.into_iter().collect();
        fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        fused
    }
}

/// Multiplier for a chunk published `age_days` ago: `1 + weight * 0.5^(age / half_life)`, so a fresh
/// chunk gets up to `1 + weight` and an old one tends to 1. Future dates count as fresh.
pub fn freshness_multiplier(age_days: f64, weight: f64, half_life_days: f64) -> f64 {
    if weight <= 0.0 || half_life_days <= 0.0 {
        return 1.0;
    }
    1.0 + weight * 0.5f64.powf(age_days.max(0.0) / half_life_days)
}
