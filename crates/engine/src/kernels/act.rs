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

/// Quantizes `x` symmetrically to [-127, 127]; returns the scale.
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.iter_mut().for_each(|v| *v = 0);
        return 0.0;
    }
    let d = amax / 127.0;
    let id = 1.0 / d;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round().clamp(-127.0, 127.0) as i8;
    }
    d
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
        let rows = x.chunks(cols).zip(qs.chunks_mut(cols).zip(d.chunks_mut(cols / 32)));
        if n >= PARALLEL_ROWS {
            rows.par_bridge().for_each(row);
        } else {
            rows.for_each(row);
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
        let rows = x.chunks(cols).zip(
            qs.chunks_mut(cols).zip(d.chunks_mut(cols / 256).zip(bsums.chunks_mut(cols / 16))),
        );
        if n >= PARALLEL_ROWS {
            rows.par_bridge().for_each(row);
        } else {
            rows.for_each(row);
        }
        ActQ8K { cols, qs, d, bsums }
    }
}
