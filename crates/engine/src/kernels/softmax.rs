//! Softmax pieces over a whole vocabulary: the maximum, `Σ exp`, and the exponentiated weights. Sampling runs
//! them on ~150,000 logits for every generated token, so they use the polynomial `exp` of the attention kernel
//! under AVX2 (eight lanes, no libm call): a scalar `f64` pass and a full sort of the vocabulary cost more per
//! token than a small model's whole forward pass.

use super::attn::exp_neg;
use super::has_avx2;

/// Values per partial sum kept in `f32` lanes before it is added to the `f64` total.
const SUM_BLOCK: usize = 4096;

/// The largest value that is not NaN; `−∞` for an empty or all-NaN slice.
pub fn max(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { max_avx2(x) };
    }
    max_impl(x)
}

/// `Σ exp((x[i] − shift) · scale)`, where `shift` is at least every value (the maximum) and `scale > 0`; NaN
/// and `−∞` add nothing.
pub fn sum_exp(x: &[f32], shift: f32, scale: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { sum_exp_avx2(x, shift, scale) };
    }
    sum_exp_impl::<false>(x, shift, scale)
}

/// `Σ x` with `f32` partial sums in eight lanes per block of values and an `f64` total (for the
/// non-negative weights of a distribution).
pub fn sum(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { sum_avx2(x) };
    }
    sum_impl(x)
}

/// `out[i] = exp((x[i] − shift) · scale)` under the same conditions as [`sum_exp`]; NaN and `−∞` give 0.
/// `out` has the length of `x` (extra elements are left alone).
pub fn exp_weights(x: &[f32], shift: f32, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        unsafe { exp_weights_avx2(x, shift, scale, out) };
        return;
    }
    exp_weights_impl::<false>(x, shift, scale, out);
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn max_avx2(x: &[f32]) -> f32 {
    max_impl(x)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_avx2(x: &[f32]) -> f64 {
    sum_impl(x)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_exp_avx2(x: &[f32], shift: f32, scale: f32) -> f64 {
    sum_exp_impl::<true>(x, shift, scale)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_weights_avx2(x: &[f32], shift: f32, scale: f32, out: &mut [f32]) {
    exp_weights_impl::<true>(x, shift, scale, out);
}

#[inline(always)]
fn max_impl(x: &[f32]) -> f32 {
    // `v > m` is false for NaN, so NaN never wins; eight lanes so that the loop vectorises.
    let pick = |m: f32, v: f32| if v > m { v } else { m };
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| pick(m, v));
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = pick(*l, v);
        }
    }
    lanes.iter().fold(tail, |m, &v| pick(m, v))
}

/// One weight; `v > −∞` is false for NaN and `−∞` (masked tokens), which weigh exactly 0.
#[inline(always)]
fn weight<const FMA: bool>(v: f32, shift: f32, scale: f32) -> f32 {
    let e = exp_neg::<FMA>((v - shift) * scale);
    if v > f32::NEG_INFINITY { e } else { 0.0 }
}

#[inline(always)]
fn sum_impl(x: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for block in x.chunks(SUM_BLOCK) {
        let mut lanes = [0.0f32; 8];
        let chunks = block.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += v;
            }
        }
        total += lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + f64::from(tail);
    }
    total
}

#[inline(always)]
fn sum_exp_impl<const FMA: bool>(x: &[f32], shift: f32, scale: f32) -> f64 {
    let mut total = 0.0f64;
    for block in x.chunks(SUM_BLOCK) {
        let mut lanes = [0.0f32; 8];
        let chunks = block.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|&v| weight::<FMA>(v, shift, scale)).sum();
        for c in chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += weight::<FMA>(v, shift, scale);
            }
        }
        total += lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + f64::from(tail);
    }
    total
}

#[inline(always)]
fn exp_weights_impl<const FMA: bool>(x: &[f32], shift: f32, scale: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = weight::<FMA>(v, shift, scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded logits over a vocabulary-sized range, with masked (−∞) and NaN entries and a ragged tail.
    fn logits() -> Vec<f32> {
        let mut x: Vec<f32> =
            (0..10_007u64).map(|i| ((i * 2_654_435_761) % 20_011) as f32 / 997.0 - 12.0).collect();
        x[3] = f32::NEG_INFINITY;
        x[4000] = f32::NAN;
        x[9999] = f32::NEG_INFINITY;
        x
    }

    #[test]
    fn max_ignores_nan() {
        let x = logits();
        let want = x.iter().copied().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(max(&x), want);
        assert_eq!(max(&[f32::NAN, f32::NAN]), f32::NEG_INFINITY);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn sums_and_weights_match_f64() {
        let x = logits();
        let m = max(&x);
        for scale in [1.0f32, 1.0 / 0.7, 0.25] {
            let reference: Vec<f64> = x
                .iter()
                .map(|&v| {
                    if v > f32::NEG_INFINITY {
                        ((f64::from(v) - f64::from(m)) * f64::from(scale)).exp()
                    } else {
                        0.0
                    }
                })
                .collect();
            let want: f64 = reference.iter().sum();
            let got = sum_exp(&x, m, scale);
            assert!((got - want).abs() <= 1e-5 * want, "scale {scale}: {got} vs {want}");
            let mut w = vec![0.0f32; x.len()];
            exp_weights(&x, m, scale, &mut w);
            for (i, (&g, &r)) in w.iter().zip(&reference).enumerate() {
                assert!((f64::from(g) - r).abs() <= 5e-6 * r + 1e-37, "{i}: {g} vs {r}");
            }
            assert_eq!((w[3], w[4000], w[9999]), (0.0, 0.0, 0.0));
            assert!((sum(&w) - want).abs() <= 1e-5 * want);
        }
    }
}
