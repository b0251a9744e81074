//! Q4_K weights (GGML's 4-bit K-quant: super-blocks of 256 with an f16 scale and min, and 6-bit scales and
//! mins per 32-column sub-block; weight = d·sc·q − dmin·m) times [`ActQ8K`] activations.
//!
//! Packed group block (8 rows × 256 columns, 1184 bytes): d ×8 and dmin ×8 as f16, the sub-block scales
//! `sc[j][row]` and mins `m[j][row]` as bytes, then the quants: for each pair of sub-blocks `p` and step `s`, 32
//! bytes holding columns `64p+4s..+4` of rows 0..8 in the low nibbles and columns `64p+32+4s..+4` in the high
//! nibbles. Weights stay 4-bit in memory, so decode streams as many bytes as the GGUF file holds. Unsigned
//! nibbles need no sign trick, and `madd` by the sub-block scale folds the scales into the integer sum, so the
//! float work is once per super-block.

use super::{ActQ8K, GROUP_ROWS, TOKEN_TILE, f16_at, has_avx2};

pub(super) const GROUP_BLOCK_BYTES: usize = 160 + 4 * 8 * 32;
const NATIVE_BLOCK_BYTES: usize = 144;
const QS: usize = 160;

/// GGML's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` from the 12 packed bytes.
fn scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

pub(super) fn pack_group(native: &[&[u8]], blocks: usize, out: &mut [u8]) {
    for b in 0..blocks {
        let dst = &mut out[b * GROUP_BLOCK_BYTES..(b + 1) * GROUP_BLOCK_BYTES];
        for (r, row) in native.iter().enumerate() {
            let Some(src) = row.get(b * NATIVE_BLOCK_BYTES..(b + 1) * NATIVE_BLOCK_BYTES) else {
                continue;
            };
            dst[2 * r..2 * r + 2].copy_from_slice(&src[0..2]);
            dst[16 + 2 * r..16 + 2 * r + 2].copy_from_slice(&src[2..4]);
            for j in 0..8 {
                let (sc, m) = scale_min(j, &src[4..16]);
                dst[32 + j * 8 + r] = sc;
                dst[96 + j * 8 + r] = m;
            }
            let qs = &src[16..144];
            let q = |col: usize| {
                let (chunk, l) = (col / 64, col % 64);
                let byte = qs[32 * chunk + l % 32];
                if l < 32 { byte & 0x0F } else { byte >> 4 }
            };
            for p in 0..4 {
                for s in 0..8 {
                    for i in 0..4 {
                        let lo = q(64 * p + 4 * s + i);
                        let hi = q(64 * p + 32 + 4 * s + i);
                        dst[QS + (p * 8 + s) * 32 + r * 4 + i] = lo | (hi << 4);
                    }
                }
            }
        }
    }
}

/// The 4-bit quant of `lane` at column `col` of a packed super-block.
fn quant(blk: &[u8], lane: usize, col: usize) -> u8 {
    let (p, c) = (col / 64, col % 64);
    let (high, c) = (c >= 32, c % 32);
    let byte = blk[QS + (p * 8 + c / 4) * 32 + lane * 4 + c % 4];
    if high { byte >> 4 } else { byte & 0x0F }
}

pub(super) fn dequantize_lane(group: &[u8], lane: usize, out: &mut [f32]) {
    for (b, out) in out.chunks_mut(256).enumerate() {
        let blk = &group[b * GROUP_BLOCK_BYTES..(b + 1) * GROUP_BLOCK_BYTES];
        let (d, dmin) = (f16_at(blk, 2 * lane), f16_at(blk, 16 + 2 * lane));
        for (c, o) in out.iter_mut().enumerate() {
            let j = c / 32;
            let (sc, m) = (f32::from(blk[32 + j * 8 + lane]), f32::from(blk[96 + j * 8 + lane]));
            *o = d * sc * f32::from(quant(blk, lane, c)) - dmin * m;
        }
    }
}

