//! Constrained decoding for OpenAI's `response_format`: output that is guaranteed to be JSON (`json_object`) or
//! to match a JSON Schema (`json_schema`), whatever the model would have preferred.
//!
//! A byte-level recogniser (a pushdown automaton over the schema) says whether a byte string can still be
//! extended to a valid document. Before each sampling step every token whose bytes cannot extend the output so
//! far is masked out; the masks come from walking a trie of the vocabulary's token bytes together with the
//! recogniser, so tokens sharing a prefix share the work, and masks are cached per recogniser state (inside a
//! string the state repeats token after token). End-of-sequence is allowed only when the document is complete,
//! and generation ends as soon as nothing more can follow.
//!
//! Each state also knows the fewest bytes that complete the document. Tokens that would leave more to write
//! than the remaining token budget allows are masked too, so a `max_tokens` limit closes the JSON instead of
//! cutting it off (best effort when the budget is smaller than the shortest valid document).
//!
//! Supported JSON Schema subset: `type` (one or a list), `properties`, `required`, `additionalProperties`
//! (false by default), `items`, `enum`, `const`, `anyOf` over different types, and annotations (`title`,
//! `description`, `default`, `examples`, `$schema`, `$comment`). Anything else is refused by name rather than
//! silently ignored.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;
use types::{Code, ErrorCode};

use crate::tokenizer::{TokenKind, Tokenizer};

/// Why a schema cannot be enforced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema uses a keyword the recogniser does not implement.
    #[error(
        "JSON Schema keyword `{keyword}` (at {path}) is not supported; supported: type, properties, required, additionalProperties, items, enum, const, anyOf over different types, and annotations"
    )]
    Unsupported {
        /// The keyword.
        keyword: String,
        /// Where in the schema, as a JSON pointer.
        path: String,
    },
    /// The schema is malformed or cannot be satisfied.
    #[error("invalid JSON Schema at {path}: {reason}")]
    Invalid {
        /// Where in the schema, as a JSON pointer.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl ErrorCode for SchemaError {
    fn error_code(&self) -> Code {
        Code::InvalidParameter
    }
}

const STRING: u8 = 1;
const NUMBER: u8 = 2;
const INTEGER: u8 = 4;
const BOOLEAN: u8 = 8;
const NULL: u8 = 16;
const OBJECT: u8 = 32;
const ARRAY: u8 = 64;
const ALL: u8 = STRING | NUMBER | BOOLEAN | NULL | OBJECT | ARRAY;

/// The node every unconstrained value uses.
const ANY: u32 = 0;
/// The literal nodes of `true`, `false` and `null`.
const TRUE_NODE: u32 = 1;
const FALSE_NODE: u32 = 2;
const NULL_NODE: u32 = 3;
/// Longest whitespace run accepted between tokens (enough for a newline and deep indentation; a model that
/// would loop on whitespace cannot).
const MAX_WS: u8 = 24;
/// Objects track which properties were written in a 64-bit set.
const MAX_PROPERTIES: usize = 64;
const FREE_KEY: u16 = u16::MAX;
/// Longest run of integer or fraction digits, and of exponent digits: every number stays a finite f64.
const MAX_DIGITS: u8 = 18;
const MAX_EXP_DIGITS: u8 = 2;

#[derive(Debug, Clone)]
struct Node {
    /// Which JSON types may appear (ignored when `literals` is not empty).
    kinds: u8,
    /// Declared properties: name bytes (plain JSON string content) and value node.
    props: Vec<(Vec<u8>, u32)>,
    /// Bit i: `props[i]` is required.
    required: u64,
    /// Schema of undeclared properties; `None` forbids them.
    additional: Option<u32>,
    /// Schema of array items.
    items: u32,
    /// `enum` / `const`: the exact JSON texts allowed.
    literals: Vec<Vec<u8>>,
    /// Fewest bytes of any value of this node.
    min_len: usize,
}

impl Node {
    fn any() -> Node {
        Node {
            kinds: ALL,
            props: Vec::new(),
            required: 0,
            additional: Some(ANY),
            items: ANY,
            literals: Vec::new(),
            min_len: 1,
        }
    }

    fn literal(text: &str) -> Node {
        Node {
            kinds: 0,
            literals: vec![text.as_bytes().to_vec()],
            min_len: text.len(),
            ..Node::any()
        }
    }
}

/// The nodes every grammar starts with: any value, then the literals `true`, `false`, `null`.
fn base_nodes() -> Vec<Node> {
    vec![Node::any(), Node::literal("true"), Node::literal("false"), Node::literal("null")]
}

/// A compiled `response_format`: what the output must be.
#[derive(Debug, Clone)]
pub struct Grammar {
    nodes: Vec<Node>,
    root: u32,
    /// How far ahead of the remaining budget the completion distance is checked (see [`Constraint::allowed`]).
    slack: usize,
}

const ANNOTATIONS: &[&str] =
    &["title", "description", "default", "examples", "$schema", "$comment", "$id", "strict"];
const KEYWORDS: &[&str] =
    &["type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf"];

impl Grammar {
    /// Any JSON object (`{"type": "json_object"}`).
    pub fn json_object() -> Grammar {
        let mut nodes = base_nodes();
        let object = Node { kinds: OBJECT, min_len: 2, ..Node::any() };
        nodes.push(object);
        let root = nodes.len() as u32 - 1;
        Grammar::finish(nodes, root)
    }

    /// Any JSON value.
    pub fn json_value() -> Grammar {
        Grammar::finish(base_nodes(), ANY)
    }

    /// Compiles a JSON Schema (the subset in the module documentation).
    pub fn from_schema(schema: &Value) -> Result<Grammar, SchemaError> {
        let mut nodes = base_nodes();
        let root = compile(&mut nodes, schema, "#")?;
        Ok(Grammar::finish(nodes, root))
    }

    fn finish(nodes: Vec<Node>, root: u32) -> Grammar {
        let slack = nodes[root as usize].min_len.saturating_mul(2).saturating_add(256);
        Grammar { nodes, root, slack }
    }

    fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    /// Whether `text` is a complete document.
    pub fn accepts(&self, text: &[u8]) -> bool {
        let mut state = State::new(self);
        text.iter().all(|&b| state.feed(self, b)) && state.can_end(self)
    }

