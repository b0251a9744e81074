//! A validating GGUF reader: parses the header, metadata and tensor index of a memory-mapped file and checks
//! every length and offset against the file size before any of it reaches candle.
//!
//! candle's own `gguf_file::Content::read` allocates whatever lengths the file claims and its raw-data path
//! reads without bounds checks, so a truncated or corrupted download could abort the process. This parser
//! produces the same `Content` (so the tokenizer code can read `tokenizer.ggml.*` from it), but only after
//! validation; tensors are then built from slices of the map. Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};
use candle_core::quantized::{GgmlDType, QTensor, ggml_file};
use candle_core::{Device, Shape};
use memmap2::Mmap;

use crate::error::{EngineError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const MAX_ARRAY_DEPTH: usize = 4;
const MAX_DIMS: usize = 4;

/// An open GGUF file: validated metadata and tensor index over a memory map.
#[derive(Debug)]
pub struct GgufFile {
    path: String,
    map: Arc<Mmap>,
    content: Content,
}

impl GgufFile {
    /// Maps and validates `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let map = crate::mmap::map_file(path)?;
        let name = path.display().to_string();
        let content = parse(&name, &map)?;
        Ok(GgufFile { path: name, map: Arc::new(map), content })
    }

    /// The parsed header, metadata and tensor index (what the tokenizer reads `tokenizer.ggml.*` from).
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A metadata value, if present.
    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// Lets the OS drop the map's resident pages once the model has copied its weights out (see
    /// [`crate::mmap::release_pages`]); metadata and the tensor index are parsed copies and stay.
    pub fn release_pages(&self) {
        crate::mmap::release_pages(&self.map);
    }

    /// Lets the OS drop the resident pages of one tensor's bytes (from [`GgufFile::tensor_data`]) once the
    /// model holds its own copy.
    pub fn release(&self, bytes: &[u8]) {
        crate::mmap::release_range(&self.map, bytes);
    }

    /// Whether the file holds a tensor of this name.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The named tensor's GGML type, shape (GGUF order reversed, outermost first) and bytes in the map.
    pub fn tensor_data(&self, name: &str) -> Result<(GgmlDType, &[usize], &[u8])> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| EngineError::MissingTensor(name.to_owned()))?;
        let (start, len) = tensor_byte_range(&self.content, info).ok_or_else(|| {
            EngineError::corrupt(&self.path, format!("tensor `{name}` size overflows"))
        })?;
        let bytes = self.map.get(start..start + len).ok_or_else(|| {
            EngineError::corrupt(&self.path, format!("tensor `{name}` lies outside the file"))
        })?;
        Ok((info.ggml_dtype, info.shape.dims(), bytes))
    }

    /// Builds the named tensor from the map (its bytes were bounds-checked at open).
    pub fn tensor(&self, name: &str) -> Result<QTensor> {
        let (dtype, dims, bytes) = self.tensor_data(name)?;
        Ok(ggml_file::qtensor_from_ggml(dtype, bytes, dims.to_vec(), &Device::Cpu)?)
    }
}

/// The supported GGML tensor types by their on-disk id.
fn ggml_dtype(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

fn tensor_byte_range(content: &Content, info: &TensorInfo) -> Option<(usize, usize)> {
    let elems = info.shape.elem_count();
    let block = info.ggml_dtype.block_size();
    let len = (elems / block).checked_mul(info.ggml_dtype.type_size())?;
    let start = usize::try_from(content.tensor_data_offset.checked_add(info.offset)?).ok()?;
    start.checked_add(len)?;
    Some((start, len))
}

struct Reader<'a> {
    path: &'a str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: impl std::fmt::Display) -> EngineError {
        EngineError::corrupt(self.path, format!("{what} (at byte {})", self.pos))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(format!(
                "truncated while reading {what}: {n} bytes needed, file has {}",
                self.buf.len()
            )));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// A count that must fit in the rest of the file at `min_size` bytes per item.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize> {
        let n = self.u64(what)?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_size) <= self.remaining() => Ok(n),
            _ => Err(self.err(format!("{what} {n} is larger than the file"))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.err(format!("{what} is not valid UTF-8")))
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>("u8")?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array("i8")?)),
            2 => Value::U16(u16::from_le_bytes(self.array("u16")?)),
            3 => Value::I16(i16::from_le_bytes(self.array("i16")?)),
            4 => Value::U32(self.u32("u32")?),
            5 => Value::I32(i32::from_le_bytes(self.array("i32")?)),
            6 => Value::F32(f32::from_le_bytes(self.array("f32")?)),
            7 => match self.array::<1>("bool")?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.err(format!("invalid bool byte {b}"))),
            },
            8 => Value::String(self.string("string length")?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.err("arrays nested too deeply"));
                }
                let elem_ty = self.u32("array type")?;
                let min = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    10..=12 => 8,
                    8 | 9 => 8,
                    t => return Err(self.err(format!("unknown metadata value type {t}"))),
                };
                let n = self.count("array length", min)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem_ty, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64("u64")?),
            11 => Value::I64(i64::from_le_bytes(self.array("i64")?)),
            12 => Value::F64(f64::from_le_bytes(self.array("f64")?)),
            t => return Err(self.err(format!("unknown metadata value type {t}"))),
        })
    }
}

