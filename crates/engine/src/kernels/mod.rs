//! Our own quantized matrix products for the CPU: the weights of every linear layer are repacked at load into
//! row-interleaved blocks, and activations are quantized to 8 bits per token, so that one 256-bit load feeds
//! eight output rows at once and prefill tiles reuse each loaded weight for four tokens.
//!
//! Why not candle's `QMatMul`: its CPU path multiplies one activation row at a time (prefill runs at decode
//! speed per token, huggingface/candle#3707) and repacks lazily on first use. Decode is bound by memory
//! bandwidth and prefill by integer multiply throughput; the interleaved layout serves both: decode streams
//! each weight byte once, prefill keeps a row group's weights in L1 while it sweeps a panel of tokens.
//!
//! Formats (`PackedMatrix`): GGML Q8_0 → [`q8`] (signed 8-bit, a scale per 32), Q4_K → [`q4k`] (4-bit with
//! 6-bit sub-block scales and mins, nibbles kept packed so decode reads 4.5 bits per weight), Q6_K → [`q6k`]
//! (unpacked to bytes, a scale per 16). Other types stay on candle's path (see `weights::Linear`).
//!
//! This is the one module of the engine, besides the memory map, that uses `unsafe`: SIMD intrinsics behind
//! runtime CPU-feature detection. Every `unsafe` block states why its pointer reads stay in bounds; each AVX2
//! kernel has a scalar twin computing the same integer sums, and the tests compare both against a plain f32
//! product of the dequantized weights.
#![allow(unsafe_code)]

mod act;
mod activation;
mod attn;
mod q4k;
mod q6k;
mod q8;
pub mod softmax;

use candle_core::quantized::GgmlDType;
use half::f16;
use rayon::prelude::*;

pub(crate) use act::{ActQ8, ActQ8K};
pub use activation::silu_mul;
pub use attn::attend_tile;

use crate::error::{EngineError, Result};

/// Output rows interleaved per group: one 256-bit register holds four bytes of eight rows.
pub const GROUP_ROWS: usize = 8;

/// Tokens per micro-tile in prefill: each loaded weight vector is used this many times.
const TOKEN_TILE: usize = 4;

/// Tokens per panel: the panel's quantized activations stay in L2 while every row group sweeps over them.
const TOKEN_PANEL: usize = 64;

/// A weight matrix `[rows, cols]` repacked for the kernels of this module.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    rows: usize,
    cols: usize,
    format: Format,
    data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Q8,
    Q4K,
    Q6K,
}

impl Format {
    /// Bytes of one row group over one block of `block_cols()` columns.
    fn group_block_bytes(self) -> usize {
        match self {
            Format::Q8 => q8::GROUP_BLOCK_BYTES,
            Format::Q4K => q4k::GROUP_BLOCK_BYTES,
            Format::Q6K => q6k::GROUP_BLOCK_BYTES,
        }
    }

    fn block_cols(self) -> usize {
        match self {
            Format::Q8 => 32,
            Format::Q4K | Format::Q6K => 256,
        }
    }
}