    /// Whether `text` can be extended to a complete document.
    pub fn accepts_prefix(&self, text: &[u8]) -> bool {
        let mut state = State::new(self);
        text.iter().all(|&b| state.feed(self, b))
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid { path: path.to_owned(), reason: reason.into() }
}

fn compile(nodes: &mut Vec<Node>, schema: &Value, path: &str) -> Result<u32, SchemaError> {
    let map = match schema {
        Value::Bool(true) => return Ok(ANY),
        Value::Object(map) => map,
        _ => return Err(invalid(path, "a schema must be an object or true")),
    };
    for key in map.keys() {
        if !KEYWORDS.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
            return Err(SchemaError::Unsupported { keyword: key.clone(), path: path.to_owned() });
        }
    }
    let mut node = Node::any();
    node.additional = None;
    if let Some(branches) = map.get("anyOf") {
        if let Some(other) = map.keys().find(|k| KEYWORDS.contains(&k.as_str()) && *k != "anyOf") {
            return Err(SchemaError::Unsupported {
                keyword: format!("{other} next to anyOf"),
                path: path.to_owned(),
            });
        }
        let branches = branches
            .as_array()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid(path, "anyOf must be a non-empty array"))?;
        node.kinds = 0;
        for (i, branch) in branches.iter().enumerate() {
            let at = format!("{path}/anyOf/{i}");
            let id = compile(nodes, branch, &at)?;
            let b = nodes[id as usize].clone();
            let numeric =
                |k: u8| if k & (NUMBER | INTEGER) != 0 { k | NUMBER | INTEGER } else { k };
            if !b.literals.is_empty() || numeric(b.kinds) & numeric(node.kinds) != 0 {
                return Err(SchemaError::Unsupported {
                    keyword: "anyOf with branches of the same type (or enum branches)".to_owned(),
                    path: at,
                });
            }
            if b.kinds & OBJECT != 0 {
                node.props = b.props;
                node.required = b.required;
                node.additional = b.additional;
            }
            if b.kinds & ARRAY != 0 {
                node.items = b.items;
            }
            node.kinds |= b.kinds;
        }
        return Ok(push(nodes, node));
    }
    let literals: Option<Vec<&Value>> = match (map.get("enum"), map.get("const")) {
        (Some(_), Some(_)) => return Err(invalid(path, "enum and const together")),
        (None, Some(c)) => Some(vec![c]),
        (Some(e), None) => Some(
            e.as_array()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(path, "enum must be a non-empty array"))?
                .iter()
                .collect(),
        ),
        (None, None) => None,
    };
    if let Some(values) = literals {
        node.literals = values.iter().map(|v| v.to_string().into_bytes()).collect();
        node.kinds = 0;
        return Ok(push(nodes, node));
    }
    node.kinds = match map.get("type") {
        None if ["properties", "required", "additionalProperties"]
            .iter()
            .any(|k| map.contains_key(*k)) =>
        {
            OBJECT
        }
        None if map.contains_key("items") => ARRAY,
        None => ALL,
        Some(Value::String(name)) => kind_of(name, path)?,
        Some(Value::Array(names)) if !names.is_empty() => {
            let mut kinds = 0;
            for name in names {
                kinds |= kind_of(name.as_str().unwrap_or_default(), path)?;
            }
            kinds
        }
        Some(_) => return Err(invalid(path, "type must be a type name or a list of them")),
    };
    if node.kinds & NUMBER != 0 {
        node.kinds &= !INTEGER;
    }
    if let Some(props) = map.get("properties") {
        let props =
            props.as_object().ok_or_else(|| invalid(path, "properties must be an object"))?;
        for (name, sub) in props {
            if name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
                return Err(invalid(
                    path,
                    format!("property name {name:?} needs escaping, which is not supported"),
                ));
            }
            let id = compile(nodes, sub, &format!("{path}/properties/{name}"))?;
            node.props.push((name.as_bytes().to_vec(), id));
        }
    }
    node.additional = match map.get("additionalProperties") {
        None | Some(Value::Bool(false)) => None,
        Some(sub) => Some(compile(nodes, sub, &format!("{path}/additionalProperties"))?),
    };
    if let Some(required) = map.get("required") {
        let names =
            required.as_array().ok_or_else(|| invalid(path, "required must be an array"))?;
        for name in names {
            let name = name.as_str().ok_or_else(|| invalid(path, "required lists names"))?;
            let index = match node.props.iter().position(|(n, _)| n == name.as_bytes()) {
                Some(i) => i,
                None if node.additional.is_some() => {
                    node.props.push((name.as_bytes().to_vec(), node.additional.unwrap_or(ANY)));
                    node.props.len() - 1
                }
                None => {
                    return Err(invalid(
                        path,
                        format!(
                            "{name:?} is required but not a property, and additionalProperties is false"
                        ),
                    ));
                }
            };
            node.required |= 1 << index.min(63);
        }
    }
    if node.props.len() > MAX_PROPERTIES {
        return Err(invalid(path, format!("more than {MAX_PROPERTIES} properties")));
    }
    if let Some(items) = map.get("items") {
        node.items = compile(nodes, items, &format!("{path}/items"))?;
    }
    Ok(push(nodes, node))
}

fn kind_of(name: &str, path: &str) -> Result<u8, SchemaError> {
    Ok(match name {
        "string" => STRING,
        "number" => NUMBER,
        "integer" => INTEGER,
        "boolean" => BOOLEAN,
        "null" => NULL,
        "object" => OBJECT,
        "array" => ARRAY,
        other => return Err(invalid(path, format!("unknown type {other:?}"))),
    })
}

/// Adds a node, computing its shortest value from its (already compiled) children.
fn push(nodes: &mut Vec<Node>, mut node: Node) -> u32 {
    node.min_len = if node.literals.is_empty() {
        let object = required_cost(nodes, &node, 0);
        [
            (STRING, 2),
            (NUMBER | INTEGER, 1),
            (BOOLEAN, 4),
            (NULL, 4),
            (OBJECT, if node.required == 0 { 2 } else { object }),
            (ARRAY, 2),
        ]
        .iter()
        .filter(|(k, _)| node.kinds & k != 0)
        .map(|&(_, len)| len)
        .min()
        .unwrap_or(usize::MAX / 4)
    } else {
        node.literals.iter().map(Vec::len).min().unwrap_or(0)
    };
    nodes.push(node);
    (nodes.len() - 1) as u32
}

/// Bytes to write the required properties not in `seen`, each as `,"name":value`, plus the closing `}`.
fn required_cost(nodes: &[Node], node: &Node, seen: u64) -> usize {
    let mut cost = 1;
    for (i, (name, value)) in node.props.iter().enumerate() {
        if node.required & !seen & (1 << i) != 0 {
            cost += 1 + name.len() + 3 + nodes[*value as usize].min_len;
        }
    }
    cost
}

/// Where inside a UTF-8 character a string is: bytes still needed and the range of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct Utf8 {
    need: u8,
    lo: u8,
    hi: u8,
}

