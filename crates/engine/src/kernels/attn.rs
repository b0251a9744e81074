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
    specialised::<false>(q, n_heads, group, scale, kv, geo, kv_head, tile)
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
    specialised::<true>(q, n_heads, group, scale, kv, geo, kv_head, tile)
}

/// Calls the body with the common head widths and the block size as constants, so that the compiler unrolls
/// the per-row loops and keeps scores and accumulators in registers. Block sizes are one of
/// [`crate::kv_cache::BLOCK_SIZES`] (checked when the cache is built).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn specialised<const FMA: bool>(
    q: &[f32],
    n_heads: usize,
    group: usize,
    scale: f32,
    kv: &LayerKv,
    geo: &KvGeometry,
    kv_head: usize,
    tile: &QueryTile<'_>,
) -> Vec<f32> {
    let args = (q, n_heads, group, scale, kv, geo, kv_head, tile);
    match (geo.head_dim, geo.block_size) {
        (64, 16) => attend_tile_impl::<FMA, 16>(args, 64),
        (128, 16) => attend_tile_impl::<FMA, 16>(args, 128),
        (hd, 16) => attend_tile_impl::<FMA, 16>(args, hd),
        (hd, 32) => attend_tile_impl::<FMA, 32>(args, hd),
        (hd, 8) => attend_tile_impl::<FMA, 8>(args, hd),
        (hd, _) => attend_tile_impl::<FMA, 4>(args, hd),
    }
}