/// Whether the AVX2 kernels can run here (checked once; the answer never changes during a run).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl PackedMatrix {
    /// Whether a GGML type has a kernel here.
    pub fn supports(dtype: GgmlDType) -> bool {
        matches!(dtype, GgmlDType::Q8_0 | GgmlDType::Q4K | GgmlDType::Q6K)
    }

    /// Repacks a GGML tensor `[rows, cols]` given as its raw bytes (row-major, blocks along a row).
    pub fn from_ggml(dtype: GgmlDType, bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        let format = match dtype {
            GgmlDType::Q8_0 => Format::Q8,
            GgmlDType::Q4K => Format::Q4K,
            GgmlDType::Q6K => Format::Q6K,
            other => {
                return Err(EngineError::Config(format!("no packed kernel for {other:?}")));
            }
        };
        let block_cols = format.block_cols();
        let row_bytes = cols / block_cols * dtype.type_size();
        if rows == 0
            || cols == 0
            || !cols.is_multiple_of(block_cols)
            || bytes.len() != rows * row_bytes
        {
            return Err(EngineError::Config(format!(
                "{dtype:?} tensor of {rows}x{cols} cannot hold {} bytes",
                bytes.len()
            )));
        }
        let groups = rows.div_ceil(GROUP_ROWS);
        let blocks = cols / block_cols;
        let group_bytes = blocks * format.group_block_bytes();
        let mut data = vec![0u8; groups * group_bytes];
        data.par_chunks_mut(group_bytes).enumerate().for_each(|(g, out)| {
            let native: Vec<&[u8]> = (0..GROUP_ROWS)
                .map(|r| {
                    let row = g * GROUP_ROWS + r;
                    if row < rows { &bytes[row * row_bytes..(row + 1) * row_bytes] } else { &[] }
                })
                .collect();
            match format {
                Format::Q8 => q8::pack_group(&native, blocks, out),
                Format::Q4K => q4k::pack_group(&native, blocks, out),
                Format::Q6K => q6k::pack_group(&native, blocks, out),
            }
        });
        Ok(PackedMatrix { rows, cols, format, data })
    }

    /// The matrices stacked along the output dimension, as one product: several projections of the same input
    /// (Q, K and V; gate and up) then cost one activation quantization and one fork-join instead of several.
    /// `None` unless all have the same format and width and every part's rows fill whole row groups.
    pub fn stack_rows(parts: &[&PackedMatrix]) -> Option<PackedMatrix> {
        let first = parts.first()?;
        let compatible = parts.iter().all(|p| {
            p.format == first.format && p.cols == first.cols && p.rows.is_multiple_of(GROUP_ROWS)
        });
        if !compatible {
            return None;
        }
        // One bulk copy per part (a byte-wise iterator chain was a fifth of a MoE model's load time).
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for p in parts {
            data.extend_from_slice(&p.data);
        }
        Some(PackedMatrix {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: first.cols,
            format: first.format,
            data,
        })
    }

    /// Output width.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input width.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held (what decode streams per token).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn group_bytes(&self) -> usize {
        self.cols / self.format.block_cols() * self.format.group_block_bytes()
    }

    /// Row `r` as f32 (embedding lookups; the model keeps one copy of a tied table).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let gb = self.group_bytes();
        let group = &self.data[(r / GROUP_ROWS) * gb..(r / GROUP_ROWS + 1) * gb];
        let lane = r % GROUP_ROWS;
        match self.format {
            Format::Q8 => q8::dequantize_lane(group, lane, out),
            Format::Q4K => q4k::dequantize_lane(group, lane, out),
            Format::Q6K => q6k::dequantize_lane(group, lane, out),
        }
    }

    /// `out[t] = W · x[t]` for `n` tokens: `x` is `[n, cols]`, `out` is `[n, rows]`. Other lengths are an
    /// error (the kernels write `out` through a raw pointer, so the check is not left to debug builds).
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        self.check_lengths(x, n, out)?;
        let act = self.quantize_activations(x, n);
        let out_ptr = SharedOut(out.as_mut_ptr());
        let groups = self.rows.div_ceil(GROUP_ROWS);
        let threads = rayon::current_num_threads().max(1);
        // A few shares per thread so a thread slowed by other load does not hold the rest back.
        let shares = (threads * 4).min(groups).max(1);
        let per_share = groups.div_ceil(shares);
        (0..groups.div_ceil(per_share)).into_par_iter().for_each(|share| {
            let g_end = ((share + 1) * per_share).min(groups);
            self.run_groups(&act, n, &out_ptr, share * per_share..g_end);
        });
        Ok(())
    }

    /// Several independent products in one fork-join: `outs[j] = jobs[j].0 · jobs[j].1` for `jobs[j].2`
    /// tokens each. A mixture-of-experts layer runs its active experts this way, so a decode step pays one
    /// thread-pool round trip per projection instead of one per expert.
    pub fn matmul_many(
        jobs: &[(&PackedMatrix, &[f32], usize)],
        outs: &mut [Vec<f32>],
    ) -> Result<()> {
        if jobs.len() != outs.len() {
            return Err(EngineError::Config(format!(
                "internal: {} products given {} outputs",
                jobs.len(),
                outs.len()
            )));
        }
        for ((m, x, n), out) in jobs.iter().zip(outs.iter()) {
            m.check_lengths(x, *n, out)?;
        }
        let acts: Vec<Activations> =
            jobs.iter().map(|(m, x, n)| m.quantize_activations(x, *n)).collect();
        let ptrs: Vec<SharedOut> = outs.iter_mut().map(|o| SharedOut(o.as_mut_ptr())).collect();
        let total_groups: usize = jobs.iter().map(|(m, ..)| m.rows.div_ceil(GROUP_ROWS)).sum();
        let threads = rayon::current_num_threads().max(1);
        let per_share = total_groups.div_ceil((threads * 4).max(1)).max(1);
        let mut shares = Vec::new();
        for (j, (m, ..)) in jobs.iter().enumerate() {
            let groups = m.rows.div_ceil(GROUP_ROWS);
            for g0 in (0..groups).step_by(per_share) {
                shares.push((j, g0..(g0 + per_share).min(groups)));
            }
        }
        shares.into_par_iter().for_each(|(j, range)| {
            let (m, _, n) = jobs[j];
            m.run_groups(&acts[j], n, &ptrs[j], range);
        });
        Ok(())
    }

    fn check_lengths(&self, x: &[f32], n: usize, out: &[f32]) -> Result<()> {
        if x.len() != n * self.cols || out.len() != n * self.rows {
            return Err(EngineError::Config(format!(
                "internal: {}x{} product given {} inputs and {} outputs for {n} tokens",
                self.rows,
                self.cols,
                x.len(),
                out.len()
            )));
        }
        Ok(())
    }

    fn quantize_activations(&self, x: &[f32], n: usize) -> Activations {
        match self.format {
            Format::Q8 => Activations::Q8(ActQ8::quantize(x, n, self.cols)),
            Format::Q4K | Format::Q6K => Activations::Q8K(ActQ8K::quantize(x, n, self.cols)),
        }
    }

    /// The products of row group `g` with tokens `t0..t0+nt` (`nt ≤ TOKEN_TILE`), laid out `[nt, GROUP_ROWS]`.
    fn group_kernel(&self, act: &Activations, g: usize, t0: usize, nt: usize, dst: &mut Tile) {
        match (self.format, act) {
            (Format::Q8, Activations::Q8(a)) => q8::group_product(self.group(g), a, t0, nt, dst),
            (Format::Q4K, Activations::Q8K(a)) => q4k::group_product(self.group(g), a, t0, nt, dst),
            (Format::Q6K, Activations::Q8K(a)) => q6k::group_product(self.group(g), a, t0, nt, dst),
            // `quantize_activations` pairs formats and activations; no other pairing is ever built.
            _ => dst.fill(0.0),
        }
    }

    fn group(&self, g: usize) -> &[u8] {
        let gb = self.group_bytes();
        &self.data[g * gb..(g + 1) * gb]
    }

    /// Row groups `groups` of the product for all `n` tokens, swept in token panels so a panel's quantized
    /// activations stay in L2 while the groups pass over them. `out` is the `[n, rows]` output.
    fn run_groups(
        &self,
        act: &Activations,
        n: usize,
        out: &SharedOut,
        groups: std::ops::Range<usize>,
    ) {
        let rows = self.rows;
        let mut tile = [0f32; GROUP_ROWS * TOKEN_TILE];
        for p0 in (0..n).step_by(TOKEN_PANEL) {
            let p1 = (p0 + TOKEN_PANEL).min(n);
            for g in groups.clone() {
                let r0 = g * GROUP_ROWS;
                let width = GROUP_ROWS.min(rows - r0);
                for t0 in (p0..p1).step_by(TOKEN_TILE) {
                    let nt = TOKEN_TILE.min(p1 - t0);
                    self.group_kernel(act, g, t0, nt, &mut tile);
                    for t in 0..nt {
                        let src = &tile[t * GROUP_ROWS..t * GROUP_ROWS + width];
                        // SAFETY: `out` points at a `[n, rows]` buffer that outlives the parallel loop that
                        // calls this (its lengths were checked by `check_lengths`); callers hand each row
                        // group to one share only, so no two threads write the same element; `t0 + t < n`
                        // and `r0 + width <= rows` keep the write inside the buffer.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                src.as_ptr(),
                                out.0.add((t0 + t) * rows + r0),
                                width,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Quantized activations in the form a matrix's kernels read.
enum Activations {
    Q8(ActQ8),
    Q8K(ActQ8K),
}

/// One micro-tile of outputs: `[TOKEN_TILE, GROUP_ROWS]`.
type Tile = [f32; GROUP_ROWS * TOKEN_TILE];

/// The output pointer handed to the worker threads.
struct SharedOut(*mut f32);

// SAFETY: workers write disjoint elements through it (see `PackedMatrix::run`) while the owning `&mut [f32]`
// is borrowed for the whole parallel loop.
unsafe impl Sync for SharedOut {}

/// Reads an f16 stored little-endian at `at`.
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

#[cfg(test)]
mod tests;
