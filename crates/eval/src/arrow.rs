//! A small reader for Arrow IPC data (the stream format Hugging Face `save_to_disk` writes, e.g.
//! CFBenchmark, and the file format around it): flat tables of string, integer, float and boolean
//! columns, uncompressed, which is what benchmark data uses. It decodes the flatbuffer metadata by hand,
//! so EVE does not pull in the whole `arrow` crate family for one loader.

use std::path::Path;

use serde_json::{Map, Value};

use crate::EvalError;

/// Column types this reader decodes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Utf8 { large: bool },
    Int { bits: u32, signed: bool },
    Float { precision: u16 },
    Bool,
    Null,
}

/// A flatbuffer table: the buffer and the table's position.
#[derive(Clone, Copy)]
struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(what: impl Into<String>) -> String {
    what.into()
}

fn read<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], String> {
    buf.get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(format!("truncated at byte {at}")))
}
fn u16_at(buf: &[u8], at: usize) -> Result<u16, String> {
    Ok(u16::from_le_bytes(read(buf, at)?))
}
fn u32_at(buf: &[u8], at: usize) -> Result<u32, String> {
    Ok(u32::from_le_bytes(read(buf, at)?))
}
fn i64_at(buf: &[u8], at: usize) -> Result<i64, String> {
    Ok(i64::from_le_bytes(read(buf, at)?))
}
fn usize_of(v: i64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| bad(format!("negative size {v}")))
}

impl<'a> Table<'a> {
    fn root(buf: &'a [u8]) -> Result<Table<'a>, String> {
        Ok(Table { buf, pos: u32_at(buf, 0)? as usize })
    }

    /// The position of field `id`, if present.
    fn field(&self, id: usize) -> Result<Option<usize>, String> {
        let soffset = i32::from_le_bytes(read(self.buf, self.pos)?);
        let vtable = usize::try_from(i64::try_from(self.pos).unwrap_or(0) - i64::from(soffset))
            .map_err(|_| bad("bad vtable offset"))?;
        let vtable_len = usize::from(u16_at(self.buf, vtable)?);
        let slot = 4 + 2 * id;
        if slot + 2 > vtable_len {
            return Ok(None);
        }
        let off = usize::from(u16_at(self.buf, vtable + slot)?);
        Ok((off != 0).then_some(self.pos + off))
    }

    fn u8(&self, id: usize, default: u8) -> Result<u8, String> {
        Ok(match self.field(id)? {
            Some(p) => read::<1>(self.buf, p)?[0],
            None => default,
        })
    }
    fn u16(&self, id: usize, default: u16) -> Result<u16, String> {
        self.field(id)?.map_or(Ok(default), |p| u16_at(self.buf, p))
    }
    fn u32(&self, id: usize, default: u32) -> Result<u32, String> {
        self.field(id)?.map_or(Ok(default), |p| u32_at(self.buf, p))
    }
    fn i64(&self, id: usize) -> Result<i64, String> {
        self.field(id)?.map_or(Ok(0), |p| i64_at(self.buf, p))
    }

    /// Follows the offset stored in field `id`.
    fn indirect(&self, id: usize) -> Result<Option<usize>, String> {
        self.field(id)?.map(|p| Ok(p + u32_at(self.buf, p)? as usize)).transpose()
    }
    fn table(&self, id: usize) -> Result<Option<Table<'a>>, String> {
        Ok(self.indirect(id)?.map(|pos| Table { buf: self.buf, pos }))
    }
    fn string(&self, id: usize) -> Result<String, String> {
        let Some(at) = self.indirect(id)? else { return Ok(String::new()) };
        let len = u32_at(self.buf, at)? as usize;
        let bytes = self.buf.get(at + 4..at + 4 + len).ok_or_else(|| bad("truncated string"))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
    /// A vector field: (position of the first element, count).
    fn vector(&self, id: usize) -> Result<(usize, usize), String> {
        match self.indirect(id)? {
            Some(at) => Ok((at + 4, u32_at(self.buf, at)? as usize)),
            None => Ok((0, 0)),
        }
    }
    fn tables(&self, id: usize) -> Result<Vec<Table<'a>>, String> {
        let (first, n) = self.vector(id)?;
        (0..n)
            .map(|i| {
                let p = first + 4 * i;
                Ok(Table { buf: self.buf, pos: p + u32_at(self.buf, p)? as usize })
            })
            .collect()
    }
}

fn kind_of(field: &Table<'_>) -> Result<Kind, String> {
    let type_type = field.u8(2, 0)?;
    let ty = field.table(3)?;
    Ok(match type_type {
        1 => Kind::Null,
        2 => {
            let t = ty.ok_or_else(|| bad("Int without parameters"))?;
            Kind::Int { bits: t.u32(0, 32)?, signed: t.u8(1, 0)? != 0 }
        }
        3 => Kind::Float { precision: ty.map_or(Ok(1), |t| t.u16(0, 1))? },
        5 => Kind::Utf8 { large: false },
        6 => Kind::Bool,
        20 => Kind::Utf8 { large: true },
        other => {
            return Err(bad(format!(
                "Arrow type {other} (only flat string, integer, float and boolean columns are read)"
            )));
        }
    })
}