/// Inside a JSON string: escapes and UTF-8. Returns `Some(true)` when `b` closes the string.
fn string_byte(utf8: &mut Utf8, esc: &mut u8, b: u8) -> Option<bool> {
    if utf8.need > 0 {
        if !(utf8.lo..=utf8.hi).contains(&b) {
            return None;
        }
        utf8.need -= 1;
        (utf8.lo, utf8.hi) = (0x80, 0xBF);
        return Some(false);
    }
    match *esc {
        0 => {}
        1 => {
            *esc = match b {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 0,
                b'u' => 2,
                _ => return None,
            };
            return Some(false);
        }
        _ => {
            if !b.is_ascii_hexdigit() {
                return None;
            }
            *esc = if *esc == 5 { 0 } else { *esc + 1 };
            return Some(false);
        }
    }
    match b {
        b'"' => return Some(true),
        b'\\' => *esc = 1,
        0..0x20 | 0x80..0xC2 | 0xF5.. => return None,
        0x20..0x80 => {}
        0xC2..0xE0 => *utf8 = Utf8 { need: 1, lo: 0x80, hi: 0xBF },
        0xE0 => *utf8 = Utf8 { need: 2, lo: 0xA0, hi: 0xBF },
        0xED => *utf8 = Utf8 { need: 2, lo: 0x80, hi: 0x9F },
        0xE1..0xF0 => *utf8 = Utf8 { need: 2, lo: 0x80, hi: 0xBF },
        0xF0 => *utf8 = Utf8 { need: 3, lo: 0x90, hi: 0xBF },
        0xF4 => *utf8 = Utf8 { need: 3, lo: 0x80, hi: 0x8F },
        0xF1..0xF4 => *utf8 = Utf8 { need: 3, lo: 0x80, hi: 0xBF },
    }
    Some(false)
}

