//! Activations quantized to signed 8 bits, once per matrix product, so that the kernels multiply integers:
//! [`ActQ8`] has a scale per 32 values (for Q8_0 weights), [`ActQ8K`] a scale per 256 and the sums of every 16
//! values (K-quant weights carry per-sub-block offsets, which the sums turn into one multiply per sub-block).

use rayon::prelude::*;

/// `[n, cols]` activations as i8 with an f32 scale per 32 values.
#[derive(Debug)]
pub(crate) struct ActQ8 {
    pub cols: usize,
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
}

/// `[n, cols]` activations as i8 with an f32 scale per 256 values and the i16 sum of every 16 quantized values.
#[derive(Debug)]
pub(crate) struct ActQ8K {
    pub cols: usize,
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub bsums: Vec<i16>,
}

/// Quantizes `x` symmetrically to [-127, 127] (round half to even); returns the scale.
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if x.len().is_multiple_of(8) && super::has_avx2() {
        // SAFETY: AVX2 was detected; `q` is as long as `x` (callers chunk both alike).
        return unsafe { avx2::quantize_block(x, q) };
    }
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.iter_mut().for_each(|v| *v = 0);
        return 0.0;
    }
    let d = amax / 127.0;
    let id = 1.0 / d;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
    d
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 must be available; `x.len()` is a multiple of 8 and `q.len() >= x.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
        let sign = _mm256_set1_ps(-0.0);
        let mut vmax = _mm256_setzero_ps();
        for c in x.chunks_exact(8) {
            // SAFETY: `c` has 8 elements.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, v));
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
        let amax = lanes.iter().fold(0.0f32, |m, &v| m.max(v));
        if amax == 0.0 || !amax.is_finite() {
            q.iter_mut().for_each(|v| *v = 0);
            return 0.0;
        }
        let d = amax / 127.0;
        let id = _mm256_set1_ps(1.0 / d);
        for (c, out) in x.chunks_exact(8).zip(q.chunks_exact_mut(8)) {
            // SAFETY: `c` has 8 elements. Rounding is to nearest even and |v·id| ≤ 127, so the packs never
            // saturate.
            let b = unsafe {
                let i = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), id));
                let w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
                _mm_cvtsi128_si64(_mm_packs_epi16(w, w))
            };
            for (o, v) in out.iter_mut().zip(b.to_le_bytes()) {
                *o = v as i8;
            }
        }
        d
    }
}

/// Rows are quantized in parallel only when there are enough of them to pay for the fork.
const PARALLEL_ROWS: usize = 16;

impl ActQ8 {
    pub fn quantize(x: &[f32], n: usize, cols: usize) -> ActQ8 {
        let mut qs = vec![0i8; n * cols];
        let mut d = vec![0f32; n * cols / 32];
        let row = |(x, (q, d)): (&[f32], (&mut [i8], &mut [f32]))| {
            for ((x, q), d) in x.chunks(32).zip(q.chunks_mut(32)).zip(d.iter_mut()) {
                *d = quantize_block(x, q);
            }
        };
        if n >= PARALLEL_ROWS {
            x.par_chunks(cols)
                .zip(qs.par_chunks_mut(cols).zip(d.par_chunks_mut(cols / 32)))
                .for_each(row);
        } else {
            x.chunks(cols).zip(qs.chunks_mut(cols).zip(d.chunks_mut(cols / 32))).for_each(row);
        }
        ActQ8 { cols, qs, d }
    }
}

/// One row of [`ActQ8K::quantize`]: input, quants, scales, sums.
type RowQ8K<'a> = (&'a [f32], (&'a mut [i8], (&'a mut [f32], &'a mut [i16])));

impl ActQ8K {
    pub fn quantize(x: &[f32], n: usize, cols: usize) -> ActQ8K {
        let mut qs = vec![0i8; n * cols];
        let mut d = vec![0f32; n * cols / 256];
        let mut bsums = vec![0i16; n * cols / 16];
        let row = |(x, (q, (d, s))): RowQ8K<'_>| {
            for (((x, q), d), s) in
                x.chunks(256).zip(q.chunks_mut(256)).zip(d.iter_mut()).zip(s.chunks_mut(16))
            {
                *d = quantize_block(x, q);
                for (sum, q) in s.iter_mut().zip(q.chunks(16)) {
                    *sum = q.iter().map(|&v| i16::from(v)).sum();
                }
            }
        };
        if n >= PARALLEL_ROWS {
            x.par_chunks(cols)
                .zip(
                    qs.par_chunks_mut(cols)
                        .zip(d.par_chunks_mut(cols / 256).zip(bsums.par_chunks_mut(cols / 16))),
                )
                .for_each(row);
        } else {
            x.chunks(cols)
                .zip(
                    qs.chunks_mut(cols)
                        .zip(d.chunks_mut(cols / 256).zip(bsums.chunks_mut(cols / 16))),
                )
                .for_each(row);
        }
        ActQ8K { cols, qs, d, bsums }
    }
}
