//! Q6_K weights (GGML's 6-bit K-quant: super-blocks of 256 with an f16 scale and a signed 8-bit scale per 16
//! columns; weight = d·sc·(q − 32)) times [`ActQ8K`] activations.
//!
//! Packed group block (8 rows × 256 columns, 1680 bytes, exactly the 8 native blocks' size): d ×8 as f16, the
//! scales `sc[j][row]` (16 sub-blocks), then per sub-block `j` 96 bytes for its four steps `4j..4j+4` (a step is
//! columns `4s..4s+4` of rows 0..8, byte `4·row + i`): two registers of low nibbles (steps `4j`, `4j+1` in the low
//! and high nibble of the first; `4j+2`, `4j+3` in the second) and one of high 2-bit pairs (step `4j+k` at bits
//! `2k..2k+2`). Decode streams 6.56 bits per weight, as many bytes as the GGUF holds; the kernel rebuilds the
//! unsigned 6-bit `q` (0..63) of a sub-block in registers with a few shifts and masks, once for all tokens of a
//! tile. (Q4_K_M files store the output head, `attn_v`/`ffn_down` of some layers and part of a MoE's experts in
//! Q6_K.)

use super::{ActQ8K, GROUP_ROWS, TOKEN_TILE, f16_at, has_avx2};

pub(super) const GROUP_BLOCK_BYTES: usize = 16 + 128 + 16 * SUB_BYTES;
/// Packed bytes of one 16-column sub-block (8 rows): two nibble registers and one 2-bit register.
const SUB_BYTES: usize = 96;
const NATIVE_BLOCK_BYTES: usize = 210;
const QS: usize = 144;

/// The unsigned 6-bit quants (0..63) of a native block's 256 columns, in column order (GGML
/// `dequantize_row_q6_K`: per half of 128 columns, low nibbles from `ql`, high pairs from `qh`).
fn native_quants(src: &[u8]) -> [u8; 256] {
    let mut q = [0u8; 256];
    for (half, out) in q.chunks_exact_mut(128).enumerate() {
        let ql = &src[64 * half..64 * half + 64];
        let qh = &src[128 + 32 * half..128 + 32 * half + 32];
        for l in 0..32 {
            let h = qh[l];
            out[l] = (ql[l] & 0x0F) | ((h & 3) << 4);
            out[l + 32] = (ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4);
            out[l + 64] = (ql[l] >> 4) | (((h >> 4) & 3) << 4);
            out[l + 96] = (ql[l + 32] >> 4) | (((h >> 6) & 3) << 4);
        }
    }
    q
}

pub(super) fn pack_group(native: &[&[u8]], blocks: usize, out: &mut [u8]) {
    for b in 0..blocks {
        let dst = &mut out[b * GROUP_BLOCK_BYTES..(b + 1) * GROUP_BLOCK_BYTES];
        for (r, row) in native.iter().enumerate() {
            let Some(src) = row.get(b * NATIVE_BLOCK_BYTES..(b + 1) * NATIVE_BLOCK_BYTES) else {
                continue;
            };
            dst[2 * r..2 * r + 2].copy_from_slice(&src[208..210]);
            for j in 0..16 {
                dst[16 + j * 8 + r] = src[192 + j];
            }
            let q = native_quants(src);
            // Sub-block j holds steps 4j..4j+4, step 4j+k columns 16j+4k..+4 (see the module comment).
            for (j, sub) in q.chunks_exact(16).enumerate() {
                let at = QS + j * SUB_BYTES + r * 4;
                for (k, step) in sub.chunks_exact(4).enumerate() {
                    let (nibble, pair) = (4 * (k % 2), 2 * k);
                    for (i, &v) in step.iter().enumerate() {
                        dst[at + (k / 2) * 32 + i] |= (v & 0x0F) << nibble;
                        dst[at + 64 + i] |= (v >> 4) << pair;
                    }
                }
            }
        }
    }
}

fn scale(blk: &[u8], sub: usize, lane: usize) -> i32 {
    i32::from(blk[16 + sub * 8 + lane] as i8)
}

fn quant(blk: &[u8], lane: usize, col: usize) -> i32 {
    let (step, i) = (col / 4, col % 4);
    let (j, k) = (step / 4, step % 4);
    let at = QS + j * SUB_BYTES + lane * 4 + i;
    let low = (blk[at + (k / 2) * 32] >> (4 * (k % 2))) & 0x0F;
    let high = (blk[at + 64] >> (2 * k)) & 3;
    i32::from(low | (high << 4))
}