/// The arguments of [`attend_tile`], passed through unchanged.
type TileArgs<'a, 'b> =
    (&'a [f32], usize, usize, f32, &'a LayerKv, &'a KvGeometry, usize, &'a QueryTile<'b>);

/// `a·b + c`, fused when the CPU has FMA (otherwise `mul_add` would call libm).
#[inline(always)]
pub(super) fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` for `x ≤ 0` (softmax weights after subtracting the running maximum), relative error below 4e-6:
/// `2^(x·log2 e)` split into an integer power (built from the exponent bits) and the degree-6 Taylor polynomial of `2^f`, `|f| ≤ 1/2`.
#[inline(always)]
pub(super) fn exp_neg<const FMA: bool>(x: f32) -> f32 {
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

/// Query heads whose scores against a block are computed together: each key vector loaded is used this many
/// times, and `ROWS × BS` scores stay in registers while the head dimension is swept.
const ROWS: usize = 4;

/// The body; `hd` equals `geo.head_dim` (a constant after inlining for the common widths) and `BS` the block
/// size.
#[inline(always)]
fn attend_tile_impl<const FMA: bool, const BS: usize>(
    args: TileArgs<'_, '_>,
    hd: usize,
) -> Vec<f32> {
    let (q, n_heads, group, scale, kv, geo, kv_head, tile) = args;
    let rows = tile.n_tokens * group;
    let mut max = vec![f32::NEG_INFINITY; rows];
    let mut denom = vec![0.0f32; rows];
    let mut acc = vec![0.0f32; rows * hd];
    // Keys of one block, `[head_dim][slot]` as the cache stores them.
    let mut keys_t = vec![0.0f32; hd * BS];
    let mut values = vec![0.0f32; BS * hd];
    let last_context = tile.first_context_len + tile.n_tokens - 1;
    for (b, &block) in tile.blocks[..last_context.div_ceil(BS)].iter().enumerate() {
        let n_block = (last_context - b * BS).min(BS);
        let at = geo.index(block, kv_head, 0);
        kv.k[at..at + hd * BS].convert_to_f32_slice(&mut keys_t);
        kv.v[at..at + n_block * hd].convert_to_f32_slice(&mut values[..n_block * hd]);
        for i in 0..tile.n_tokens {
            let visible = (tile.first_context_len + i).saturating_sub(b * BS).min(n_block);
            if visible == 0 {
                continue;
            }
            let token = tile.first_token + i;
            for g0 in (0..group).step_by(ROWS) {
                let n_rows = ROWS.min(group - g0);
                // Rows past the group repeat its last head; their scores are computed and dropped.
                let q_rows: [&[f32]; ROWS] = std::array::from_fn(|r| {
                    let head = kv_head * group + g0 + r.min(n_rows - 1);
                    &q[(token * n_heads + head) * hd..(token * n_heads + head + 1) * hd]
                });
                let mut scores = [[0.0f32; BS]; ROWS];
                block_scores::<FMA, BS>(&q_rows, &keys_t, hd, scale, &mut scores);
                for (rr, s) in scores[..n_rows].iter_mut().enumerate() {
                    let r = i * group + g0 + rr;
                    let s = &mut s[..visible];
                    let new_max = s.iter().fold(max[r], |m, &v| m.max(v));
                    let a = &mut acc[r * hd..(r + 1) * hd];
                    if new_max > max[r] {
                        let correction = exp_neg::<FMA>(max[r] - new_max);
                        denom[r] *= correction;
                        a.iter_mut().for_each(|x| *x *= correction);
                        max[r] = new_max;
                    }
                    let mut sum = 0.0;
                    for v in s.iter_mut() {
                        *v = exp_neg::<FMA>(*v - new_max);
                        sum += *v;
                    }
                    denom[r] += sum;
                    weighted_sum::<FMA>(a, s, &values, hd);
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

/// `scores[r][j] = scale · q_rows[r] · key_j` for the block's keys stored `[head_dim][BS]`.
#[inline(always)]
fn block_scores<const FMA: bool, const BS: usize>(
    q_rows: &[&[f32]; ROWS],
    keys_t: &[f32],
    hd: usize,
    scale: f32,
    scores: &mut [[f32; BS]; ROWS],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA && BS.is_multiple_of(16) {
        // SAFETY: `FMA` is true only inside `attend_tile_avx2`, whose caller detected AVX2 and FMA; `keys_t`
        // holds `hd` rows of `BS` and every query row `hd` values; each call covers 16 of the `BS` columns.
        for half in (0..BS).step_by(16) {
            unsafe {
                avx2::scores16(q_rows, keys_t, hd, BS, half, scale, scores.as_flattened_mut());
            };
        }
        return;
    }
    for (d, kt) in keys_t.chunks_exact(BS).enumerate() {
        for (s, qr) in scores.iter_mut().zip(q_rows) {
            let qd = qr[d] * scale;
            for (s, &k) in s.iter_mut().zip(kt) {
                *s = fma::<FMA>(qd, k, *s);
            }
        }
    }
}

/// `a += Σ_j p[j] · values[j]` (values `[j][head_dim]`).
#[inline(always)]
fn weighted_sum<const FMA: bool>(a: &mut [f32], p: &[f32], values: &[f32], hd: usize) {
    #[cfg(target_arch = "x86_64")]
    if FMA && hd.is_multiple_of(64) {
        // SAFETY: as in `block_scores`; `a` has `hd` elements and `values` `p.len()` rows of `hd`.
        unsafe { avx2::weighted_sum64(a, p, values, hd) };
        return;
    }
    for (&pj, v) in p.iter().zip(values.chunks_exact(hd)) {
        for (a, &v) in a.iter_mut().zip(v) {
            *a = fma::<FMA>(pj, v, *a);
        }
    }
}

/// The two hot loops with explicit AVX2 registers: the compiler's own vectorisation of them either spilled
/// the accumulators or round-tripped them through memory on every step.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::ROWS;

    /// Scores of `ROWS` query rows against 16 keys (columns `first..first+16` of a block of `bs`): 8 accumulator registers, each key row
    /// loaded once for all rows.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `first + 16 <= bs`, `keys_t.len() >= hd * bs`, each
    /// `q_rows[r].len() >= hd`, `out.len() >= ROWS * bs`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn scores16(
        q_rows: &[&[f32]; ROWS],
        keys_t: &[f32],
        hd: usize,
        bs: usize,
        first: usize,
        scale: f32,
        out: &mut [f32],
    ) {
        debug_assert!(first + 16 <= bs && keys_t.len() >= hd * bs && out.len() >= ROWS * bs);
        let mut s = [[_mm256_setzero_ps(); 2]; ROWS];
        let kp = keys_t.as_ptr();
        for d in 0..hd {
            // SAFETY: `d < hd` and `first + 16 <= bs`, so `d * bs + first + 16 <= keys_t.len()`, and
            // `d < q_rows[r].len()`.
            unsafe {
                let k0 = _mm256_loadu_ps(kp.add(d * bs + first));
                let k1 = _mm256_loadu_ps(kp.add(d * bs + first + 8));
                for (s, qr) in s.iter_mut().zip(q_rows) {
                    let qd = _mm256_set1_ps(*qr.get_unchecked(d) * scale);
                    s[0] = _mm256_fmadd_ps(qd, k0, s[0]);
                    s[1] = _mm256_fmadd_ps(qd, k1, s[1]);
                }
            }
        }
        for (r, s) in s.iter().enumerate() {
            // SAFETY: `out` has room for ROWS rows of `bs`, and `first + 16 <= bs`.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr().add(r * bs + first), s[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(r * bs + first + 8), s[1]);
            }
        }
    }

    /// `a += Σ_j p[j] · values[j]` in 64-wide column chunks held in 8 registers.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `hd % 64 == 0`, `a.len() == hd`, `values.len() >= p.len() * hd`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn weighted_sum64(a: &mut [f32], p: &[f32], values: &[f32], hd: usize) {
        debug_assert!(hd.is_multiple_of(64) && a.len() == hd && values.len() >= p.len() * hd);
        for c0 in (0..hd).step_by(64) {
            // SAFETY: `c0 + 64 <= hd = a.len()`, and row `j < p.len()` of `values` spans `j*hd..(j+1)*hd`.
            unsafe {
                let ap = a.as_mut_ptr().add(c0);
                let mut acc: [__m256; 8] = std::array::from_fn(|v| _mm256_loadu_ps(ap.add(8 * v)));
                for (j, &pj) in p.iter().enumerate() {
                    let pv = _mm256_set1_ps(pj);
                    let vp = values.as_ptr().add(j * hd + c0);
                    for (v, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vp.add(8 * v)), *acc);
                    }
                }
                for (v, acc) in acc.iter().enumerate() {
                    _mm256_storeu_ps(ap.add(8 * v), *acc);
                }
            }
        }
    }
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
