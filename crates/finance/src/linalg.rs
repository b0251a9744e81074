//! A small dense linear-algebra kit for the optimisers: portfolios have tens of assets, so plain
//! row-major `f64` matrices with pivoted LU are exact enough and keep heavy BLAS crates out.

use crate::error::{FinanceError, Result};

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        Matrix { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// The identity matrix.
    pub fn identity(n: usize) -> Matrix {
        let mut m = Matrix::zeros(n, n);
        for i in 0..n {
            m.set(i, i, 1.0);
        }
        m
    }

    /// A matrix from rows, which must all have the same length.
    pub fn from_rows(rows: &[Vec<f64>], field: &str) -> Result<Matrix> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (index, row) in rows.iter().enumerate() {
            if row.len() != cols {
                return Err(FinanceError::invalid(
                    format!("{field}[{index}]"),
                    format!("has {} entries, expected {cols}", row.len()),
                ));
            }
            if let Some(bad) = row.iter().position(|x| !x.is_finite()) {
                return Err(FinanceError::invalid(
                    format!("{field}[{index}][{bad}]"),
                    "is not a finite number",
                ));
            }
            data.extend_from_slice(row);
        }
        Ok(Matrix { rows: rows.len(), cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Entry (i, j).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Sets entry (i, j).
    pub fn set(&mut self, i: usize, j: usize, value: f64) {
        self.data[i * self.cols + j] = value;
    }

    /// The rows as vectors.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        self.data.chunks(self.cols.max(1)).map(<[f64]>::to_vec).take(self.rows).collect()
    }

    /// The transpose.
    pub fn transpose(&self) -> Matrix {
        let mut t = Matrix::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.set(j, i, self.get(i, j));
            }
        }
        t
    }

    /// The product `self · other`.
    pub fn mul(&self, other: &Matrix) -> Matrix {
        let mut out = Matrix::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.get(i, k);
                for j in 0..other.cols {
                    out.data[i * other.cols + j] += a * other.get(k, j);
                }
            }
        }
        out
    }

    /// The product `self · v`.
    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.rows).map(|i| (0..self.cols).map(|j| self.get(i, j) * v[j]).sum()).collect()
    }

    /// `self * factor` entry by entry.
    pub fn scale(&self, factor: f64) -> Matrix {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|x| x * factor).collect(),
        }
    }

    /// `self + other` entry by entry.
    pub fn add(&self, other: &Matrix) -> Matrix {
        let data = self.data.iter().zip(&other.data).map(|(a, b)| a + b).collect();
        Matrix { rows: self.rows, cols: self.cols, data }
    }

    /// The quadratic form `vᵀ · self · v`.
    pub fn quad(&self, v: &[f64]) -> f64 {
        dot(v, &self.mul_vec(v))
    }

    /// The square sub-matrix on `indices`.
    pub fn select(&self, indices: &[usize]) -> Matrix {
        let mut out = Matrix::zeros(indices.len(), indices.len());
        for (a, &i) in indices.iter().enumerate() {
            for (b, &j) in indices.iter().enumerate() {
                out.set(a, b, self.get(i, j));
            }
        }
        out
    }

    /// Solves `self · x = b` by LU with partial pivoting; a (numerically) singular matrix is an error.
    pub fn solve(&self, b: &[f64]) -> Result<Vec<f64>> {
        let n = self.rows;
        if self.cols != n || b.len() != n {
            return Err(FinanceError::NoSolution(format!(
                "cannot solve a {}x{} system with {} right-hand values",
                self.rows,
                self.cols,
                b.len()
            )));
        }
        let mut a = self.data.clone();
        let mut x = b.to_vec();
        let scale = a.iter().fold(0.0_f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
        for col in 0..n {
            let pivot = (col..n)
                .max_by(|&p, &q| a[p * n + col].abs().total_cmp(&a[q * n + col].abs()))
                .unwrap_or(col);
            if a[pivot * n + col].abs() <= scale * 1e-13 {
                return Err(FinanceError::NoSolution(format!(
                    "the matrix is singular (column {col} has no usable pivot): check for duplicated or \
                     constant assets"
                )));
            }
            if pivot != col {
                for j in 0..n {
                    a.swap(col * n + j, pivot * n + j);
                }
                x.swap(col, pivot);
            }
            for row in col + 1..n {
                let factor = a[row * n + col] / a[col * n + col];
                if factor != 0.0 {
                    for j in col..n {
                        a[row * n + j] -= factor * a[col * n + j];
                    }
                    x[row] -= factor * x[col];
                }
            }
        }
        for row in (0..n).rev() {
            let tail: f64 = (row + 1..n).map(|j| a[row * n + j] * x[j]).sum();
            x[row] = (x[row] - tail) / a[row * n + row];
        }
        Ok(x)
    }

    /// The inverse, column by column.
    pub fn inverse(&self) -> Result<Matrix> {
        let n = self.rows;
        let mut inv = Matrix::zeros(n, n);
        for j in 0..n {
            let mut e = vec![0.0; n];
            e[j] = 1.0;
            let column = self.solve(&e)?;
            for (i, value) in column.into_iter().enumerate() {
                inv.set(i, j, value);
            }
        }
        Ok(inv)
    }

    /// Checks that a covariance matrix is square, symmetric and positive definite (by Cholesky).
    pub fn check_covariance(&self, field: &str) -> Result<()> {
        let n = self.rows;
        if self.cols != n || n == 0 {
            return Err(FinanceError::invalid(
                field,
                format!("must be a non-empty square matrix, got {}x{}", n, self.cols),
            ));
        }
        for i in 0..n {
            for j in 0..i {
                let (a, b) = (self.get(i, j), self.get(j, i));
                if (a - b).abs() > 1e-9 * (a.abs() + b.abs()).max(1e-12) {
                    return Err(FinanceError::invalid(
                        format!("{field}[{i}][{j}]"),
                        "the matrix is not symmetric",
                    ));
                }
            }
        }
        let mut l = Matrix::zeros(n, n);
        let trace_scale =
            (0..n).map(|i| self.get(i, i).abs()).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
        for j in 0..n {
            let diag = self.get(j, j) - (0..j).map(|k| l.get(j, k).powi(2)).sum::<f64>();
            if diag <= trace_scale * 1e-12 {
                return Err(FinanceError::NoSolution(format!(
                    "{field} is singular or not positive definite (asset {j} is a linear combination of \
                     the others, or has zero variance)"
                )));
            }
            let d = diag.sqrt();
            l.set(j, j, d);
            for i in j + 1..n {
                let s = self.get(i, j) - (0..j).map(|k| l.get(i, k) * l.get(j, k)).sum::<f64>();
                l.set(i, j, s / d);
            }
        }
        Ok(())
    }
}

/// The dot product.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
