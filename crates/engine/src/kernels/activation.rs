//! The SwiGLU gate, `silu(gate) · up`, over whole `[tokens, intermediate]` buffers: in prefill this is millions
//! of exponentials per layer, so it runs on all threads with the polynomial `exp` of the attention kernel (no
//! libm call, vectorised under AVX2) instead of one `expf` at a time.

use rayon::prelude::*;

use super::attn::exp_neg;
use super::has_avx2;

/// Elements per parallel task: large enough that the fork costs little next to the work.
const CHUNK: usize = 16 * 1024;

/// `gate[i] = silu(gate[i]) · up[i]`, where `silu(x) = x · σ(x)`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let run = |(g, u): (&mut [f32], &[f32])| {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2 and FMA were detected at run time.
            unsafe { silu_mul_avx2(g, u) };
            return;
        }
        silu_mul_impl::<false>(g, u);
    };
    if gate.len() > CHUNK {
        gate.par_chunks_mut(CHUNK).zip(up.par_chunks(CHUNK)).for_each(run);
    } else {
        run((gate, up));
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(gate: &mut [f32], up: &[f32]) {
    silu_mul_impl::<true>(gate, up);
}

#[inline(always)]
fn silu_mul_impl<const FMA: bool>(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        // σ(x) from e^(-|x|) ≤ 1, so the exponential never overflows: σ = 1/(1+e) for x ≥ 0, e/(1+e) below.
        let x = *g;
        let e = exp_neg::<FMA>(-x.abs());
        let sigma = if x >= 0.0 { 1.0 } else { e } / (1.0 + e);
        *g = x * sigma * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silu_mul_matches_the_definition() {
        let gate: Vec<f32> = (0..40_000).map(|i| (i as f32 - 20_000.0) * 0.004).collect();
        let up: Vec<f32> = (0..40_000).map(|i| 1.0 + (i % 7) as f32 * 0.5).collect();
        let mut got = gate.clone();
        silu_mul(&mut got, &up);
        for ((x, u), g) in gate.iter().zip(&up).zip(&got) {
            let want = x / (1.0 + (-x).exp()) * u;
            assert!(
                (g - want).abs() <= 1e-5 * want.abs().max(1.0),
                "silu({x})·{u} = {g}, want {want}"
            );
        }
    }
}