fn string_pending(utf8: Utf8, esc: u8) -> usize {
    usize::from(utf8.need)
        + match esc {
            0 => 0,
            1 => 1,
            e => usize::from(6 - e),
        }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NumPhase {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl NumPhase {
    fn complete(self) -> bool {
        matches!(self, NumPhase::Zero | NumPhase::Int | NumPhase::Frac | NumPhase::ExpDigits)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ObjPhase {
    /// After `{`: a key or `}`.
    Open,
    /// After `,`: a key.
    NeedKey,
    /// A key is being written (the frame above).
    InKey,
    /// After a key: `:`, then a value of this node.
    Colon(u32),
    /// After a value: `,` or `}`.
    AfterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Frame {
    Value {
        node: u32,
    },
    /// Inside one of a literal node's texts (`true`, an enum value): `idx` is the first text that starts
    /// with the `pos` bytes written.
    Lit {
        node: u32,
        idx: u16,
        pos: u16,
    },
    Str {
        utf8: Utf8,
        esc: u8,
    },
    /// A number; `digits` counts the current run of digits (bounded so that every number parses as f64).
    Num {
        integer: bool,
        phase: NumPhase,
        digits: u8,
    },
    Obj {
        node: u32,
        seen: u64,
        phase: ObjPhase,
    },
    /// A key of the object below: `cand` is the first unwritten declared property that the key so far
    /// is a prefix of (`FREE_KEY`: none, an undeclared property).
    Key {
        node: u32,
        cand: u16,
        len: u16,
        utf8: Utf8,
        esc: u8,
    },
    Arr {
        node: u32,
        open: bool,
    },
}

/// A literal frame's texts and the prefix written so far.
fn literal(g: &Grammar, node: u32, idx: u16, pos: u16) -> (&[Vec<u8>], &[u8]) {
    let all = &g.node(node).literals;
    (all, &all[idx as usize][..pos as usize])
}

/// The recogniser's state: a stack of open constructs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct State {
    stack: Vec<Frame>,
    ws: u8,
}

impl Clone for State {
    fn clone(&self) -> State {
        State { stack: self.stack.clone(), ws: self.ws }
    }

    fn clone_from(&mut self, source: &State) {
        self.stack.clone_from(&source.stack);
        self.ws = source.ws;
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl State {
    fn new(g: &Grammar) -> State {
        State { stack: vec![Frame::Value { node: g.root }], ws: 0 }
    }

    fn whitespace(&mut self) -> bool {
        self.ws += 1;
        self.ws <= MAX_WS
    }

    /// Consumes one byte; false (state unspecified) when no valid document continues with it.
    fn feed(&mut self, g: &Grammar, b: u8) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else { return false };
            if !is_ws(b) {
                self.ws = 0;
            }
            match *top {
                Frame::Value { node } => {
                    if is_ws(b) {
                        return self.whitespace();
                    }
                    let n = g.node(node);
                    if !n.literals.is_empty() {
                        let Some(idx) = n.literals.iter().position(|l| l.first() == Some(&b))
                        else {
                            return false;
                        };
                        *top = Frame::Lit { node, idx: idx as u16, pos: 1 };
                        self.pop_finished_literal(g);
                        return true;
                    }
                    let has = |k: u8| n.kinds & k != 0;
                    *top = match b {
                        b'"' if has(STRING) => Frame::Str { utf8: Utf8::default(), esc: 0 },
                        b'{' if has(OBJECT) => Frame::Obj { node, seen: 0, phase: ObjPhase::Open },
                        b'[' if has(ARRAY) => Frame::Arr { node, open: true },
                        b'-' | b'0'..=b'9' if has(NUMBER | INTEGER) => Frame::Num {
                            integer: !has(NUMBER),
                            digits: u8::from(b != b'-'),
                            phase: match b {
                                b'-' => NumPhase::Minus,
                                b'0' => NumPhase::Zero,
                                _ => NumPhase::Int,
                            },
                        },
                        b't' if has(BOOLEAN) => Frame::Lit { node: TRUE_NODE, idx: 0, pos: 1 },
                        b'f' if has(BOOLEAN) => Frame::Lit { node: FALSE_NODE, idx: 0, pos: 1 },
                        b'n' if has(NULL) => Frame::Lit { node: NULL_NODE, idx: 0, pos: 1 },
                        _ => return false,
                    };
                    return true;
                }
                Frame::Lit { node, idx, pos } => {
                    let (all, prefix) = literal(g, node, idx, pos);
                    let at = pos as usize;
                    if let Some(next) =
                        all.iter().position(|l| l.len() > at && l.starts_with(prefix) && l[at] == b)
                    {
                        *top = Frame::Lit { node, idx: next as u16, pos: pos + 1 };
                        self.pop_finished_literal(g);
                        return true;
                    }
                    if !all.iter().any(|l| l == prefix) {
                        return false;
                    }
                    self.stack.pop();
                }
                Frame::Str { mut utf8, mut esc } => match string_byte(&mut utf8, &mut esc, b) {
                    None => return false,
                    Some(true) => {
                        self.stack.pop();
                        return true;
                    }
                    Some(false) => {
                        *top = Frame::Str { utf8, esc };
                        return true;
                    }
                },
                Frame::Num { integer, phase, digits } => {
                    use NumPhase::*;
                    let next = match (phase, b) {
                        (Minus, b'0') => Some(Zero),
                        (Minus | Int, b'1'..=b'9') | (Int, b'0') => Some(Int),
                        (Zero | Int, b'.') if !integer => Some(Dot),
                        (Dot | Frac, b'0'..=b'9') => Some(Frac),
                        (Zero | Int | Frac, b'e' | b'E') if !integer => Some(Exp),
                        (Exp, b'+' | b'-') => Some(ExpSign),
                        (Exp | ExpSign | ExpDigits, b'0'..=b'9') => Some(ExpDigits),
                        _ => None,
                    };
                    let digits = if b.is_ascii_digit() { digits + 1 } else { 0 };
                    let max = if next == Some(ExpDigits) { MAX_EXP_DIGITS } else { MAX_DIGITS };
                    match next {
                        Some(_) if digits > max => return false,
                        Some(phase) => {
                            *top = Frame::Num { integer, phase, digits };
                            return true;
                        }
                        None if phase.complete() => {
                            self.stack.pop();
                        }
                        None => return false,
                    }
                }
                Frame::Obj { node, seen, phase } => {
                    if is_ws(b) {
                        return self.whitespace();
                    }
                    let n = g.node(node);
                    let can_close = n.required & !seen == 0;
                    let more_keys =
                        n.additional.is_some() || (0..n.props.len()).any(|i| seen & (1 << i) == 0);
                    match (phase, b) {
                        (ObjPhase::Open | ObjPhase::AfterValue, b'}') if can_close => {
                            self.stack.pop();
                        }
                        (ObjPhase::Open | ObjPhase::NeedKey, b'"') if more_keys => {
                            *top = Frame::Obj { node, seen, phase: ObjPhase::InKey };
                            let cand = first_candidate(n, seen, &[], 0).unwrap_or(FREE_KEY);
                            self.stack.push(Frame::Key {
                                node,
                                cand,
                                len: 0,
                                utf8: Utf8::default(),
                                esc: 0,
                            });
                        }
                        (ObjPhase::Colon(value), b':') => {
                            *top = Frame::Obj { node, seen, phase: ObjPhase::AfterValue };
                            self.stack.push(Frame::Value { node: value });
                        }
                        (ObjPhase::AfterValue, b',') if more_keys => {
                            *top = Frame::Obj { node, seen, phase: ObjPhase::NeedKey };
                        }
                        _ => return false,
                    }
                    return true;
                }
                Frame::Key { node, cand, len, mut utf8, mut esc } => {
                    let n = g.node(node);
                    let Some(closes) = string_byte(&mut utf8, &mut esc, b) else { return false };
                    let seen = match self.stack.iter().rev().nth(1) {
                        Some(Frame::Obj { seen, .. }) => *seen,
                        _ => return false,
                    };
                    let prefix: &[u8] = if cand == FREE_KEY {
                        &[]
                    } else {
                        &n.props[cand as usize].0[..len as usize]
                    };
                    if closes {
                        let exact = (cand != FREE_KEY)
                            .then(|| {
                                n.props.iter().enumerate().position(|(i, (name, _))| {
                                    seen & (1 << i) == 0 && name.as_slice() == prefix
                                })
                            })
                            .flatten();
                        let (bit, value) = match (exact, n.additional) {
                            (Some(i), _) => (1u64 << i, n.props[i].1),
                            (None, Some(additional)) => (0, additional),
                            (None, None) => return false,
                        };
                        self.stack.pop();
                        if let Some(Frame::Obj { seen, phase, .. }) = self.stack.last_mut() {
                            *seen |= bit;
                            *phase = ObjPhase::Colon(value);
                        }
                        return true;
                    }
                    // Names never contain escapes, so an escape makes the key undeclared.
                    let matched =
                        (cand != FREE_KEY).then(|| first_candidate(n, seen, prefix, b)).flatten();
                    let cand = match (matched, n.additional) {
                        (Some(c), _) => c,
                        (None, Some(_)) => FREE_KEY,
                        (None, None) => return false,
                    };
                    let len = if cand == FREE_KEY { 0 } else { len + 1 };
                    if let Some(top) = self.stack.last_mut() {
                        *top = Frame::Key { node, cand, len, utf8, esc };
                    }
                    return true;
                }
                Frame::Arr { node, open } => {
                    if is_ws(b) {
                        return self.whitespace();
                    }
                    match b {
                        b']' => {
                            self.stack.pop();
                            return true;
                        }
                        b',' if !open => {
                            self.stack.push(Frame::Value { node: g.node(node).items });
                            return true;
                        }
                        _ if open => {
                            *top = Frame::Arr { node, open: false };
                            self.stack.push(Frame::Value { node: g.node(node).items });
                        }
                        _ => return false,
                    }
                }
            }
        }
    }

    /// Pops a literal frame whose text is complete and that no longer text continues.
    fn pop_finished_literal(&mut self, g: &Grammar) {
        if let Some(&Frame::Lit { node, idx, pos }) = self.stack.last() {
            let (all, prefix) = literal(g, node, idx, pos);
            if all.iter().all(|l| !l.starts_with(prefix) || l.len() == prefix.len()) {
                self.stack.pop();
            }
        }
    }

    /// Whether the document may end here.
    fn can_end(&self, g: &Grammar) -> bool {
        match self.stack.as_slice() {
            [] => true,
            [Frame::Num { phase, .. }] => phase.complete(),
            [Frame::Lit { node, idx, pos }] => {
                let (all, prefix) = literal(g, *node, *idx, *pos);
                all.iter().any(|l| l == prefix)
            }
            _ => false,
        }
    }

    /// The fewest bytes that complete the document.
    fn distance(&self, g: &Grammar) -> usize {
        let mut total = 0;
        for (i, frame) in self.stack.iter().enumerate() {
            total += match *frame {
                Frame::Value { node } => g.node(node).min_len,
                Frame::Lit { node, idx, pos } => {
                    let (all, prefix) = literal(g, node, idx, pos);
                    all.iter()
                        .filter(|l| l.starts_with(prefix))
                        .map(|l| l.len() - prefix.len())
                        .min()
                        .unwrap_or(0)
                }
                Frame::Str { utf8, esc } => 1 + string_pending(utf8, esc),
                Frame::Num { phase, .. } => usize::from(!phase.complete()),
                Frame::Arr { .. } => 1,
                Frame::Obj { node, seen, phase } => {
                    let n = g.node(node);
                    let tail = required_cost(&g.nodes, n, seen);
                    match phase {
                        ObjPhase::InKey => 0,
                        ObjPhase::AfterValue => tail,
                        ObjPhase::Colon(value) => 1 + g.node(value).min_len + tail,
                        ObjPhase::Open | ObjPhase::NeedKey if tail > 1 => tail - 1,
                        ObjPhase::Open => 1,
                        ObjPhase::NeedKey => cheapest_key(g, n, seen) + 1,
                    }
                }
                Frame::Key { node, cand, len, utf8, esc } => {
                    let n = g.node(node);
                    let seen = match i.checked_sub(1).map(|j| self.stack[j]) {
                        Some(Frame::Obj { seen, .. }) => seen,
                        _ => 0,
                    };
                    let pending = string_pending(utf8, esc);
                    let free = n.additional.map(|a| {
                        pending + 2 + g.node(a).min_len + required_cost(&g.nodes, n, seen)
                    });
                    let declared = (cand != FREE_KEY).then(|| {
                        let prefix = &n.props[cand as usize].0[..len as usize];
                        n.props
                            .iter()
                            .enumerate()
                            .filter(|(j, (name, _))| {
                                seen & (1 << j) == 0 && name.starts_with(prefix)
                            })
                            .map(|(j, (name, value))| {
                                name.len() - prefix.len()
                                    + 2
                                    + g.node(*value).min_len
                                    + required_cost(&g.nodes, n, seen | (1 << j))
                            })
                            .min()
                    });
                    match (declared.flatten(), free) {
                        (Some(a), Some(b)) => a.min(b),
                        (Some(a), None) | (None, Some(a)) => a,
                        (None, None) => 0,
                    }
                }
            };
        }
        total
    }
}

/// The first declared property not yet written whose name starts with `prefix` followed by `b` (with an
/// empty prefix and `b == 0`: any property not yet written).
fn first_candidate(n: &Node, seen: u64, prefix: &[u8], b: u8) -> Option<u16> {
    let len = prefix.len();
    n.props
        .iter()
        .enumerate()
        .position(|(i, (name, _))| {
            seen & (1 << i) == 0
                && name.starts_with(prefix)
                && (len == 0 && b == 0 || name.get(len) == Some(&b))
        })
        .map(|i| i as u16)
}

/// Bytes of the cheapest `"key":value` still allowed in an object.
fn cheapest_key(g: &Grammar, n: &Node, seen: u64) -> usize {
    let declared = n
        .props
        .iter()
        .enumerate()
        .filter(|(i, _)| seen & (1 << i) == 0)
        .map(|(_, (name, value))| name.len() + 3 + g.node(*value).min_len);
    let free = n.additional.map(|a| 3 + g.node(a).min_len);
    declared.chain(free).min().unwrap_or(0)
}

/// Which tokens may be sampled: a bit set over the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMask {
    bits: Vec<u64>,
}

impl TokenMask {
    fn new(vocab: usize) -> TokenMask {
        TokenMask { bits: vec![0; vocab.div_ceil(64)] }
    }

    fn set(&mut self, token: u32) {
        if let Some(word) = self.bits.get_mut(token as usize / 64) {
            *word |= 1 << (token % 64);
        }
    }

    /// Whether `token` is allowed.
    pub fn contains(&self, token: u32) -> bool {
        self.bits.get(token as usize / 64).is_some_and(|w| w & (1 << (token % 64)) != 0)
    }

    /// How many tokens are allowed.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Token bytes as a trie in flat arrays.
#[derive(Debug, Default)]
struct Trie {
    /// Per node: range into `edges`.
    edge_start: Vec<u32>,
    /// (byte, child node), sorted by byte within a node.
    edges: Vec<(u8, u32)>,
    /// Per node: range into `ends`.
    end_start: Vec<u32>,
    /// Tokens whose bytes end at the node.
    ends: Vec<u32>,
}

impl Trie {
    fn build<'a>(tokens: impl Iterator<Item = (u32, &'a [u8])>) -> Trie {
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut ends: Vec<Vec<u32>> = vec![Vec::new()];
        for (id, token) in tokens {
            let mut node = 0usize;
            for &b in token {
                node = match children[node].iter().find(|(c, _)| *c == b) {
                    Some(&(_, child)) => child as usize,
                    None => {
                        children.push(Vec::new());
                        ends.push(Vec::new());
                        let child = children.len() - 1;
                        children[node].push((b, child as u32));
                        child
                    }
                };
            }
            ends[node].push(id);
        }
        let mut trie = Trie::default();
        for (mut kids, node_ends) in children.into_iter().zip(ends) {
            kids.sort_unstable();
            trie.edge_start.push(trie.edges.len() as u32);
            trie.edges.extend(kids);
            trie.end_start.push(trie.ends.len() as u32);
            trie.ends.extend(node_ends);
        }
        trie.edge_start.push(trie.edges.len() as u32);
        trie.end_start.push(trie.ends.len() as u32);
        trie
    }

    fn edges(&self, node: u32) -> &[(u8, u32)] {
        let n = node as usize;
        &self.edges[self.edge_start[n] as usize..self.edge_start[n + 1] as usize]
    }

    fn ends(&self, node: u32) -> &[u32] {
        let n = node as usize;
        &self.ends[self.end_start[n] as usize..self.end_start[n + 1] as usize]
    }
}

/// The vocabulary's token bytes, built once per tokenizer and shared by all constrained requests.
///
/// Most tokens are plain string content (valid UTF-8 without quotes, backslashes or control characters):
/// inside a string they are all allowed and change nothing, so there the trie walk covers only the others.
#[derive(Debug)]
pub struct TokenTrie {
    all: Trie,
    /// Tokens that are not plain string content.
    rest: Trie,
    plain: TokenMask,
    eos: Vec<u32>,
    vocab: usize,
    /// Bytes of every token (empty for tokens that are never allowed).
    bytes: Vec<Vec<u8>>,
}

fn is_plain(token: &[u8]) -> bool {
    std::str::from_utf8(token).is_ok()
        && !token.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

impl TokenTrie {
    /// Builds the trie of every ordinary token (control and unused tokens are never allowed, end-of-sequence
    /// tokens only when the document is complete).
    pub fn new(tokenizer: &Tokenizer) -> TokenTrie {
        let vocab = tokenizer.vocab_size();
        let mut bytes = Vec::with_capacity(vocab);
        for id in 0..vocab as u32 {
            let usable = matches!(
                tokenizer.token_kind(id),
                Some(TokenKind::Normal | TokenKind::Byte | TokenKind::UserDefined)
            ) && !tokenizer.is_eos(id);
            bytes.push(if usable {
                tokenizer.token_bytes(id).unwrap_or_default().to_vec()
            } else {
                Vec::new()
            });
        }
        TokenTrie::from_bytes(bytes, tokenizer.eos_ids().to_vec())
    }

    fn from_bytes(bytes: Vec<Vec<u8>>, eos: Vec<u32>) -> TokenTrie {
        let usable = || {
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| !b.is_empty())
                .map(|(id, b)| (id as u32, b.as_slice()))
        };
        let mut plain = TokenMask::new(bytes.len());
        for (id, _) in usable().filter(|(_, b)| is_plain(b)) {
            plain.set(id);
        }
        TokenTrie {
            all: Trie::build(usable()),
            rest: Trie::build(usable().filter(|(_, b)| !is_plain(b))),
            plain,
            eos,
            vocab: bytes.len(),
            bytes,
        }
    }

    /// Trie nodes (for sizing reports).
    pub fn nodes(&self) -> usize {
        self.all.edge_start.len() - 1
    }
}

/// Masks cached per constraint; cleared when full.
const CACHE_ENTRIES: usize = 512;

/// One request's constraint: the grammar, the output so far, and cached masks.
#[derive(Debug)]
pub struct Constraint {
    grammar: Arc<Grammar>,
    trie: Arc<TokenTrie>,
    state: State,
    cache: HashMap<(State, usize), Arc<TokenMask>>,
    /// Masks computed by walking the trie (cache misses), for measurement.
    pub walks: usize,
}

/// Per-walk context: the distance bound and the mask being filled.
struct Walk<'a> {
    grammar: &'a Grammar,
    trie: &'a Trie,
    /// Token ends must leave at most this many bytes to write (`usize::MAX`: unchecked).
    limit: usize,
    mask: TokenMask,
    pool: Vec<State>,
}

impl Walk<'_> {
    fn walk(&mut self, node: u32, state: &State, depth: usize) {
        if self.pool.len() <= depth {
            self.pool.push(state.clone());
        }
        let mut next = std::mem::replace(&mut self.pool[depth], State { stack: Vec::new(), ws: 0 });
        for &(b, child) in self.trie.edges(node) {
            next.clone_from(state);
            if !next.feed(self.grammar, b) {
                continue;
            }
            let ends = self.trie.ends(child);
            if !ends.is_empty()
                && (self.limit == usize::MAX || next.distance(self.grammar) <= self.limit)
            {
                for &t in ends {
                    self.mask.set(t);
                }
            }
            if !self.trie.edges(child).is_empty() {
                self.walk(child, &next, depth + 1);
            }
        }
        self.pool[depth] = next;
    }
}

