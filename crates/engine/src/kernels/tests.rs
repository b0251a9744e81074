//! The packed kernels against a plain f64 product of candle's dequantized weights, and the SIMD kernels
//! against their scalar twins.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

use super::*;

fn random(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..rows * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A quantized random matrix: our packed form and candle's dequantized reference.
fn fixture(dtype: GgmlDType, rows: usize, cols: usize) -> (PackedMatrix, Vec<f32>) {
    let w = Tensor::from_vec(random(rows, cols, 7), (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, dtype).unwrap();
    let bytes = q.data().unwrap();
    let packed = PackedMatrix::from_ggml(dtype, &bytes, rows, cols).unwrap();
    let reference = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    (packed, reference)
}

fn scalar_matmul(m: &PackedMatrix, x: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * m.rows];
    let groups = m.rows.div_ceil(GROUP_ROWS);
    let q8 = m.format == Format::Q8;
    let a8 = ActQ8::quantize(x, n, m.cols);
    let ak = if q8 { None } else { Some(ActQ8K::quantize(x, n, m.cols)) };
    let blocks = m.cols / m.format.block_cols();
    for g in 0..groups {
        for t in 0..n {
            let mut tile = [0f32; GROUP_ROWS * TOKEN_TILE];
            match m.format {
                Format::Q8 => q8::scalar(m.group(g), &a8, t, 1, blocks, &mut tile),
                Format::Q4K => {
                    q4k::scalar(m.group(g), ak.as_ref().unwrap(), t, 1, blocks, &mut tile);
                }
                Format::Q6K => {
                    q6k::scalar(m.group(g), ak.as_ref().unwrap(), t, 1, blocks, &mut tile);
                }
            }
            for r in 0..GROUP_ROWS.min(m.rows - g * GROUP_ROWS) {
                out[t * m.rows + g * GROUP_ROWS + r] = tile[r];
            }
        }
    }
    out
}

fn check(dtype: GgmlDType, rows: usize, cols: usize) {
    let (packed, reference) = fixture(dtype, rows, cols);
    let mut row = vec![0.0; cols];
    for r in 0..rows {
        packed.dequantize_row(r, &mut row);
        for (c, (a, b)) in row.iter().zip(&reference[r * cols..(r + 1) * cols]).enumerate() {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{dtype:?} w[{r}][{c}]: {a} vs {b}");
        }
    }
    for n in [1, 2, 3, 4, 5, 9, 70] {
        let x = random(n, cols, 11 + n as u64);
        let mut out = vec![0.0; n * rows];
        packed.matmul(&x, n, &mut out).unwrap();
        let scalar = scalar_matmul(&packed, &x, n);
        for t in 0..n {
            let xt = &x[t * cols..(t + 1) * cols];
            let amax = xt.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
            for r in 0..rows {
                let w = &reference[r * cols..(r + 1) * cols];
                let exact: f64 = w.iter().zip(xt).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                let wnorm = w.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
                // Activation rounding moves each x by at most amax/254: bound the dot's error by Cauchy–Schwarz.
                let bound = wnorm * (cols as f64).sqrt() * amax / 254.0 + 1e-4;
                let got = f64::from(out[t * rows + r]);
                assert!(
                    (got - exact).abs() <= bound,
                    "{dtype:?} n={n} y[{t}][{r}]: {got} vs {exact}"
                );
                let s = f64::from(scalar[t * rows + r]);
                assert!(
                    (got - s).abs() <= 1e-4 * s.abs().max(1.0),
                    "{dtype:?} simd {got} vs scalar {s}"
                );
            }
        }
    }
}

#[test]
fn q8_0_matches_reference() {
    check(GgmlDType::Q8_0, 13, 96);
    check(GgmlDType::Q8_0, 16, 896);
}

#[test]
fn q4_k_matches_reference() {
    check(GgmlDType::Q4K, 11, 512);
}

#[test]
fn q6_k_matches_reference() {
    check(GgmlDType::Q6K, 19, 256);
}

#[test]
fn unsupported_and_mis_sized_inputs_are_errors() {
    assert!(PackedMatrix::from_ggml(GgmlDType::F16, &[0; 64], 4, 8).is_err());
    assert!(PackedMatrix::from_ggml(GgmlDType::Q8_0, &[0; 33], 1, 32).is_err());
    assert!(PackedMatrix::from_ggml(GgmlDType::Q4K, &[0; 144], 1, 100).is_err());
}

#[test]
fn stacked_rows_multiply_like_their_parts() {
    let (a, _) = fixture(GgmlDType::Q8_0, 16, 64);
    let (b, _) = fixture(GgmlDType::Q8_0, 8, 64);
    let stacked = PackedMatrix::stack_rows(&[&a, &b]).unwrap();
    let x = random(3, 64, 5);
    let (mut ya, mut yb, mut ys) = (vec![0.0; 3 * 16], vec![0.0; 3 * 8], vec![0.0; 3 * 24]);
    a.matmul(&x, 3, &mut ya).unwrap();
    b.matmul(&x, 3, &mut yb).unwrap();
    stacked.matmul(&x, 3, &mut ys).unwrap();
    assert!(stacked.matmul(&x, 3, &mut ys[..10]).is_err());
    assert!(stacked.matmul(&x[..5], 3, &mut ys).is_err());
    for t in 0..3 {
        assert_eq!(&ys[t * 24..t * 24 + 16], &ya[t * 16..(t + 1) * 16]);
        assert_eq!(&ys[t * 24 + 16..(t + 1) * 24], &yb[t * 8..(t + 1) * 8]);
    }
    // Parts that do not fill whole row groups, or differ in format or width, are not stacked.
    let (odd, _) = fixture(GgmlDType::Q8_0, 13, 64);
    let (k, _) = fixture(GgmlDType::Q4K, 8, 256);
    let (wide, _) = fixture(GgmlDType::Q8_0, 8, 96);
    assert!(PackedMatrix::stack_rows(&[&a, &odd]).is_none());
    assert!(PackedMatrix::stack_rows(&[&a, &k]).is_none());
    assert!(PackedMatrix::stack_rows(&[&a, &wide]).is_none());
}

#[test]
fn batched_products_equal_one_by_one() {
    // Mixed formats and token counts in one fork-join, as a MoE layer issues them.
    let (a, _) = fixture(GgmlDType::Q4K, 24, 512);
    let (b, _) = fixture(GgmlDType::Q6K, 40, 256);
    let (c, _) = fixture(GgmlDType::Q8_0, 8, 64);
    let jobs_in = [(&a, 3usize, 11u64), (&b, 1, 12), (&c, 6, 13)];
    let xs: Vec<Vec<f32>> =
        jobs_in.iter().map(|(m, n, seed)| random(*n, m.cols(), *seed)).collect();
    let jobs: Vec<(&PackedMatrix, &[f32], usize)> =
        jobs_in.iter().zip(&xs).map(|((m, n, _), x)| (*m, x.as_slice(), *n)).collect();
    let mut outs: Vec<Vec<f32>> = jobs_in.iter().map(|(m, n, _)| vec![0.0; n * m.rows()]).collect();
    PackedMatrix::matmul_many(&jobs, &mut outs).unwrap();
    for ((m, x, n), got) in jobs.iter().zip(&outs) {
        let mut want = vec![0.0; n * m.rows()];
        m.matmul(x, *n, &mut want).unwrap();
        assert_eq!(got, &want);
    }
    let mut short = vec![vec![0.0; 1]];
    assert!(PackedMatrix::matmul_many(&jobs[..1], &mut short).is_err());
    assert!(PackedMatrix::matmul_many(&jobs, &mut outs[..1]).is_err());
}
