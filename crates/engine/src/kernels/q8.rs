//! Q8_0 weights (a signed byte per weight, an f16 scale per 32) times [`ActQ8`] activations.
//!
//! Packed group block (8 rows × 32 columns, 272 bytes): the 8 row scales as f16, then 8 steps of 32 bytes,
//! step `s` holding columns `4s..4s+4` of row 0, then of row 1, … of row 7. The AVX2 kernel broadcasts four
//! activation bytes to all lanes, so one `maddubs` computes a 4-column partial dot for 8 rows; the sign trick
//! (`|w|` times `a` with `w`'s sign) keeps the u8×i8 instruction exact for signed weights.

use super::{ActQ8, GROUP_ROWS, TOKEN_TILE, f16_at, has_avx2};

pub(super) const GROUP_BLOCK_BYTES: usize = 16 + 8 * 32;
const NATIVE_BLOCK_BYTES: usize = 34;

pub(super) fn pack_group(native: &[&[u8]], blocks: usize, out: &mut [u8]) {
    for b in 0..blocks {
        let dst = &mut out[b * GROUP_BLOCK_BYTES..(b + 1) * GROUP_BLOCK_BYTES];
        for (r, row) in native.iter().enumerate() {
            let Some(src) = row.get(b * NATIVE_BLOCK_BYTES..(b + 1) * NATIVE_BLOCK_BYTES) else {
                continue; // padding row: zero scale, zero weights
            };
            dst[2 * r..2 * r + 2].copy_from_slice(&src[..2]);
            for s in 0..8 {
                let at = 16 + s * 32 + r * 4;
                dst[at..at + 4].copy_from_slice(&src[2 + 4 * s..2 + 4 * s + 4]);
            }
        }
    }
}

pub(super) fn dequantize_lane(group: &[u8], lane: usize, out: &mut [f32]) {
    for (b, out) in out.chunks_mut(32).enumerate() {
        let blk = &group[b * GROUP_BLOCK_BYTES..];
        let d = f16_at(blk, 2 * lane);
        for (c, o) in out.iter_mut().enumerate() {
            *o = d * f32::from(blk[16 + (c / 4) * 32 + lane * 4 + c % 4] as i8);
        }
    }
}

/// Group `group` times tokens `t0..t0+nt` → `dst[t * 8 + row]`.
pub(super) fn group_product(
    group: &[u8],
    act: &ActQ8,
    t0: usize,
    nt: usize,
    dst: &mut [f32; GROUP_ROWS * TOKEN_TILE],
) {
    let blocks = act.cols / 32;
    // The SIMD kernels read through raw pointers, so their bounds are checked here in every build; the
    // scalar path indexes with checks of its own.
    #[cfg(target_arch = "x86_64")]
    let in_bounds = (1..=TOKEN_TILE).contains(&nt)
        && group.len() >= blocks * GROUP_BLOCK_BYTES
        && (t0 + nt) * act.cols <= act.qs.len();
    #[cfg(target_arch = "x86_64")]
    if in_bounds && has_avx2() {
        // SAFETY: AVX2/FMA/F16C were detected and `in_bounds` holds: `group` has `blocks` group blocks
        // and `act` the tokens `t0..t0+nt`.
        unsafe {
            match nt {
                1 => avx2::product::<1>(group, act, t0, blocks, dst),
                2 => avx2::product::<2>(group, act, t0, blocks, dst),
                3 => avx2::product::<3>(group, act, t0, blocks, dst),
                _ => avx2::product::<4>(group, act, t0, blocks, dst),
            }
        }
        return;
    }
    scalar(group, act, t0, nt, blocks, dst);
}

pub(super) fn scalar(
    group: &[u8],
    act: &ActQ8,
    t0: usize,
    nt: usize,
    blocks: usize,
    dst: &mut [f32; GROUP_ROWS * TOKEN_TILE],
) {
    for t in 0..nt {
        let tok = t0 + t;
        let a = &act.qs[tok * act.cols..(tok + 1) * act.cols];
        let ad = &act.d[tok * blocks..(tok + 1) * blocks];
        let mut acc = [0f32; GROUP_ROWS];
        for b in 0..blocks {
            let blk = &group[b * GROUP_BLOCK_BYTES..(b + 1) * GROUP_BLOCK_BYTES];
            for (r, acc) in acc.iter_mut().enumerate() {
                let mut sum = 0i32;
                for c in 0..32 {
                    let w = blk[16 + (c / 4) * 32 + r * 4 + c % 4] as i8;
                    sum += i32::from(w) * i32::from(a[b * 32 + c]);
                }
                *acc += f16_at(blk, 2 * r) * ad[b] * sum as f32;
            }
        }
        dst[t * GROUP_ROWS..(t + 1) * GROUP_ROWS].copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ActQ8, GROUP_BLOCK_BYTES, GROUP_ROWS, TOKEN_TILE};

    /// How far ahead of the block being multiplied the weights are prefetched.
    const PREFETCH_BYTES: usize = 4 * GROUP_BLOCK_BYTES;

    /// # Safety
    /// AVX2, FMA and F16C must be available; `group` must hold `blocks` group blocks and `act` tokens
    /// `t0..t0+T`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn product<const T: usize>(
        group: &[u8],
        act: &ActQ8,
        t0: usize,
        blocks: usize,
        dst: &mut [f32; GROUP_ROWS * TOKEN_TILE],
    ) {
        let ones = _mm256_set1_epi16(1);
        let a: [*const i8; T] = std::array::from_fn(|t| act.qs[(t0 + t) * act.cols..].as_ptr());
        let ad: [&[f32]; T] = std::array::from_fn(|t| &act.d[(t0 + t) * blocks..]);
        let mut accf = [_mm256_setzero_ps(); T];
        let base = group.as_ptr();
        // `b` addresses the packed block by pointer and each token's scale by index.
        #[allow(clippy::needless_range_loop)]
        for b in 0..blocks {
            // SAFETY (all reads below): block `b < blocks` lies inside `group`; activation offsets are below
            // `blocks * 32 = cols` for each of the T tokens.
            unsafe {
                let blk = base.add(b * GROUP_BLOCK_BYTES);
                // Decode streams weights once: ask for the block after next early (prefetches never fault,
                // so running past the group's end is harmless).
                let ahead = blk.wrapping_add(PREFETCH_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64).cast());
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(128).cast());
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(192).cast());
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(256).cast());
                let d = _mm256_cvtph_ps(_mm_loadu_si128(blk.cast()));
                let mut acci = [_mm256_setzero_si256(); T];
                for s in 0..8 {
                    let w = _mm256_loadu_si256(blk.add(16 + s * 32).cast());
                    let aw = _mm256_sign_epi8(w, w);
                    for t in 0..T {
                        let four = a[t].add(b * 32 + 4 * s).cast::<i32>().read_unaligned();
                        let av = _mm256_sign_epi8(_mm256_set1_epi32(four), w);
                        let p = _mm256_maddubs_epi16(aw, av);
                        acci[t] = _mm256_add_epi32(acci[t], _mm256_madd_epi16(p, ones));
                    }
                }
                for t in 0..T {
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(ad[t][b]));
                    accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acci[t]), scale, accf[t]);
                }
            }
        }
        for (t, acc) in accf.iter().enumerate() {
            // SAFETY: `dst` has room for TOKEN_TILE ≥ T rows of 8.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(t * GROUP_ROWS), *acc) };
        }
    }
}
