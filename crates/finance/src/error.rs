//! The one error type of the finance tools, so every failure says what is wrong and where.
//!
//! Tools are called by people on the command line and by a model through the server; both need the
//! offending field, row or column named, never a panic or a silent NaN.

use types::{Code, ErrorCode};

/// Why a finance tool refused its input or could not compute an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FinanceError {
    /// A parameter is missing, has the wrong type or an out-of-range value.
    #[error("{field}: {message}")]
    InvalidParameter {
        /// Where the problem is: a JSON path, a column or `row N`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A table lacks a required column.
    #[error("missing column `{column}` (accepted headers: {accepted}); found headers: {found}")]
    MissingColumn {
        /// The canonical column name.
        column: String,
        /// Every header that is accepted for it, including AKShare-style Chinese names.
        accepted: String,
        /// The headers the table actually has.
        found: String,
    },
    /// A row of a table has a bad value.
    #[error("row {row}, column `{column}`: {message}")]
    BadCell {
        /// The 1-based data row (the header is row 0).
        row: usize,
        /// The column header as written in the file.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
    /// The input cannot be parsed at all (broken CSV, unknown format).
    #[error("unsupported input: {0}")]
    UnsupportedFormat(String),
    /// The computation has no answer for this input (a singular matrix, an infeasible bound).
    #[error("{0}")]
    NoSolution(String),
}

impl FinanceError {
    /// An [`FinanceError::InvalidParameter`] for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> FinanceError {
        FinanceError::InvalidParameter { field: field.into(), message: message.into() }
    }
}

impl ErrorCode for FinanceError {
    fn error_code(&self) -> Code {
        match self {
            FinanceError::UnsupportedFormat(_) => Code::UnsupportedFormat,
            FinanceError::InvalidParameter { .. }
            | FinanceError::MissingColumn { .. }
            | FinanceError::BadCell { .. }
            | FinanceError::NoSolution(_) => Code::InvalidParameter,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = FinanceError> = std::result::Result<T, E>;

/// Deserialises tool parameters, naming the JSON path of the first bad field.
pub(crate) fn parse_params<T: serde::de::DeserializeOwned>(params: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(params).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { "parameters".to_owned() } else { path };
        FinanceError::invalid(field, err.inner().to_string())
    })
}
