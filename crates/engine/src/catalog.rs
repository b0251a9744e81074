//! The models on this machine: what `finllm pull` left under `<data_dir>/models`, described from the files
//! themselves (GGUF metadata, `config.json`), and the resolution of a short model name to a path.
//!
//! Every command that takes `--model` accepts either a path or a name from this list, so that a pulled
//! model is used by the name the user pulled it as (`Qwen/Qwen2.5-1.5B-Instruct-GGUF`, or with `:Q4_K_M`
//! when the repository holds several quants) rather than by a long path.

use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value;
use types::{Code, ErrorCode};

use crate::gguf::GgufFile;

/// How deep below `<data_dir>/models` models are looked for (owner/name/sub/dirs).
const MAX_DEPTH: usize = 6;

/// The on-disk format of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One `.gguf` file.
    Gguf,
    /// A Hugging Face folder: `config.json` + `*.safetensors`.
    Safetensors,
}

/// One model found in the data directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocalModel {
    /// The name `--model` accepts: the path below `<data_dir>/models` (`owner/name` for a folder,
    /// `owner/name/file.gguf` for a GGUF file).
    pub name: String,
    /// File format.
    pub format: Format,
    /// Architecture as the file states it (`general.architecture`, `model_type`).
    pub architecture: Option<String>,
    /// Quantization: the GGUF file type (`Q4_K_M`, `Q8_0`, …) or the checkpoint's `torch_dtype`.
    pub quant: Option<String>,
    /// Bytes on disk (all weight and tokenizer files of a folder).
    pub size_bytes: u64,
    /// Where it is.
    pub path: PathBuf,
    /// Why the file could not be described, when it could not (a damaged or foreign file).
    pub problem: Option<String>,
}

/// Why a `--model` name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Neither a path nor a known name.
    #[error(
        "no model `{name}`: it is not a file or folder, and {models_dir} holds no model of that name \
         ({known}); get one with `finllm pull OWNER/NAME[:QUANT]` or pass --model PATH"
    )]
    NotFound {
        /// What was asked for.
        name: String,
        /// The directory searched.
        models_dir: String,
        /// The names that exist, or "it is empty".
        known: String,
    },
    /// The name fits several models.
    #[error("`{name}` matches several models: {matches}; use the full name")]
    Ambiguous {
        /// What was asked for.
        name: String,
        /// The candidates.
        matches: String,
    },
}

impl ErrorCode for CatalogError {
    fn error_code(&self) -> Code {
        Code::ModelNotFound
    }
}

/// `<data_dir>/models`.
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// Lists the models under `<data_dir>/models`, sorted by name. A missing directory is an empty list.
pub fn scan(data_dir: &Path) -> Vec<LocalModel> {
    let root = models_dir(data_dir);
    let mut out = Vec::new();
    walk(&root, &root, 0, &mut out);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<LocalModel>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let is_checkpoint = entries.iter().any(|p| p.file_name().is_some_and(|n| n == "config.json"))
        && entries.iter().any(|p| has_ext(p, "safetensors"));
    if is_checkpoint {
        out.push(describe_folder(root, dir, &entries));
    }
    for path in entries {
        if path.is_dir() && depth < MAX_DEPTH {
            walk(root, &path, depth + 1, out);
        } else if path.is_file() && has_ext(&path, "gguf") {
            out.push(describe_gguf(root, &path));
        }
    }
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn describe_folder(root: &Path, dir: &Path, entries: &[PathBuf]) -> LocalModel {
    let size_bytes = entries
        .iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut model = LocalModel {
        name: relative_name(root, dir),
        format: Format::Safetensors,
        architecture: None,
        quant: None,
        size_bytes,
        path: dir.to_path_buf(),
        problem: None,
    };
    let json = std::fs::read_to_string(dir.join("config.json"))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()));
    match json {
        Ok(v) => {
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
            model.architecture = text("model_type");
            model.quant = text("torch_dtype").or_else(|| text("dtype"));
        }
        Err(e) => model.problem = Some(format!("config.json: {e}")),
    }
    model
}

fn describe_gguf(root: &Path, path: &Path) -> LocalModel {
    let mut model = LocalModel {
        name: relative_name(root, path),
        format: Format::Gguf,
        architecture: None,
        quant: None,
        size_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        path: path.to_path_buf(),
        problem: None,
    };
    match GgufFile::open(path) {
        Ok(file) => {
            if let Some(Value::String(a)) = file.meta("general.architecture") {
                model.architecture = Some(a.clone());
            }
            model.quant = file
                .meta("general.file_type")
                .and_then(|v| v.to_u32().ok())
                .and_then(file_type_name)
                .map(str::to_owned)
                .or_else(|| dominant_dtype(&file));
        }
        Err(e) => model.problem = Some(e.to_string()),
    }
    model
}

/// llama.cpp's `llama_ftype` numbers (`general.file_type`) for the types people pull.
fn file_type_name(ftype: u32) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// The type holding most tensor elements, for files without `general.file_type`.
fn dominant_dtype(file: &GgufFile) -> Option<String> {
    let mut counts: Vec<(GgmlDType, usize)> = Vec::new();
    for info in file.content().tensor_infos.values() {
        let n = info.shape.elem_count();
        match counts.iter_mut().find(|(d, _)| *d == info.ggml_dtype) {
            Some((_, c)) => *c += n,
            None => counts.push((info.ggml_dtype, n)),
        }
    }
    counts.into_iter().max_by_key(|&(_, n)| n).map(|(d, _)| format!("{d:?}").to_uppercase())
}

/// Resolves `--model`: an existing path is used as is; otherwise a name from [`scan`]: the full name, a
/// repository holding one model (`owner/name`), `owner/name:QUANT`, or a unique file name.
pub fn resolve(data_dir: &Path, name: &str) -> Result<PathBuf, CatalogError> {
    let as_path = Path::new(name);
    if as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    let models = scan(data_dir);
    let (base, quant) = match name.rsplit_once(':') {
        Some((b, q)) if !q.is_empty() && !q.contains('/') => (b, Some(q.to_ascii_lowercase())),
        _ => (name, None),
    };
    let quant_ok = |m: &LocalModel| match &quant {
        None => true,
        Some(q) => {
            m.quant.as_deref().is_some_and(|mq| mq.eq_ignore_ascii_case(q))
                || m.name
                    .to_ascii_lowercase()
                    .rsplit('/')
                    .next()
                    .is_some_and(|f| f.contains(q.as_str()))
        }
    };
    let passes: [&dyn Fn(&LocalModel) -> bool; 3] = [
        &|m| m.name == base,
        &|m| m.name.strip_prefix(base).is_some_and(|rest| rest.starts_with('/')),
        &|m| m.name.rsplit('/').next() == Some(base),
    ];
    for pass in passes {
        let found: Vec<&LocalModel> = models.iter().filter(|m| pass(m) && quant_ok(m)).collect();
        match found.as_slice() {
            [] => continue,
            [one] => return Ok(one.path.clone()),
            many => {
                return Err(CatalogError::Ambiguous {
                    name: name.to_owned(),
                    matches: many.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
                });
            }
        }
    }
    Err(CatalogError::NotFound {
        name: name.to_owned(),
        models_dir: models_dir(data_dir).display().to_string(),
        known: if models.is_empty() {
            "it is empty".to_owned()
        } else {
            models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
        },
    })
}