fn buffers_of(kind: Kind) -> usize {
    match kind {
        Kind::Null => 0,
        Kind::Utf8 { .. } => 3,
        _ => 2,
    }
}

/// Reads the value of row `i` of one column.
fn value(kind: Kind, validity: &[u8], bufs: &[&[u8]], i: usize) -> Result<Value, String> {
    if kind == Kind::Null
        || (!validity.is_empty() && validity.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) == 0))
    {
        return Ok(Value::Null);
    }
    let data = bufs.get(1).copied().unwrap_or_default();
    Ok(match kind {
        Kind::Utf8 { large } => {
            let (start, end) = if large {
                (usize_of(i64_at(data, 8 * i)?)?, usize_of(i64_at(data, 8 * i + 8)?)?)
            } else {
                (u32_at(data, 4 * i)? as usize, u32_at(data, 4 * i + 4)? as usize)
            };
            let bytes = bufs
                .get(2)
                .and_then(|b| b.get(start..end))
                .ok_or_else(|| bad(format!("row {i}: string out of range")))?;
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
        Kind::Int { bits, signed } => {
            let w = (bits / 8) as usize;
            let raw = data.get(w * i..w * i + w).ok_or_else(|| bad("int out of range"))?;
            let mut b = [0u8; 8];
            b[..w].copy_from_slice(raw);
            if signed && raw.last().is_some_and(|x| x & 0x80 != 0) {
                b[w..].fill(0xff);
            }
            if signed {
                Value::from(i64::from_le_bytes(b))
            } else {
                Value::from(u64::from_le_bytes(b))
            }
        }
        Kind::Float { precision } => {
            let f = match precision {
                1 => f64::from(f32::from_le_bytes(read(data, 4 * i)?)),
                2 => f64::from_le_bytes(read(data, 8 * i)?),
                _ => return Err(bad("half floats are not read")),
            };
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        Kind::Bool => Value::Bool(data.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)),
        Kind::Null => Value::Null,
    })
}

/// The rows of an Arrow IPC stream (or file) as JSON objects keyed by column name.
pub fn rows(bytes: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    // The file format is the stream format between a magic header and a footer.
    let mut at = if bytes.starts_with(b"ARROW1") { 8 } else { 0 };
    let mut columns: Vec<(String, Kind)> = Vec::new();
    let mut out = Vec::new();
    while at + 4 <= bytes.len() {
        let mut len = u32_at(bytes, at)?;
        at += 4;
        if len == 0xFFFF_FFFF {
            len = u32_at(bytes, at)?;
            at += 4;
        }
        if len == 0 {
            break;
        }
        let meta = bytes.get(at..at + len as usize).ok_or_else(|| bad("truncated message"))?;
        at += len as usize;
        let message = Table::root(meta)?;
        let body_len = usize_of(message.i64(3)?)?;
        let body = bytes.get(at..at + body_len).ok_or_else(|| bad("truncated message body"))?;
        at += body_len;
        let header = message.table(2)?.ok_or_else(|| bad("message without header"))?;
        match message.u8(1, 0)? {
            1 => {
                columns = header
                    .tables(1)?
                    .iter()
                    .map(|f| {
                        let name = f.string(0)?;
                        kind_of(f)
                            .map(|k| (name.clone(), k))
                            .map_err(|e| format!("column {name}: {e}"))
                    })
                    .collect::<Result<_, String>>()?;
            }
            3 => {
                if header.field(3)?.is_some() {
                    return Err(bad("compressed record batches are not read"));
                }
                let n = usize_of(header.i64(0)?)?;
                let (buffers, count) = header.vector(2)?;
                let buffer = |k: usize| -> Result<&[u8], String> {
                    if k >= count {
                        return Err(bad("fewer buffers than columns need"));
                    }
                    let off = usize_of(i64_at(meta, buffers + 16 * k)?)?;
                    let len = usize_of(i64_at(meta, buffers + 16 * k + 8)?)?;
                    body.get(off..off + len).ok_or_else(|| bad("buffer out of range"))
                };
                let mut k = 0;
                let mut decoded = Vec::with_capacity(columns.len());
                for &(_, kind) in &columns {
                    let bufs = (0..buffers_of(kind))
                        .map(|j| buffer(k + j))
                        .collect::<Result<Vec<_>, _>>()?;
                    k += buffers_of(kind);
                    decoded.push(bufs);
                }
                for i in 0..n {
                    let mut row = Map::new();
                    for ((name, kind), bufs) in columns.iter().zip(&decoded) {
                        let validity = bufs.first().copied().unwrap_or_default();
                        row.insert(name.clone(), value(*kind, validity, bufs, i)?);
                    }
                    out.push(row);
                }
            }
            2 => return Err(bad("dictionary-encoded columns are not read")),
            other => return Err(bad(format!("unexpected message type {other}"))),
        }
    }
    Ok(out)
}

/// Reads `path` as Arrow IPC, naming the file in errors.
pub fn read_rows(path: &Path) -> Result<Vec<Map<String, Value>>, EvalError> {
    let bytes = std::fs::read(path)
        .map_err(|error| EvalError::Io { path: path.display().to_string(), error })?;
    rows(&bytes).map_err(|message| EvalError::Data {
        file: path.display().to_string(),
        row: 0,
        column: None,
        message: format!("Arrow IPC: {message}"),
    })
}