impl Constraint {
    /// Starts a document.
    pub fn new(grammar: Arc<Grammar>, trie: Arc<TokenTrie>) -> Constraint {
        let state = State::new(&grammar);
        Constraint { grammar, trie, state, cache: HashMap::new(), walks: 0 }
    }

    /// The tokens that may come next, when at most `remaining` more tokens may be generated.
    pub fn allowed(&mut self, remaining: usize) -> Arc<TokenMask> {
        let distance = self.state.distance(&self.grammar);
        // Far from the budget, no token can bring the document close to it: the mask depends on the state only.
        let limit = if remaining > distance.saturating_add(self.grammar.slack) {
            usize::MAX
        } else {
            remaining.saturating_sub(1)
        };
        let key = (self.state.clone(), limit);
        if let Some(mask) = self.cache.get(&key) {
            return mask.clone();
        }
        let mut mask = self.walk(limit);
        if mask.count() == 0 && limit < distance {
            // The budget cannot be met: make as much progress as one token can.
            mask = self.walk(distance.saturating_sub(1));
        }
        let mask = Arc::new(mask);
        if self.cache.len() >= CACHE_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(key, mask.clone());
        mask
    }

    fn walk(&mut self, limit: usize) -> TokenMask {
        self.walks += 1;
        let in_plain_string = matches!(
            self.state.stack.last(),
            Some(Frame::Str { utf8: Utf8 { need: 0, .. }, esc: 0 })
                | Some(Frame::Key { cand: FREE_KEY, utf8: Utf8 { need: 0, .. }, esc: 0, .. })
        );
        let skip_plain =
            in_plain_string && (limit == usize::MAX || self.state.distance(&self.grammar) <= limit);
        let mut walk = Walk {
            grammar: &self.grammar,
            trie: if skip_plain { &self.trie.rest } else { &self.trie.all },
            limit,
            mask: if skip_plain {
                self.trie.plain.clone()
            } else {
                TokenMask::new(self.trie.vocab)
            },
            pool: Vec::new(),
        };
        if !self.state.stack.is_empty() {
            walk.walk(0, &self.state, 0);
        }
        let mut mask = walk.mask;
        if self.state.can_end(&self.grammar) {
            for &t in &self.trie.eos {
                mask.set(t);
            }
        }
        mask
    }