/// Validates a GGUF image held in memory: header, metadata, tensor index and every tensor's byte range, as
/// [`GgufFile::open`] does for a mapped file. The entry point of the GGUF fuzz target.
pub fn validate(bytes: &[u8]) -> Result<Content> {
    parse("<memory>", bytes)
}

/// Parses and validates a whole GGUF image.
pub(crate) fn parse(path: &str, buf: &[u8]) -> Result<Content> {
    let mut r = Reader { path, buf, pos: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(EngineError::corrupt(path, "not a GGUF file (bad magic)"));
    }
    let magic = match r.u32("version")? {
        2 => VersionedMagic::GgufV2,
        3 => VersionedMagic::GgufV3,
        v => {
            return Err(EngineError::corrupt(
                path,
                format!("unsupported GGUF version {v} (need 2 or 3)"),
            ));
        }
    };
    // Each tensor info takes at least 8 (name) + 4 (dims) + 4 (type) + 8 (offset) bytes; each key-value 8 + 4.
    let n_tensors = r.count("tensor count", 24)?;
    let n_kv = r.count("metadata count", 12)?;
    let mut metadata = HashMap::with_capacity(n_kv);
    for _ in 0..n_kv {
        let key = r.string("metadata key length")?;
        let ty = r.u32("metadata value type")?;
        let value = r.value(ty, 0)?;
        metadata.insert(key, value);
    }
    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(Value::U32(a)) if a.is_power_of_two() => *a as usize,
        Some(v) => return Err(r.err(format!("invalid general.alignment {v:?}"))),
    };
    let mut infos = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = r.string("tensor name length")?;
        let n_dims = r.u32("tensor dimension count")? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.err(format!("tensor `{name}` has {n_dims} dimensions")));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            let d = r.u64("tensor dimension")?;
            dims.push(
                usize::try_from(d)
                    .map_err(|_| r.err(format!("tensor `{name}` dimension {d} too large")))?,
            );
        }
        let type_id = r.u32("tensor type")?;
        let offset = r.u64("tensor offset")?;
        let dtype = ggml_dtype(type_id).ok_or_else(|| EngineError::UnsupportedQuant {
            tensor: name.clone(),
            dtype: format!("ggml type id {type_id}"),
        })?;
        // The byte size is computed from the element count later; it must not overflow.
        if dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).is_none() {
            return Err(r.err(format!("tensor `{name}` element count overflows")));
        }
        if !dims[0].is_multiple_of(dtype.block_size()) {
            return Err(r.err(format!(
                "tensor `{name}` row of {} is not a multiple of the {dtype:?} block",
                dims[0]
            )));
        }
        // GGUF lists dimensions innermost first; candle shapes are outermost first.
        dims.reverse();
        infos.push((name, TensorInfo { ggml_dtype: dtype, shape: Shape::from(dims), offset }));
    }
    let data_offset = r.pos.div_ceil(alignment) * alignment;
    let mut content = Content {
        magic,
        metadata,
        tensor_infos: HashMap::with_capacity(infos.len()),
        tensor_data_offset: data_offset as u64,
    };
    for (name, info) in infos {
        let range = tensor_byte_range(&content, &info);
        match range {
            Some((start, len)) if start.checked_add(len).is_some_and(|end| end <= buf.len()) => {
                if start % 4 != 0 {
                    return Err(EngineError::corrupt(
                        path,
                        format!("tensor `{name}` data is misaligned"),
                    ));
                }
            }
            _ => {
                return Err(EngineError::corrupt(
                    path,
                    format!(
                        "tensor `{name}` extends past the end of the file ({} bytes): file is truncated",
                        buf.len()
                    ),
                ));
            }
        }
        if content.tensor_infos.insert(name.clone(), info).is_some() {
            return Err(EngineError::corrupt(path, format!("tensor `{name}` listed twice")));
        }
    }
    Ok(content)
}
