//! Causal attention over the paged KV cache with an online softmax (Milakov & Gimelshein 2018; the CPU form
//! of FlashAttention): scores are never materialised, each query streams over its sequence's blocks once,
//! keeping a running maximum, denominator and weighted sum. Memory per query is one head-width accumulator, so
//! memory and per-token cost grow only linearly with context. Grouped-query attention processes all query
//! heads that share a KV head together, so each cached key and value is converted from f16 once per group.

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::kv_cache::{KvGeometry, LayerKv};

/// Where each query token of a step reads from: its sequence's block table and how many positions it sees.
#[derive(Debug, Clone, Copy)]
pub struct QueryContext<'a> {
    /// The sequence's block table.
    pub blocks: &'a [u32],
    /// Positions `0..context_len` are visible (the token's own position + 1).
    pub context_len: usize,
}

/// Computes attention for every query token.
///
/// `q` is `[n_tokens, n_heads, head_dim]`; `out` has the same layout. `queries[t]` says what token `t` sees.
pub fn paged_attention(
    q: &[f32],
    n_heads: usize,
    kv: &LayerKv,
    geo: &KvGeometry,
    queries: &[QueryContext<'_>],
    out: &mut [f32],
) {
    let hd = geo.head_dim;
    let group = n_heads / geo.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // One work item per (token, kv head): `group` query heads, contiguous in q and out.
    out.par_chunks_mut(group * hd).enumerate().for_each(|(item, out)| {
        let t = item / geo.n_kv_heads;
        let kv_head = item % geo.n_kv_heads;
        let q = &q[item * group * hd..(item + 1) * group * hd];
        attend_group(q, group, scale, kv, geo, kv_head, &queries[t], out);
    });
}

#[allow(clippy::too_many_arguments)]
fn attend_group(
    q: &[f32],
    group: usize,
    scale: f32,
    kv: &LayerKv,
    geo: &KvGeometry,
    kv_head: usize,
    ctx: &QueryContext<'_>,
    out: &mut [f32],
) {
    let hd = geo.head_dim;
    let bs = geo.block_size;
    let mut max = vec![f32::NEG_INFINITY; group];
    let mut denom = vec![0.0f32; group];
    out.fill(0.0);
    let mut keys = vec![0.0f32; bs * hd];
    let mut values = vec![0.0f32; bs * hd];
    let mut scores = vec![0.0f32; bs];
    let n_blocks = ctx.context_len.div_ceil(bs);
    for (b, &block) in ctx.blocks[..n_blocks].iter().enumerate() {
        let n = (ctx.context_len - b * bs).min(bs);
        let at = geo.index(block, kv_head, 0);
        convert(&kv.k[at..at + n * hd], &mut keys[..n * hd]);
        convert(&kv.v[at..at + n * hd], &mut values[..n * hd]);
        for g in 0..group {
            let qg = &q[g * hd..(g + 1) * hd];
            let mut block_max = f32::NEG_INFINITY;
            for (j, s) in scores[..n].iter_mut().enumerate() {
                *s = dot(qg, &keys[j * hd..(j + 1) * hd]) * scale;
                block_max = block_max.max(*s);
            }
            let new_max = max[g].max(block_max);
            let acc = &mut out[g * hd..(g + 1) * hd];
            let correction = (max[g] - new_max).exp();
            if correction != 1.0 {
                denom[g] *= correction;
                acc.iter_mut().for_each(|a| *a *= correction);
            }
            for (j, &s) in scores[..n].iter().enumerate() {
                let p = (s - new_max).exp();
                denom[g] += p;
                axpy(p, &values[j * hd..(j + 1) * hd], acc);
            }
            max[g] = new_max;
        }
    }
    for g in 0..group {
        let inv = if denom[g] > 0.0 { 1.0 / denom[g] } else { 0.0 };
        out[g * hd..(g + 1) * hd].iter_mut().for_each(|a| *a *= inv);
    }
}

fn convert(src: &[f16], dst: &mut [f32]) {
    src.convert_to_f32_slice(dst);
}

/// Dot product with eight independent accumulators so that the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain softmax attention over f16-rounded keys/values, the definition the online version must match.
    fn naive(q: &[f32], keys: &[Vec<f32>], values: &[Vec<f32>]) -> Vec<f32> {
        let hd = q.len();
        let r = |x: f32| f16::from_f32(x).to_f32();
        let s: Vec<f32> = keys
            .iter()
            .map(|k| q.iter().zip(k).map(|(a, b)| a * r(*b)).sum::<f32>() / (hd as f32).sqrt())
            .collect();
        let m = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f32 = e.iter().sum();
        (0..hd).map(|d| e.iter().zip(values).map(|(p, v)| p * r(v[d])).sum::<f32>() / z).collect()
    }

    #[test]
    fn online_softmax_matches_naive_across_blocks_and_gqa() {
        let geo = KvGeometry { block_size: 4, n_kv_heads: 2, head_dim: 8 };
        let n_blocks = 5;
        let mut kv = LayerKv {
            k: vec![f16::ZERO; n_blocks * geo.block_elems()],
            v: vec![f16::ZERO; n_blocks * geo.block_elems()],
        };
        // A scrambled block table: positions 0..11 live in blocks 3, 0, 4.
        let table = [3u32, 0, 4];
        let ctx_len = 11;
        let val =
            |p: usize, h: usize, d: usize, s: f32| ((p * 31 + h * 7 + d) as f32 * s).sin() * 2.0;
        for p in 0..ctx_len {
            let slot = crate::kv_cache::Slot { block: table[p / 4], offset: p % 4 };
            let k: Vec<f32> = (0..16).map(|i| val(p, i / 8, i % 8, 0.37)).collect();
            let v: Vec<f32> = (0..16).map(|i| val(p, i / 8, i % 8, 0.71)).collect();
            kv.write(&geo, slot, &k, &v);
        }
        let n_heads = 4;
        let q: Vec<f32> = (0..n_heads * 8).map(|i| (i as f32 * 0.13).cos()).collect();
        let mut out = vec![0.0; n_heads * 8];
        let ctx = [QueryContext { blocks: &table, context_len: ctx_len }];
        paged_attention(&q, n_heads, &kv, &geo, &ctx, &mut out);
        for h in 0..n_heads {
            let kvh = h / 2;
            let keys: Vec<Vec<f32>> =
                (0..ctx_len).map(|p| (0..8).map(|d| val(p, kvh, d, 0.37)).collect()).collect();
            let vals: Vec<Vec<f32>> =
                (0..ctx_len).map(|p| (0..8).map(|d| val(p, kvh, d, 0.71)).collect()).collect();
            let want = naive(&q[h * 8..(h + 1) * 8], &keys, &vals);
            for (a, b) in out[h * 8..(h + 1) * 8].iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "head {h}: {a} vs {b}");
            }
        }
    }
}