    /// Records the sampled token; false when it was not allowed (the state is then unchanged).
    pub fn accept(&mut self, token: u32) -> bool {
        if self.trie.eos.contains(&token) {
            return self.state.can_end(&self.grammar);
        }
        let Some(bytes) = self.trie.bytes.get(token as usize).filter(|b| !b.is_empty()) else {
            return false;
        };
        let mut next = self.state.clone();
        if bytes.iter().all(|&b| next.feed(&self.grammar, b)) {
            self.state = next;
            true
        } else {
            false
        }
    }

    /// Whether the document is complete and nothing may follow it (generation should end now).
    pub fn is_finished(&self) -> bool {
        self.state.stack.is_empty()
    }

    /// Whether the output so far is a complete document.
    pub fn is_complete(&self) -> bool {
        self.state.can_end(&self.grammar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(grammar: &Grammar, cases: &[(&str, bool)]) {
        for (input, want) in cases {
            assert_eq!(grammar.accepts(input.as_bytes()), *want, "{input:?}");
            if *want {
                // Every prefix of an accepted document is a valid prefix.
                for cut in 0..input.len() {
                    assert!(grammar.accepts_prefix(&input.as_bytes()[..cut]), "{input:?}[..{cut}]");
                }
            }
        }
    }

    #[test]
    fn any_json_value() {
        let g = Grammar::json_value();
        check(
            &g,
            &[
                ("0", true),
                ("-0", true),
                ("-12.5e+3", true),
                ("1E9", true),
                ("1e100", false),
                ("12345678901234567890", false),
                ("01", false),
                ("1.", false),
                ("-", false),
                (".5", false),
                ("true", true),
                ("tru", false),
                ("truex", false),
                ("null", true),
                ("\"a\\\"b\\u00e9\\n\"", true),
                ("\"\\x\"", false),
                ("\"\\u12g4\"", false),
                ("\"tab\there\"", false),
                ("\"naïve €𝄞\"", true),
                ("[]", true),
                ("[1, [2, {\"a\": null}], \"x\"]", true),
                ("[1,]", false),
                ("[,1]", false),
                ("{}", true),
                ("{\"a\":1,\"a\":2}", true),
                ("{\"a\" : [true , false] }", true),
                ("{\"a\":1,}", false),
                ("{a:1}", false),
                ("{\"a\"}", false),
                ("  {}", true),
                ("{} ", false),
                ("{}{}", false),
            ],
        );
    }

    #[test]
    fn invalid_utf8_is_refused_inside_strings() {
        let g = Grammar::json_value();
        for bad in
            [&b"\"\xC0\xAF\""[..], b"\"\xED\xA0\x80\"", b"\"\xF5\x80\x80\x80\"", b"\"\xE2\x82\""]
        {
            assert!(!g.accepts(bad), "{bad:?}");
        }
        assert!(g.accepts("\"\u{10FFFF}\"".as_bytes()));
    }

    #[test]
    fn json_object_needs_an_object_at_the_top() {
        let g = Grammar::json_object();
        check(&g, &[("{}", true), ("{\"x\": {\"y\": [1]}}", true), ("[]", false), ("1", false)]);
    }

    #[test]
    fn whitespace_runs_are_bounded() {
        let g = Grammar::json_object();
        let long = format!("{{{}}}", " ".repeat(usize::from(MAX_WS) + 1));
        let short = format!("{{{}}}", " ".repeat(usize::from(MAX_WS)));
        check(&g, &[(&short, true), (&long, false)]);
    }

    fn schema() -> Grammar {
        Grammar::from_schema(&json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "amount": {"type": "number"},
                "count": {"type": "integer"},
                "ok": {"type": "boolean"},
                "note": {"type": ["string", "null"]},
                "currency": {"enum": ["CNY", "USD", "HKD"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "payee": {
                    "type": "object",
                    "properties": {"bank": {"type": "string"}, "acct": {"type": "string"}},
                    "required": ["bank"]
                }
            },
            "required": ["name", "amount"]
        }))
        .unwrap()
    }

    #[test]
    fn schema_objects() {
        let g = schema();
        check(
            &g,
            &[
                (r#"{"name":"x","amount":1}"#, true),
                (r#"{"amount":1.5,"name":"x"}"#, true),
                (r#"{"name":"x"}"#, false),
                (r#"{"name":"x","amount":"1"}"#, false),
                (r#"{"name":"x","amount":1,"count":2}"#, true),
                (r#"{"name":"x","amount":1,"count":2.5}"#, false),
                (r#"{"name":"x","amount":1,"count":1e3}"#, false),
                (r#"{"name":"x","amount":1,"ok":true,"note":null}"#, true),
                (r#"{"name":"x","amount":1,"note":"n"}"#, true),
                (r#"{"name":"x","amount":1,"ok":null}"#, false),
                (r#"{"name":"x","amount":1,"currency":"USD"}"#, true),
                (r#"{"name":"x","amount":1,"currency":"EUR"}"#, false),
                (r#"{"name":"x","amount":1,"currency":"US"}"#, false),
                (r#"{"name":"x","amount":1,"tags":["a","b"]}"#, true),
                (r#"{"name":"x","amount":1,"tags":[1]}"#, false),
                (r#"{"name":"x","amount":1,"payee":{"bank":"b"}}"#, true),
                (r#"{"name":"x","amount":1,"payee":{"acct":"a"}}"#, false),
                (r#"{"name":"x","amount":1,"payee":{"bank":"b","iban":"c"}}"#, false),
                (r#"{"name":"x","amount":1,"extra":1}"#, false),
                (r#"{"name":"x","name":"y","amount":1}"#, false),
                (r#"{"nam":"x","amount":1}"#, false),
                (r#"{"names":"x","amount":1}"#, false),
                (r#"{ "name" : "x" , "amount" : 1 }"#, true),
            ],
        );
    }

    #[test]
    fn schema_enums_consts_any_of_and_additional_properties() {
        let g = Grammar::from_schema(&json!({"enum": [1, 12, "a", null, {"k": [true]}]})).unwrap();
        check(
            &g,
            &[
                ("1", true),
                ("12", true),
                ("123", false),
                ("\"a\"", true),
                ("null", true),
                ("{\"k\":[true]}", true),
                ("{}", false),
            ],
        );
        let g = Grammar::from_schema(&json!({"const": "fixed"})).unwrap();
        check(&g, &[("\"fixed\"", true), ("\"fixe\"", false)]);
        let g = Grammar::from_schema(&json!({"anyOf": [{"type": "string"}, {"type": "null"}]}))
            .unwrap();
        check(&g, &[("\"s\"", true), ("null", true), ("1", false)]);
        let g = Grammar::from_schema(&json!({
            "type": "object", "properties": {"a": {"type": "integer"}},
            "additionalProperties": {"type": "boolean"}, "required": ["a"]
        }))
        .unwrap();
        check(
            &g,
            &[
                (r#"{"a":1,"b":true}"#, true),
                (r#"{"ab":false,"a":1}"#, true),
                (r#"{"a":1,"b":2}"#, false),
                (r#"{"\u0061x":true,"a":1}"#, true),
            ],
        );
        let g =
            Grammar::from_schema(&json!({"type": "object", "additionalProperties": true})).unwrap();
        check(&g, &[(r#"{"any":{"thing":[1]}}"#, true)]);
    }

    #[test]
    fn schema_errors_name_the_keyword() {
        let check_err = |schema: Value, want: &str| {
            let err = Grammar::from_schema(&schema).unwrap_err().to_string();
            assert!(err.contains(want), "{schema}: {err}");
        };
        check_err(json!({"type": "string", "pattern": "^a"}), "`pattern` (at #)");
        check_err(
            json!({"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}),
            "`format` (at #/properties/a)",
        );
        check_err(json!({"$ref": "#/$defs/x"}), "`$ref`");
        check_err(json!({"type": "strin"}), "unknown type");
        check_err(json!({"anyOf": [{"type": "string"}, {"type": "string"}]}), "anyOf");
        check_err(
            json!({"type": "object", "properties": {}, "required": ["a"]}),
            "\"a\" is required",
        );
        check_err(json!(["string"]), "must be an object");
    }

    fn trie(tokens: &[&[u8]]) -> Arc<TokenTrie> {
        let mut bytes: Vec<Vec<u8>> = tokens.iter().map(|t| t.to_vec()).collect();
        bytes.push(Vec::new()); // the EOS token
        Arc::new(TokenTrie::from_bytes(bytes, vec![tokens.len() as u32]))
    }

    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"\"",
        b"\"name\"",
        b":",
        b"\"x",
        b"y\"",
        b",",
        b" ",
        b"1",
        b"12",
        b"true",
        b"{\"",
        b"name",
        b"amount",
        b"\":",
        b"\"}",
        b"a",
        b".",
        b"\n",
    ];

    fn allowed(c: &mut Constraint, remaining: usize) -> Vec<&'static str> {
        let mask = c.allowed(remaining);
        (0..=TOKENS.len() as u32)
            .filter(|&t| mask.contains(t))
            .map(|t| TOKENS.get(t as usize).map_or("<eos>", |b| std::str::from_utf8(b).unwrap()))
            .collect()
    }

    #[test]
    fn masks_follow_the_document() {
        let g = Arc::new(
            Grammar::from_schema(&json!({
                "type": "object", "properties": {"name": {"type": "string"}, "amount": {"type": "number"}},
                "required": ["name"]
            }))
            .unwrap(),
        );
        let mut c = Constraint::new(g, trie(TOKENS));
        assert_eq!(allowed(&mut c, 100), ["{", " ", "{\"", "\n"]);
        assert!(c.accept(12)); // {"
        assert_eq!(allowed(&mut c, 100), ["name", "amount", "a"]);
        assert!(!c.accept(10), "12 is no key");
        assert!(c.accept(13)); // name
        assert_eq!(allowed(&mut c, 100), ["\"", "\":"]);
        assert!(c.accept(15));
        assert!(c.accept(5)); // "x
        assert!(!c.is_complete());
        assert!(c.accept(6)); // y"
        assert_eq!(allowed(&mut c, 100), ["}", ",", " ", "\n"]);
        assert!(!c.accept(TOKENS.len() as u32), "EOS before the end");
        assert!(c.accept(1));
        assert!(c.is_finished());
        assert_eq!(allowed(&mut c, 100), ["<eos>"]);
    }

    #[test]
    fn a_small_budget_closes_the_document() {
        let g = Arc::new(
            Grammar::from_schema(&json!({
                "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]
            }))
            .unwrap(),
        );
        let mut c = Constraint::new(g, trie(TOKENS));
        // `{"name":"` + `"}`: within budget 4 only the shortest route survives.
        for t in [12u32, 13, 15, 5] {
            assert!(c.accept(t));
        }
        // Inside the string with 1 token left: only tokens that close everything.
        assert_eq!(allowed(&mut c, 1), ["\"}"]);
        // With room, string content is fine.
        assert!(allowed(&mut c, 1000).contains(&"a"));
    }

    /// Random walks with random budgets: the mask never lets the document break, and with the budget it ends
    /// complete.
    #[test]
    fn random_walks_end_complete_within_budget() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let g = Arc::new(schema());
        let mut tokens: Vec<Vec<u8>> =
            (0u8..=127).filter(|b| *b != b'\r').map(|b| vec![b]).collect();
        for word in [
            "{\"", "\":", "\",\"", "name", "amount", "count", "payee", "bank", "null", "true",
            "\"}", "}}", "é", "€",
        ] {
            tokens.push(word.as_bytes().to_vec());
        }
        let eos = tokens.len() as u32;
        tokens.push(Vec::new());
        let trie = Arc::new(TokenTrie::from_bytes(tokens.clone(), vec![eos]));
        for seed in 0..40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let budget = rng.random_range(30..200);
            let mut c = Constraint::new(g.clone(), trie.clone());
            let mut out = Vec::new();
            for step in 0..budget {
                let mask = c.allowed(budget - step);
                let choices: Vec<u32> = (0..=eos).filter(|&t| mask.contains(t)).collect();
                assert!(!choices.is_empty(), "seed {seed}: nothing allowed after {out:?}");
                let t = choices[rng.random_range(0..choices.len())];
                assert!(c.accept(t));
                if t == eos {
                    break;
                }
                out.extend_from_slice(&tokens[t as usize]);
                if c.is_finished() {
                    break;
                }
            }
            let text = String::from_utf8(out).unwrap();
            assert!(c.is_complete(), "seed {seed} budget {budget}: {text}");
            let value: Value = serde_json::from_str(&text).unwrap();
            assert!(value["name"].is_string() && value["amount"].is_number(), "{text}");
        }
    }

    /// Per-token mask cost with a real 151k-token vocabulary (Qwen2), on random walks through a schema:
    /// `cargo test -p engine --release --lib constrain::tests::mask_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement; needs the shared vocabularies"]
    fn mask_cost() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/vocab/ggml-vocab-qwen2.gguf");
        if !path.exists() {
            println!("skipped: {} is absent", path.display());
            return;
        }
        let mut file = std::fs::File::open(&path).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        let tokenizer = Tokenizer::from_gguf(&content).unwrap();
        let start = std::time::Instant::now();
        let trie = Arc::new(TokenTrie::new(&tokenizer));
        println!(
            "trie: {} tokens, {} nodes, built in {:.1} ms",
            tokenizer.vocab_size(),
            trie.nodes(),
            start.elapsed().as_secs_f64() * 1e3
        );
        for (name, grammar) in [("json_object", Grammar::json_object()), ("schema", schema())] {
            let grammar = Arc::new(grammar);
            let (mut total, mut steps, mut walks, mut worst) = (0.0f64, 0usize, 0usize, 0.0f64);
            for seed in 0..5 {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut c = Constraint::new(grammar.clone(), trie.clone());
                let budget = 1000;
                for step in 0..budget {
                    let t0 = std::time::Instant::now();
                    let mask = c.allowed(budget - step);
                    let took = t0.elapsed().as_secs_f64() * 1e3;
                    total += took;
                    worst = worst.max(took);
                    steps += 1;
                    let choices: Vec<u32> =
                        (0..trie.vocab as u32).filter(|&t| mask.contains(t)).collect();
                    let t = choices[rng.random_range(0..choices.len())];
                    assert!(c.accept(t));
                    if c.is_finished() || tokenizer.is_eos(t) {
                        break;
                    }
                }
                assert!(c.is_complete(), "{name} seed {seed}");
                walks += c.walks;
            }
            println!(
                "{name}: {steps} steps, {walks} trie walks, mean {:.3} ms/token, worst {:.2} ms",
                total / steps as f64,
                worst
            );
        }
    }
}
