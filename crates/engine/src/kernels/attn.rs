//! The inner loop of paged attention (one query tile against one KV head, online softmax over the cached
//! blocks), compiled twice: once for the baseline CPU and once with AVX2+FMA enabled, chosen at run time. The
//! body is plain Rust written so that the compiler vectorises it (scores of a whole block accumulated across
//! the head dimension from keys stored transposed, an `exp` without a libm call); under AVX2 each loop runs eight lanes wide with fused multiply-adds. At long context
//! this loop is what decode spends its time in, so it decides the speed after a 16K-token prompt.

use half::slice::HalfFloatSliceExt;

use super::has_avx2;
use crate::attention::QueryTile;
use crate::kv_cache::{KvGeometry, LayerKv};

/// One tile and one KV head: returns `[n_tokens, group, head_dim]`.
#[allow(clippy::too_many_arguments)]
pub fn attend_tile(
    q: &[f32],
    n_heads: usize,
    group: usize,
    scale: f32,
    kv: &LayerKv,
    geo: &KvGeometry,
    kv_head: usize,
    tile: &QueryTile<'_>,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { attend_tile_avx2(q, n_heads, group, scale, kv, geo, kv_head, tile) };
    }
    attend_tile_impl::<false>(q, n_heads, group, scale, kv, geo, kv_head, tile)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_tile_avx2(
    q: &[f32],
    n_heads: usize,
    group: usize,
    scale: f32,
    kv: &LayerKv,
    geo: &KvGeometry,
    kv_head: usize,
    tile: &QueryTile<'_>,
) -> Vec<f32> {
    attend_tile_impl::<true>(q, n_heads, group, scale, kv, geo, kv_head, tile)
}

/// `a·b + c`, fused when the CPU has FMA (otherwise `mul_add` would call libm).
#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` for `x ≤ 0` (softmax weights after subtracting the running maximum), relative error below 4e-6:
/// `2^(x·log2 e)` split into an integer power (built from the exponent bits) and the degree-6 Taylor polynomial of `2^f`, `|f| ≤ 1/2`.
#[inline(always)]
fn exp_neg<const FMA: bool>(x: f32) -> f32 {
    let t = x.max(-87.0) * std::f32::consts::LOG2_E;
    // Round to nearest with the 1.5·2^23 trick: no libm call, vectorises.
    let n = (t + 12_582_912.0) - 12_582_912.0;
    let f = t - n;
    let mut p = 1.540_353e-4;
    p = fma::<FMA>(p, f, 1.333_355_8e-3);
    p = fma::<FMA>(p, f, 9.618_129e-3);
    p = fma::<FMA>(p, f, 5.550_411e-2);
    p = fma::<FMA>(p, f, 2.402_265e-1);
    p = fma::<FMA>(p, f, std::f32::consts::LN_2);
    p = fma::<FMA>(p, f, 1.0);
    f32::from_bits(((n as i32 + 127) << 23) as u32) * p
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_tile_impl<const FMA: bool>(
    q: &[f32],
    n_heads: usize,
    group: usize,
    scale: f32,
    kv: &LayerKv,
    geo: &KvGeometry,
    kv_head: usize,
    tile: &QueryTile<'_>,
) -> Vec<f32> {
    let hd = geo.head_dim;
    let bs = geo.block_size;
    let rows = tile.n_tokens * group;
    let mut max = vec![f32::NEG_INFINITY; rows];
    let mut denom = vec![0.0f32; rows];
    let mut acc = vec![0.0f32; rows * hd];
    // Keys of one block, `[head_dim][slot]` as the cache stores them.
    let mut keys_t = vec![0.0f32; hd * bs];
    let mut values = vec![0.0f32; bs * hd];
    let mut scores = vec![0.0f32; bs];
    let last_context = tile.first_context_len + tile.n_tokens - 1;
    for (b, &block) in tile.blocks[..last_context.div_ceil(bs)].iter().enumerate() {
        let n_block = (last_context - b * bs).min(bs);
        let at = geo.index(block, kv_head, 0);
        kv.k[at..at + hd * bs].convert_to_f32_slice(&mut keys_t);
        kv.v[at..at + n_block * hd].convert_to_f32_slice(&mut values[..n_block * hd]);
        for i in 0..tile.n_tokens {
            let visible = (tile.first_context_len + i).saturating_sub(b * bs).min(n_block);
            if visible == 0 {
                continue;
            }
            let token = tile.first_token + i;
            for g in 0..group {
                let head = kv_head * group + g;
                let qg = &q[(token * n_heads + head) * hd..(token * n_heads + head + 1) * hd];
                let r = i * group + g;
                let scores = &mut scores[..visible];
                scores.iter_mut().for_each(|s| *s = 0.0);
                for (&qd, kt) in qg.iter().zip(keys_t.chunks_exact(bs)) {
                    let qd = qd * scale;
                    for (s, &k) in scores.iter_mut().zip(kt) {
                        *s = fma::<FMA>(qd, k, *s);
                    }
                }
                let block_max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                let new_max = max[r].max(block_max);
                let a = &mut acc[r * hd..(r + 1) * hd];
                if new_max > max[r] {
                    let correction = exp_neg::<FMA>(max[r] - new_max);
                    denom[r] *= correction;
                    a.iter_mut().for_each(|x| *x *= correction);
                    max[r] = new_max;
                }
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = exp_neg::<FMA>(*s - new_max);
                    sum += *s;
                }
                denom[r] += sum;
                for (&p, v) in scores.iter().zip(values.chunks_exact(hd)) {
                    for (a, &v) in a.iter_mut().zip(v) {
                        *a = fma::<FMA>(p, v, *a);
                    }
                }
            }
        }
    }
    for r in 0..rows {
        let inv = if denom[r] > 0.0 { 1.0 / denom[r] } else { 0.0 };
        acc[r * hd..(r + 1) * hd].iter_mut().for_each(|x| *x *= inv);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_accurate_over_the_softmax_range() {
        for i in 0..=2000 {
            let x = -(i as f32) * 0.04;
            let (want, got) = (x.exp(), exp_neg::<false>(x));
            assert!((got - want).abs() <= 4e-6 * want + 1e-37, "exp({x}) = {got}, want {want}");
            assert!((exp_neg::<true>(x) - got).abs() <= 1e-6 * want + 1e-37);
        }
        assert!(exp_neg::<false>(f32::NEG_INFINITY) < 1e-37);
    }
}
