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

/// Drops this process's resident pages of `map` (the file stays mapped; a later read faults them back in from
/// the page cache or disk). The engine copies every weight out of the map when it loads a model (repacked or
/// as candle tensors), so without this the touched pages of the file would stay resident next to the copies
/// and the process would hold each weight twice.
pub(crate) fn release_pages(map: &Mmap) {
    #[cfg(unix)]
    {
        // SAFETY: `MADV_DONTNEED` on a read-only shared file mapping discards nothing that cannot be read back:
        // the contents come from the file again on the next access, so no reference into the map is
        // invalidated.
        #[allow(unsafe_code)]
        let result = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        // Only a hint: on failure the pages simply stay resident.
        drop(result);
    }
    #[cfg(not(unix))]
    let _ = map;
}

/// Drops this process's resident pages of the whole pages inside `bytes`, a slice of `map` (see
/// [`release_pages`]); loading calls it after copying each tensor out, so a large model never holds the file's
/// pages and the copies at once. Slices outside the map are ignored.
pub(crate) fn release_range(map: &Mmap, bytes: &[u8]) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let base = map.as_ptr() as usize;
        let Some(start) = (bytes.as_ptr() as usize).checked_sub(base) else { return };
        let end = start + bytes.len();
        if end > map.len() {
            return;
        }
        // Only whole pages inside the slice: a neighbouring tensor may still be in use.
        let first = start.div_ceil(PAGE) * PAGE;
        let last = end / PAGE * PAGE;
        if last <= first {
            return;
        }
        // SAFETY: as in `release_pages`: the range lies inside a read-only shared file mapping (checked
        // above), so dropping its pages loses nothing that cannot be read back from the file.
        #[allow(unsafe_code)]
        let result = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, last - first)
        };
        drop(result);
    }
    #[cfg(not(unix))]
    let _ = (map, bytes);
}
