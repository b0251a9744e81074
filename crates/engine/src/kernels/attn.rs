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
    const ROUNDER: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer held in the low mantissa bits
    let t = x.max(-87.0) * std::f32::consts::LOG2_E;
    let shifted = t + ROUNDER;
    let n = shifted - ROUNDER;
    let f = t - n;
    let mut p = 1.540_353e-4;
    p = fma::<FMA>(p, f, 1.333_355_8e-3);
    p = fma::<FMA>(p, f, 9.618_129e-3);
    p = fma::<FMA>(p, f, 5.550_411e-2);
    p = fma::<FMA>(p, f, 2.402_265e-1);
    p = fma::<FMA>(p, f, std::f32::consts::LN_2);
    p = fma::<FMA>(p, f, 1.0);
    // `n` as an integer straight from the bits of `shifted` (an `as i32` cast would saturate, which the
    // compiler cannot vectorise); |n| ≤ 126 here.
    let n_int = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    f32::from_bits((n_int.wrapping_add(127) << 23) as u32) * p
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
    // The tile's query rows for this KV head, pre-multiplied by the softmax scale: the score loop then
    // broadcasts each element straight from memory, with no multiply per key row.
    let mut q_scaled = vec![0.0f32; rows * hd];
    for i in 0..tile.n_tokens {
        let head0 = (tile.first_token + i) * n_heads + kv_head * group;
        let src = &q[head0 * hd..(head0 + group) * hd];
        for (d, s) in q_scaled[i * group * hd..(i + 1) * group * hd].iter_mut().zip(src) {
            *d = s * scale;
        }
    }
    for (b, &block) in tile.blocks[..last_context.div_ceil(BS)].iter().enumerate() {
        let n_block = (last_context - b * BS).min(BS);
        let at = geo.index(block, kv_head, 0);
        let keys16 = &kv.k[at..at + hd * BS];
        if !(FMA && BS.is_multiple_of(16)) {
            // The AVX2 score loop widens the f16 keys itself, in registers.
            f16_to_f32::<FMA>(keys16, &mut keys_t);
        }
        f16_to_f32::<FMA>(&kv.v[at..at + n_block * hd], &mut values[..n_block * hd]);
        for i in 0..tile.n_tokens {
            let visible = (tile.first_context_len + i).saturating_sub(b * BS).min(n_block);
            if visible == 0 {
                continue;
            }
            for g0 in (0..group).step_by(ROWS) {
                let n_rows = ROWS.min(group - g0);
                let row0 = i * group + g0;
                let q_row = |r: usize| &q_scaled[(row0 + r) * hd..(row0 + r + 1) * hd];
                let mut scores = [[0.0f32; BS]; ROWS];
                // A group that is not a multiple of `ROWS` (Qwen2.5-0.5B has 7 heads per KV head) ends with
                // a narrower pass rather than computing scores for a repeated row.
                match n_rows {
                    4 => block_scores::<FMA, BS, 4>(
                        &std::array::from_fn(q_row),
                        (keys16, &keys_t),
                        hd,
                        &mut scores,
                    ),
                    3 => block_scores::<FMA, BS, 3>(
                        &std::array::from_fn(q_row),
                        (keys16, &keys_t),
                        hd,
                        &mut scores,
                    ),
                    2 => block_scores::<FMA, BS, 2>(
                        &std::array::from_fn(q_row),
                        (keys16, &keys_t),
                        hd,
                        &mut scores,
                    ),
                    _ => block_scores::<FMA, BS, 1>(
                        &std::array::from_fn(q_row),
                        (keys16, &keys_t),
                        hd,
                        &mut scores,
                    ),
                }
                for (rr, s) in scores[..n_rows].iter_mut().enumerate() {
                    let r = row0 + rr;
                    let s = &mut s[..visible];
                    let new_max = lane_max(s).max(max[r]);
                    if new_max > max[r] {
                        let correction = exp_neg::<FMA>(max[r] - new_max);
                        denom[r] *= correction;
                        acc[r * hd..(r + 1) * hd].iter_mut().for_each(|x| *x *= correction);
                        max[r] = new_max;
                    }
                    s.iter_mut().for_each(|v| *v = exp_neg::<FMA>(*v - new_max));
                    denom[r] += lane_sum(s);
                }
                let acc_rows = &mut acc[row0 * hd..(row0 + n_rows) * hd];
                match n_rows {
                    4 => weighted_sum::<FMA, BS, 4>(acc_rows, &scores, visible, &values, hd),
                    3 => weighted_sum::<FMA, BS, 3>(acc_rows, &scores, visible, &values, hd),
                    2 => weighted_sum::<FMA, BS, 2>(acc_rows, &scores, visible, &values, hd),
                    _ => weighted_sum::<FMA, BS, 1>(acc_rows, &scores, visible, &values, hd),
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

/// Widens cached f16 keys or values to f32. Under AVX2 (which implies F16C on every CPU that has it, and
/// `attend_tile_avx2` enables it) eight at a time in registers: the `half` crate's slice conversion goes
/// through a call per eight elements and took 40% of decode attention at long context.
#[inline(always)]
fn f16_to_f32<const FMA: bool>(src: &[half::f16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` is true only inside `attend_tile_avx2`, which enables F16C; lengths are checked.
        unsafe { avx2::f16_to_f32(src, dst) };
        return;
    }
    src.convert_to_f32_slice(dst);
}

/// `max x` (of a non-empty slice) with eight lanes, vectorised like [`lane_sum`] (a fold over `f32::max` is
/// not, because of its NaN rule).
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    lanes.iter().fold(tail, |m, &v| if v > m { v } else { m })
}

/// `Σ x` with eight independent partial sums, so the loop vectorises (a single running `f32` sum is a serial
/// dependency the compiler may not reorder).
#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `scores[r][j] = q_rows[r] · key_j` for the first `R ≤ ROWS` rows (query rows already scaled) for the block's keys stored `[head_dim][BS]`.
#[inline(always)]
fn block_scores<const FMA: bool, const BS: usize, const R: usize>(
    q_rows: &[&[f32]; R],
    (keys16, keys_t): (&[half::f16], &[f32]),
    hd: usize,
    scores: &mut [[f32; BS]; ROWS],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA && BS.is_multiple_of(16) {
        // SAFETY: `FMA` is true only inside `attend_tile_avx2`, whose caller detected AVX2 and FMA; `keys_t`
        // holds `hd` rows of `BS` and every query row `hd` values; each call covers 16 of the `BS` columns.
        for half in (0..BS).step_by(16) {
            unsafe {
                avx2::scores16::<R>(q_rows, keys16, hd, BS, half, scores.as_flattened_mut());
            };
        }
        return;
    }
    for (d, kt) in keys_t.chunks_exact(BS).enumerate() {
        for (s, qr) in scores.iter_mut().zip(q_rows) {
            let qd = qr[d];
            for (s, &k) in s.iter_mut().zip(kt) {
                *s = fma::<FMA>(qd, k, *s);
            }
        }
    }
}

/// `acc[r] += Σ_{j < n} p[r][j] · values[j]` for the first `R` rows (`acc` holds `R` rows of `head_dim`,
/// values are `[j][head_dim]`).
#[inline(always)]
fn weighted_sum<const FMA: bool, const BS: usize, const R: usize>(
    acc: &mut [f32],
    p: &[[f32; BS]; ROWS],
    n: usize,
    values: &[f32],
    hd: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if FMA && hd.is_multiple_of(16) {
        // SAFETY: as in `block_scores`; the callee checks the lengths.
        unsafe { avx2::weighted_sum16::<R>(acc, p.as_flattened(), BS, n, values, hd) };
        return;
    }
    for (a, p) in acc.chunks_exact_mut(hd).zip(&p[..R]) {
        for (&pj, v) in p[..n].iter().zip(values.chunks_exact(hd)) {
            for (a, &v) in a.iter_mut().zip(v) {
                *a = fma::<FMA>(pj, v, *a);
            }
        }
    }
}

/// The two hot loops with explicit AVX2 registers: the compiler's own vectorisation of them either spilled
/// the accumulators or round-tripped them through memory on every step.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::ROWS;

    /// Scores of `R ≤ ROWS` query rows against 16 keys (columns `first..first+16` of a block of `bs`, keys
    /// still f16 and widened here): `2R` accumulator registers, each key row loaded once for all rows.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available; each `q_rows[r].len() >= hd` (other lengths are checked).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn scores16<const R: usize>(
        q_rows: &[&[f32]; R],
        keys: &[half::f16],
        hd: usize,
        bs: usize,
        first: usize,
        out: &mut [f32],
    ) {
        assert!(
            R <= ROWS && first + 16 <= bs && keys.len() >= hd * bs && out.len() >= ROWS * bs,
            "scores16: inconsistent lengths"
        );
        let mut s = [[_mm256_setzero_ps(); 2]; R];
        let kp = keys.as_ptr().cast::<__m128i>();
        for d in 0..hd {
            // SAFETY: `d < hd` and `first + 16 <= bs`, so `d * bs + first + 16 <= keys_t.len()`, and
            // `d < q_rows[r].len()`.
            unsafe {
                let k0 = _mm256_cvtph_ps(_mm_loadu_si128(kp.byte_add(2 * (d * bs + first))));
                let k1 = _mm256_cvtph_ps(_mm_loadu_si128(kp.byte_add(2 * (d * bs + first + 8))));
                for (s, qr) in s.iter_mut().zip(q_rows) {
                    let qd = _mm256_broadcast_ss(qr.get_unchecked(d));
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

    /// `dst[i] = src[i]` widened; `src.len() == dst.len()` (checked).
    ///
    /// # Safety
    /// F16C and AVX must be available.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) unsafe fn f16_to_f32(src: &[half::f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "f16 widening needs equal lengths");
        let n8 = src.len() / 8 * 8;
        let (sp, dp) = (src.as_ptr().cast::<__m128i>(), dst.as_mut_ptr());
        for i in (0..n8).step_by(8) {
            // SAFETY: `i + 8 <= n8 <= len` for both slices; f16 is a 2-byte `repr(transparent)` u16.
            unsafe {
                let h = _mm_loadu_si128(sp.byte_add(2 * i));
                _mm256_storeu_ps(dp.add(i), _mm256_cvtph_ps(h));
            }
        }
        for (d, s) in dst[n8..].iter_mut().zip(&src[n8..]) {
            *d = s.to_f32();
        }
    }

    /// `acc[r] += Σ_{j < n} p[r·p_stride + j] · values[j]` for `R ≤ ROWS` rows, 16 columns at a time: `2R`
    /// accumulator registers, each value vector loaded once for all rows (the per-row form loaded it `R`
    /// times and was load-bound).
    ///
    /// # Safety
    /// AVX2 and FMA must be available. Lengths are checked: `hd % 16 == 0`, `acc.len() == R * hd`,
    /// `n <= p_stride`, `p.len() >= R * p_stride`, `values.len() >= n * hd`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn weighted_sum16<const R: usize>(
        acc: &mut [f32],
        p: &[f32],
        p_stride: usize,
        n: usize,
        values: &[f32],
        hd: usize,
    ) {
        assert!(
            hd.is_multiple_of(16)
                && acc.len() == R * hd
                && n <= p_stride
                && p.len() >= R * p_stride
                && values.len() >= n * hd,
            "weighted_sum16: inconsistent lengths"
        );
        let (ap, pp, vp) = (acc.as_mut_ptr(), p.as_ptr(), values.as_ptr());
        for c0 in (0..hd).step_by(16) {
            // SAFETY: `c0 + 16 <= hd`; row `r < R` of `acc` spans `r*hd..(r+1)*hd`; `j < n <= p_stride` and
            // row `j` of `values` spans `j*hd..(j+1)*hd` within `n * hd`.
            unsafe {
                let mut a: [[__m256; 2]; R] = std::array::from_fn(|r| {
                    [_mm256_loadu_ps(ap.add(r * hd + c0)), _mm256_loadu_ps(ap.add(r * hd + c0 + 8))]
                });
                for j in 0..n {
                    let v0 = _mm256_loadu_ps(vp.add(j * hd + c0));
                    let v1 = _mm256_loadu_ps(vp.add(j * hd + c0 + 8));
                    for (r, a) in a.iter_mut().enumerate() {
                        let pj = _mm256_broadcast_ss(&*pp.add(r * p_stride + j));
                        a[0] = _mm256_fmadd_ps(pj, v0, a[0]);
                        a[1] = _mm256_fmadd_ps(pj, v1, a[1]);
                    }
                }
                for (r, a) in a.iter().enumerate() {
                    _mm256_storeu_ps(ap.add(r * hd + c0), a[0]);
                    _mm256_storeu_ps(ap.add(r * hd + c0 + 8), a[1]);
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