pub(super) fn dequantize_lane(group: &[u8], lane: usize, out: &mut [f32]) {
    for (b, out) in out.chunks_mut(256).enumerate() {
        let blk = &group[b * GROUP_BLOCK_BYTES..(b + 1) * GROUP_BLOCK_BYTES];
        let d = f16_at(blk, 2 * lane);
        for (c, o) in out.iter_mut().enumerate() {
            *o = d * (scale(blk, c / 16, lane) * (quant(blk, lane, c) - 32)) as f32;
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
                let mut isum = 0i32;
                for j in 0..16 {
                    let mut sub = 0i32;
                    for c in 16 * j..16 * (j + 1) {
                        sub += quant(blk, r, c) * i32::from(a[b * 256 + c]);
                    }
                    isum += scale(blk, j, r) * (sub - 32 * i32::from(bsums[b * 16 + j]));
                }
                *acc += act.d[tok * blocks + b] * f16_at(blk, 2 * r) * isum as f32;
            }
        }
        dst[t * GROUP_ROWS..(t + 1) * GROUP_ROWS].copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{ActQ8K, GROUP_BLOCK_BYTES, GROUP_ROWS, QS, SUB_BYTES, TOKEN_TILE};

    /// Eight signed bytes, each widened to i16 and duplicated: lanes `2r, 2r+1` hold byte `r`.
    #[target_feature(enable = "avx2")]
    unsafe fn pairs_i8(p: *const u8) -> __m256i {
        // SAFETY: the caller passes 8 readable bytes.
        let x = unsafe { _mm_loadl_epi64(p.cast()) };
        _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x, x))
    }

    /// One step's unsigned 6-bit quants: the low nibbles of `low` | the 2-bit pairs at bit `H` of `high`, << 4.
    /// The 16-bit shifts move bits across byte borders, but the masks keep only bits from the same byte, and
    /// `<< 4` of a value ≤ 3 stays inside its byte.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn unpack<const H: i32>(low: __m256i, high: __m256i) -> __m256i {
        let pair = _mm256_and_si256(_mm256_srli_epi16::<H>(high), _mm256_set1_epi8(3));
        _mm256_or_si256(_mm256_and_si256(low, _mm256_set1_epi8(0x0F)), _mm256_slli_epi16::<4>(pair))
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
        let a: [*const i8; T] = std::array::from_fn(|t| act.qs[(t0 + t) * act.cols..].as_ptr());
        let mut accf = [_mm256_setzero_ps(); T];
        let base = group.as_ptr();
        for b in 0..blocks {
            // SAFETY (all reads below): super-block `b < blocks` lies inside `group`; activation offsets stay
            // below `blocks * 256 = cols` for each of the T tokens.
            unsafe {
                let blk = base.add(b * GROUP_BLOCK_BYTES);
                // Prefetch the next super-block while this one is multiplied (prefetches never fault).
                let next = blk.wrapping_add(GROUP_BLOCK_BYTES);
                for line in (0..GROUP_BLOCK_BYTES).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(line).cast());
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(blk.cast()));
                let mut acci = [_mm256_setzero_si256(); T];
                for j in 0..16 {
                    let sc = pairs_i8(blk.add(16 + j * 8));
                    let sub = blk.add(QS + j * SUB_BYTES);
                    let (l0, l1) =
                        (_mm256_loadu_si256(sub.cast()), _mm256_loadu_si256(sub.add(32).cast()));
                    let h = _mm256_loadu_si256(sub.add(64).cast());
                    let steps = [
                        unpack::<0>(l0, h),
                        unpack::<2>(_mm256_srli_epi16::<4>(l0), h),
                        unpack::<4>(l1, h),
                        unpack::<6>(_mm256_srli_epi16::<4>(l1), h),
                    ];
                    // Two steps sum in 16 bits (2 × 2·63·127 = 32004 < 2^15) before the scale multiply.
                    for pair in 0..2 {
                        let s = 4 * j + 2 * pair;
                        let (v0, v1) = (steps[2 * pair], steps[2 * pair + 1]);
                        for t in 0..T {
                            let at = a[t].add(b * 256 + 4 * s);
                            let a0 = _mm256_set1_epi32(at.cast::<i32>().read_unaligned());
                            let a1 = _mm256_set1_epi32(at.add(4).cast::<i32>().read_unaligned());
                            let p = _mm256_add_epi16(
                                _mm256_maddubs_epi16(v0, a0),
                                _mm256_maddubs_epi16(v1, a1),
                            );
                            acci[t] = _mm256_add_epi32(acci[t], _mm256_madd_epi16(p, sc));
                        }
                    }
                }
                for t in 0..T {
                    let tok = t0 + t;
                    let bs = &act.bsums[tok * act.cols / 16 + b * 16..][..16];
                    let mut osum = _mm256_setzero_si256();
                    for (j, &s) in bs.iter().enumerate() {
                        let sc = _mm256_cvtepi8_epi32(_mm_loadl_epi64(blk.add(16 + j * 8).cast()));
                        osum = _mm256_add_epi32(
                            osum,
                            _mm256_mullo_epi32(sc, _mm256_set1_epi32(i32::from(s))),
                        );
                    }
                    let isum = _mm256_sub_epi32(acci[t], _mm256_slli_epi32(osum, 5));
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(act.d[tok * blocks + b]));
                    accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, accf[t]);
                }
            }
        }
        for (t, acc) in accf.iter().enumerate() {
            // SAFETY: `dst` has room for TOKEN_TILE ≥ T rows of 8.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(t * GROUP_ROWS), *acc) };
        }
    }
}