pub(super) fn group_product(
    group: &[u8],
    act: &ActQ8K,
    t0: usize,
    nt: usize,
    dst: &mut [f32; GROUP_ROWS * TOKEN_TILE],
) {
    let blocks = act.cols / 256;
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
    act: &ActQ8K,
    t0: usize,
    nt: usize,
    blocks: usize,
    dst: &mut [f32; GROUP_ROWS * TOKEN_TILE],
) {
    for t in 0..nt {
        let tok = t0 + t;
        let a = &act.qs[tok * act.cols..(tok + 1) * act.cols];
        let bsums = &act.bsums[tok * act.cols / 16..(tok + 1) * act.cols / 16];
        let mut acc = [0f32; GROUP_ROWS];
        for b in 0..blocks {
            let blk = &group[b * GROUP_BLOCK_BYTES..(b + 1) * GROUP_BLOCK_BYTES];
            for (r, acc) in acc.iter_mut().enumerate() {
                let (mut isum, mut msum) = (0i32, 0i32);
                for j in 0..8 {
                    let mut sub = 0i32;
                    for c in 32 * j..32 * (j + 1) {
                        sub += i32::from(quant(blk, r, c)) * i32::from(a[b * 256 + c]);
                    }
                    isum += sub * i32::from(blk[32 + j * 8 + r]);
                    let s32 =
                        i32::from(bsums[b * 16 + 2 * j]) + i32::from(bsums[b * 16 + 2 * j + 1]);
                    msum += s32 * i32::from(blk[96 + j * 8 + r]);
                }
                let (d, dmin) = (f16_at(blk, 2 * r), f16_at(blk, 16 + 2 * r));
                *acc += act.d[tok * blocks + b] * (d * isum as f32 - dmin * msum as f32);
            }
        }
        dst[t * GROUP_ROWS..(t + 1) * GROUP_ROWS].copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ActQ8K, GROUP_BLOCK_BYTES, GROUP_ROWS, QS, TOKEN_TILE};

    /// Eight bytes, each widened to i16 and duplicated: lanes `2r, 2r+1` hold byte `r`.
    #[target_feature(enable = "avx2")]
    unsafe fn pairs_u8(p: *const u8) -> __m256i {
        // SAFETY: the caller passes 8 readable bytes.
        let x = unsafe { _mm_loadl_epi64(p.cast()) };
        _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x, x))
    }

    /// # Safety
    /// AVX2, FMA and F16C must be available; `group` must hold `blocks` group blocks and `act` tokens
    /// `t0..t0+T`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn product<const T: usize>(
        group: &[u8],
        act: &ActQ8K,
        t0: usize,
        blocks: usize,
        dst: &mut [f32; GROUP_ROWS * TOKEN_TILE],
    ) {
        let low = _mm256_set1_epi8(0x0F);
        let a: [*const i8; T] = std::array::from_fn(|t| act.qs[(t0 + t) * act.cols..].as_ptr());
        let mut accf = [_mm256_setzero_ps(); T];
        let base = group.as_ptr();
        for b in 0..blocks {
            // SAFETY (all reads below): super-block `b < blocks` lies inside `group`; activation offsets stay
            // below `blocks * 256 = cols` for each of the T tokens.
            unsafe {
                let blk = base.add(b * GROUP_BLOCK_BYTES);
                // Prefetch the next super-block while this one is multiplied (prefetches never fault).
                let next = blk.wrapping_add(2 * GROUP_BLOCK_BYTES);
                for line in (0..GROUP_BLOCK_BYTES).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(line).cast());
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(blk.cast()));
                let dmin = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(16).cast()));
                let mut acci = [_mm256_setzero_si256(); T];
                for p in 0..4 {
                    // A sub-block's 8 steps sum in 16 bits (8 × 2·15·127 = 30480 < 2^15), so the scale
                    // multiply and the widening happen once per sub-block, not once per step.
                    let mut sum_lo = [_mm256_setzero_si256(); T];
                    let mut sum_hi = [_mm256_setzero_si256(); T];
                    for s in 0..8 {
                        let v = _mm256_loadu_si256(blk.add(QS + (p * 8 + s) * 32).cast());
                        let lo = _mm256_and_si256(v, low);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        for t in 0..T {
                            let at = a[t].add(b * 256 + 64 * p + 4 * s);
                            let alo = _mm256_set1_epi32(at.cast::<i32>().read_unaligned());
                            let ahi = _mm256_set1_epi32(at.add(32).cast::<i32>().read_unaligned());
                            sum_lo[t] = _mm256_add_epi16(sum_lo[t], _mm256_maddubs_epi16(lo, alo));
                            sum_hi[t] = _mm256_add_epi16(sum_hi[t], _mm256_maddubs_epi16(hi, ahi));
                        }
                    }
                    let sc_lo = pairs_u8(blk.add(32 + 2 * p * 8));
                    let sc_hi = pairs_u8(blk.add(32 + (2 * p + 1) * 8));
                    for t in 0..T {
                        let plo = _mm256_madd_epi16(sum_lo[t], sc_lo);
                        let phi = _mm256_madd_epi16(sum_hi[t], sc_hi);
                        acci[t] = _mm256_add_epi32(acci[t], _mm256_add_epi32(plo, phi));
                    }
                }
                for t in 0..T {
                    let tok = t0 + t;
                    let bs = &act.bsums[tok * act.cols / 16 + b * 16..][..16];
                    let mut msum = _mm256_setzero_si256();
                    for j in 0..8 {
                        let m = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(96 + j * 8).cast()));
                        let s32 = i32::from(bs[2 * j]) + i32::from(bs[2 * j + 1]);
                        msum =
                            _mm256_add_epi32(msum, _mm256_mullo_epi32(m, _mm256_set1_epi32(s32)));
                    }
                    let row = _mm256_sub_ps(
                        _mm256_mul_ps(d, _mm256_cvtepi32_ps(acci[t])),
                        _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(msum)),
                    );
                    let ad = _mm256_set1_ps(act.d[tok * blocks + b]);
                    accf[t] = _mm256_fmadd_ps(ad, row, accf[t]);
                }
            }
        }
        for (t, acc) in accf.iter().enumerate() {
            // SAFETY: `dst` has room for TOKEN_TILE ≥ T rows of 8.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(t * GROUP_ROWS), *acc) };
        }
    }
}
