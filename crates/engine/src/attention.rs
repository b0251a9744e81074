//! Causal attention over the paged KV cache with an online softmax (Milakov & Gimelshein 2018; the CPU form
//! of FlashAttention): scores are never materialised, each query streams over its sequence's blocks once,
//! keeping a running maximum, denominator and weighted sum. Memory per query is one head-width accumulator, so
//! memory and per-token cost grow only linearly with context. Grouped-query attention processes all query
//! heads that share a KV head together, so each cached key and value is converted from f16 once per group.

use rayon::prelude::*;

use crate::kv_cache::{KvGeometry, LayerKv};

/// A run of consecutive query tokens of one sequence (positions `first_context_len - 1` onwards): the unit
/// of work, so that each cached block is converted from f16 once per tile instead of once per token.
#[derive(Debug, Clone, Copy)]
pub struct QueryTile<'a> {
    /// Index of the tile's first token in the step.
    pub first_token: usize,
    /// Tokens in the tile.
    pub n_tokens: usize,
    /// The sequence's block table.
    pub blocks: &'a [u32],
    /// The first token sees positions `0..first_context_len`; token `i` of the tile sees one more per `i`.
    pub first_context_len: usize,
}

/// Query tokens per tile: enough to amortise the f16 conversion of a block, small enough to stay in cache.
pub const QUERY_TILE: usize = 16;

/// Splits a step's tokens into tiles: `token_seq[t]` is token `t`'s sequence, `positions[t]` its position.
pub fn tiles<'a>(
    token_seq: &[usize],
    positions: &[usize],
    seq_blocks: &'a [Vec<u32>],
) -> Vec<QueryTile<'a>> {
    let mut out: Vec<QueryTile<'a>> = Vec::new();
    for (t, (&seq, &pos)) in token_seq.iter().zip(positions).enumerate() {
        if let Some(last) = out.last_mut() {
            let same_run = token_seq[last.first_token] == seq
                && last.first_context_len + last.n_tokens == pos + 1;
            if same_run && last.n_tokens < QUERY_TILE {
                last.n_tokens += 1;
                continue;
            }
        }
        out.push(QueryTile {
            first_token: t,
            n_tokens: 1,
            blocks: &seq_blocks[seq],
            first_context_len: pos + 1,
        });
    }
    out
}

/// Computes causal attention for every query token.
///
/// `q` is `[n_tokens, n_heads, head_dim]`; `out` has the same layout. Every token belongs to exactly one tile.
pub fn paged_attention(
    q: &[f32],
    n_heads: usize,
    kv: &LayerKv,
    geo: &KvGeometry,
    tiles: &[QueryTile<'_>],
    out: &mut [f32],
) {
    let hd = geo.head_dim;
    let group = n_heads / geo.n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let items: Vec<(usize, usize)> =
        (0..tiles.len()).flat_map(|t| (0..geo.n_kv_heads).map(move |h| (t, h))).collect();
    let results: Vec<Vec<f32>> = items
        .par_iter()
        .map(|&(t, kv_head)| {
            crate::kernels::attend_tile(q, n_heads, group, scale, kv, geo, kv_head, &tiles[t])
        })
        .collect();
    for (&(t, kv_head), res) in items.iter().zip(results) {
        let tile = &tiles[t];
        for i in 0..tile.n_tokens {
            let at = ((tile.first_token + i) * n_heads + kv_head * group) * hd;
            out[at..at + group * hd].copy_from_slice(&res[i * group * hd..(i + 1) * group * hd]);
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

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

    /// Every block size and the usual head widths (each takes its own kernel path), GQA groups of 1, 4 and 7
    /// heads (a partial row group), a scrambled block table, a partly filled last block.
    fn check_online_softmax(block_size: usize, head_dim: usize, group: usize) {
        let geo = KvGeometry { block_size, n_kv_heads: 2, head_dim };
        let n_blocks = 5;
        let mut kv = LayerKv {
            k: vec![f16::ZERO; n_blocks * geo.block_elems()],
            v: vec![f16::ZERO; n_blocks * geo.block_elems()],
        };
        let table = [3u32, 0, 4];
        let ctx_len = 2 * block_size + block_size / 2 + 1;
        let val =
            |p: usize, h: usize, d: usize, s: f32| ((p * 31 + h * 7 + d) as f32 * s).sin() * 2.0;
        let row = 2 * head_dim;
        for p in 0..ctx_len {
            let slot =
                crate::kv_cache::Slot { block: table[p / block_size], offset: p % block_size };
            let k: Vec<f32> = (0..row).map(|i| val(p, i / head_dim, i % head_dim, 0.37)).collect();
            let v: Vec<f32> = (0..row).map(|i| val(p, i / head_dim, i % head_dim, 0.71)).collect();
            kv.write(&geo, slot, &k, &v);
        }
        let n_heads = 2 * group;
        let q: Vec<f32> = (0..n_heads * head_dim).map(|i| (i as f32 * 0.13).cos() * 0.3).collect();
        let mut out = vec![0.0; n_heads * head_dim];
        let tiles =
            [QueryTile { first_token: 0, n_tokens: 1, blocks: &table, first_context_len: ctx_len }];
        paged_attention(&q, n_heads, &kv, &geo, &tiles, &mut out);
        for h in 0..n_heads {
            let kvh = h / group;
            let keys: Vec<Vec<f32>> = (0..ctx_len)
                .map(|p| (0..head_dim).map(|d| val(p, kvh, d, 0.37)).collect())
                .collect();
            let vals: Vec<Vec<f32>> = (0..ctx_len)
                .map(|p| (0..head_dim).map(|d| val(p, kvh, d, 0.71)).collect())
                .collect();
            let want = naive(&q[h * head_dim..(h + 1) * head_dim], &keys, &vals);
            for (a, b) in out[h * head_dim..(h + 1) * head_dim].iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "bs {block_size} hd {head_dim} head {h}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn online_softmax_matches_naive_across_blocks_and_gqa() {
        for (bs, hd, group) in
            [(4, 8, 2), (8, 64, 1), (16, 64, 7), (16, 128, 4), (32, 64, 7), (32, 8, 2), (16, 96, 3)]
        {
            check_online_softmax(bs, hd, group);
        }
    }
}
