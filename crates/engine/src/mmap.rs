//! Read-only memory maps of model files: the one place in the engine that needs `unsafe`.
//!
//! Model files are gigabytes; mapping them lets the OS page weights in on demand and share them between
//! processes instead of reading everything into the heap first.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{EngineError, Result};

/// Maps `path` read-only.
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    let io_err = |source| EngineError::Io { path: path.display().to_string(), source };
    let file = File::open(path).map_err(io_err)?;
    // SAFETY: the map is read-only and the engine never writes through it. Like every mmap-based model loader
    // (llama.cpp, candle, safetensors) we rely on the model file not being truncated or rewritten while it is
    // served; all offsets read from the file are bounds-checked against the map's length before use.
    #[allow(unsafe_code)]
    let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
    Ok(map)
}
