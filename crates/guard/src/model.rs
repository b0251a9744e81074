//! The learned layer: a "wide and deep" multi-label model over hashed character and word n-grams of
//! normalised text. Every head (risk, unsafe, each category, intent and technique) adds two logits:
//! a linear one (one weight per n-gram, the wide part) and one from a hidden layer of ReLU units fed
//! by per-n-gram embeddings (the deep part, which learns combinations such as "how can I" + "safely"
//! that no single n-gram carries). Platt calibration per head. The linear weights and the embeddings
//! are stored as int8 (one scale per head or hidden unit) so the committed file stays small.
//!
//! File layout: `FLGUARD4` (version 2 added the length-bucket feature; version 3 made the `unsafe` head
//! conditional, P(unsafe | risky); version 4 added the hidden layer), a little-endian u32 header
//! length, a JSON [`Header`], then (zlib-deflated when the header says `"compression": "deflate"`)
//! `dim × heads` int8 linear weights and `dim × hidden` int8 embeddings, both feature-major so scoring
//! one feature touches two contiguous rows, then little-endian f32s: the embedding scales and hidden
//! biases (`hidden` each) and the output weights (`heads × hidden`, head-major).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::GuardError;

/// Magic bytes that open a model file.
const MAGIC: &[u8; 8] = b"FLGUARD4";

/// Number of hashed feature buckets.
pub const DIM: usize = 1 << 17;

/// Head names that are always present, before the taxonomy's labels.
pub const HEAD_RISK: &str = "risk";
/// The "must be refused or rewritten" head: trained on risky texts only, so it scores P(unsafe | risky)
/// and spends its weights on the line between a question to answer with care and a request to refuse.
pub const HEAD_UNSAFE: &str = "unsafe";

/// Model metadata stored as JSON in front of the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Number of feature buckets.
    pub dim: usize,
    /// Head names: `risk`, `unsafe`, then `cat:POL`…, `intent:…`, `tech:…`.
    pub heads: Vec<String>,
    /// Per-head dequantisation scale.
    pub scales: Vec<f32>,
    /// Per-head bias (in logit space, before calibration).
    pub bias: Vec<f32>,
    /// Per-head Platt calibration `sigmoid(a * logit + b)`.
    pub platt: Vec<(f32, f32)>,
    /// Hidden units of the deep part (0: a purely linear model).
    #[serde(default)]
    pub hidden: usize,
    /// How the weights after the header are stored: `deflate` (zlib stream) or absent (raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// What the model was trained on (files, counts, splits, settings).
    pub manifest: serde_json::Value,
}

/// The deep part of a loaded model.
#[derive(Debug, Clone)]
struct Deep {
    /// `dim × hidden` quantised embeddings, feature-major.
    embed: Vec<i8>,
    /// Per-hidden-unit dequantisation scale of the embeddings.
    embed_scales: Vec<f32>,
    /// Per-hidden-unit bias.
    hidden_bias: Vec<f32>,
    /// `heads × hidden` output weights, head-major.
    out: Vec<f32>,
}

/// A loaded model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Metadata.
    pub header: Header,
    /// `dim × heads` quantised weights.
    weights: Vec<i8>,
    /// The hidden layer (`header.hidden` units).
    deep: Deep,
}

/// Float weights during training, before quantisation.
#[derive(Debug, Clone)]
pub struct FloatModel {
    /// Head names.
    pub heads: Vec<String>,
    /// `DIM × heads` linear weights.
    pub weights: Vec<f32>,
    /// Per-head bias.
    pub bias: Vec<f32>,
    /// Hidden units.
    pub hidden: usize,
    /// `DIM × hidden` embeddings.
    pub embed: Vec<f32>,
    /// Per-hidden-unit bias.
    pub hidden_bias: Vec<f32>,
    /// `heads × hidden` output weights.
    pub out: Vec<f32>,
}

/// One forward pass of a [`FloatModel`], kept for the backward pass.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Logits of every head.
    pub logits: Vec<f32>,
    /// Hidden pre-activations (the ReLU's input).
    pub pre: Vec<f32>,
}

impl FloatModel {
    /// A model with zero linear weights and small random embeddings and output weights (seeded, so
    /// training is deterministic).
    pub fn new(heads: Vec<String>, hidden: usize, seed: u64) -> Self {
        let n = heads.len();
        let mut state = seed | 1;
        let mut uniform = |scale: f32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * scale
        };
        let embed = (0..DIM * hidden).map(|_| uniform(0.5)).collect();
        let out_scale = 1.0 / (hidden.max(1) as f32).sqrt();
        let out = (0..n * hidden).map(|_| uniform(out_scale)).collect();
        FloatModel {
            heads,
            weights: vec![0.0; DIM * n],
            bias: vec![0.0; n],
            hidden,
            embed,
            hidden_bias: vec![0.0; hidden],
            out,
        }
    }

    /// Logits of every head and the hidden pre-activations for a feature vector.
    pub fn forward(&self, features: &[(u32, f32)]) -> Forward {
        let (n, d) = (self.heads.len(), self.hidden);
        let mut logits = self.bias.clone();
        let mut pre = self.hidden_bias.clone();
        for &(f, v) in features {
            let row = &self.weights[f as usize * n..(f as usize + 1) * n];
            for (o, w) in logits.iter_mut().zip(row) {
                *o += w * v;
            }
            let row = &self.embed[f as usize * d..(f as usize + 1) * d];
            for (o, w) in pre.iter_mut().zip(row) {
                *o += w * v;
            }
        }
        add_deep(&mut logits, &pre, &self.out);
        Forward { logits, pre }
    }

    /// Quantises to int8 with one scale per head (linear weights) and per hidden unit (embeddings).
    pub fn quantise(&self, platt: Vec<(f32, f32)>, manifest: serde_json::Value) -> Model {
        let (weights, scales) = quantise_columns(&self.weights, self.heads.len());
        let (embed, embed_scales) = quantise_columns(&self.embed, self.hidden);
        Model {
            header: Header {
                dim: DIM,
                heads: self.heads.clone(),
                scales,
                bias: self.bias.clone(),
                platt,
                hidden: self.hidden,
                compression: None,
                manifest,
            },
            weights,
            deep: Deep {
                embed,
                embed_scales,
                hidden_bias: self.hidden_bias.clone(),
                out: self.out.clone(),
            },
        }
    }
}

/// Adds the output layer's contribution, `out · relu(pre)`, to each head's logit.
fn add_deep(logits: &mut [f32], pre: &[f32], out: &[f32]) {
    let d = pre.len();
    if d == 0 {
        return;
    }
    for (z, row) in logits.iter_mut().zip(out.chunks_exact(d)) {
        *z += row.iter().zip(pre).map(|(w, p)| w * p.max(0.0)).sum::<f32>();
    }
}

/// Int8 quantisation of a row-major `rows × columns` matrix with one scale per column.
fn quantise_columns(values: &[f32], columns: usize) -> (Vec<i8>, Vec<f32>) {
    if columns == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut scales = vec![0.0f32; columns];
    for row in values.chunks_exact(columns) {
        for (s, w) in scales.iter_mut().zip(row) {
            *s = s.max(w.abs());
        }
    }
    for s in &mut scales {
        *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
    }
    let quantised = values
        .chunks_exact(columns)
        .flat_map(|row| {
            row.iter().zip(&scales).map(|(w, s)| (w / s).round().clamp(-127.0, 127.0) as i8)
        })
        .collect();
    (quantised, scales)
}

/// Reads `count` little-endian f32s off the front of `bytes`.
fn take_f32s(bytes: &[u8], count: usize) -> Result<(Vec<f32>, &[u8]), String> {
    let (head, rest) = bytes.split_at_checked(count * 4).ok_or("truncated weights")?;
    let values =
        head.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((values, rest))
}

/// Integer sums of weight rows (linear heads and hidden units) for n-grams that share one value.
struct Run {
    linear: Vec<i32>,
    hidden: Vec<i32>,
}

/// Value-weighted float sums of [`Run`]s: the pre-scale linear logits and hidden pre-activations.
struct Sums {
    linear: Vec<f32>,
    hidden: Vec<f32>,
}

impl Run {
    fn new(model: &Model) -> Self {
        Run { linear: vec![0; model.header.heads.len()], hidden: vec![0; model.header.hidden] }
    }

    /// Adds one feature's rows; unknown features (outside the table) add nothing.
    fn add(&mut self, model: &Model, feature: u32) {
        if let Some(row) = model.row(feature) {
            add_row(&mut self.linear, row);
        }
        let d = model.header.hidden;
        let start = feature as usize * d;
        if let Some(row) = model.deep.embed.get(start..start + d) {
            add_row(&mut self.hidden, row);
        }
    }

    /// Adds the run times `value` into `sums` and clears it.
    fn flush(&mut self, sums: &mut Sums, value: f32) {
        flush(&mut sums.linear, &mut self.linear, value);
        flush(&mut sums.hidden, &mut self.hidden, value);
    }
}

impl Sums {
    fn new(model: &Model) -> Self {
        Sums { linear: vec![0.0; model.header.heads.len()], hidden: vec![0.0; model.header.hidden] }
    }
}

impl Model {
    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Self, GuardError> {
        let bytes = std::fs::read(path).map_err(|e| GuardError::io(path, e))?;
        Self::from_bytes(&bytes)
            .map_err(|message| GuardError::Model { path: path.to_owned(), message })
    }

    /// Parses model bytes; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if [b"FLGUARD1", b"FLGUARD2", b"FLGUARD3"]
            .iter()
            .any(|old| bytes.starts_with(old.as_slice()))
        {
            return Err(
                "an older model (features or heads changed since): retrain with `finllm guard train`"
                    .into(),
            );
        }
        let rest =
            bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a finllm guard model (bad magic)")?;
        let (len, rest) = rest.split_at_checked(4).ok_or("truncated header")?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (json, rest) = rest.split_at_checked(len).ok_or("truncated header")?;
        let header: Header =
            serde_json::from_slice(json).map_err(|e| format!("bad header: {e}"))?;
        let (n, d) = (header.heads.len(), header.hidden);
        if header.dim != DIM {
            return Err(format!(
                "built for {} feature buckets where this finllm hashes into {DIM}: retrain with `finllm guard train`",
                header.dim
            ));
        }
        if header.scales.len() != n || header.bias.len() != n || header.platt.len() != n || d > 4096
        {
            return Err(format!("inconsistent sizes (dim {}, {n} heads, {d} hidden)", header.dim));
        }
        let inflated;
        let rest = match header.compression.as_deref() {
            None => rest,
            Some("deflate") => {
                let expected = DIM * (n + d) + 4 * (2 * d + n * d);
                inflated = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(rest, expected)
                    .map_err(|e| format!("truncated or corrupt weights ({:?})", e.status))?;
                inflated.as_slice()
            }
            Some(other) => return Err(format!("unknown weight compression `{other}`")),
        };
        let (weights, rest) = rest.split_at_checked(DIM * n).ok_or("truncated weights")?;
        let (embed, rest) = rest.split_at_checked(DIM * d).ok_or("truncated weights")?;
        let (embed_scales, rest) = take_f32s(rest, d)?;
        let (hidden_bias, rest) = take_f32s(rest, d)?;
        let (out, rest) = take_f32s(rest, n * d)?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the weights", rest.len()));
        }
        let bytes_to_i8 = |b: &[u8]| b.iter().map(|x| *x as i8).collect::<Vec<i8>>();
        Ok(Model {
            weights: bytes_to_i8(weights),
            deep: Deep { embed: bytes_to_i8(embed), embed_scales, hidden_bias, out },
            header,
        })
    }

    /// Writes the model file.
    pub fn save(&self, path: &Path) -> Result<(), GuardError> {
        // The weights are deflated: int8 weights of hashed features compress to about two thirds, which
        // keeps the committed model small.
        let header = Header { compression: Some("deflate".into()), ..self.header.clone() };
        let json = serde_json::to_vec(&header)
            .map_err(|e| GuardError::Model { path: path.to_owned(), message: e.to_string() })?;
        let deep = &self.deep;
        let mut payload = Vec::with_capacity(self.weights.len() + deep.embed.len());
        payload.extend(self.weights.iter().map(|w| *w as u8));
        payload.extend(deep.embed.iter().map(|w| *w as u8));
        for v in deep.embed_scales.iter().chain(&deep.hidden_bias).chain(&deep.out) {
            payload.extend_from_slice(&v.to_le_bytes());
        }
        let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + json.len() + payload.len() / 2);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        bytes.extend(miniz_oxide::deflate::compress_to_vec_zlib(&payload, 9));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| GuardError::io(dir, e))?;
        }
        std::fs::write(path, bytes).map_err(|e| GuardError::io(path, e))
    }

    /// Index of a head by name.
    pub fn head(&self, name: &str) -> Option<usize> {
        self.header.heads.iter().position(|h| h == name)
    }

    /// Raw logits of every head. Features come in runs of equal value (all n-grams share one value,
    /// the length bucket has its own), so each run is summed in integers and scaled once.
    pub fn logits(&self, features: &[(u32, f32)]) -> Vec<f32> {
        let mut sums = Sums::new(self);
        let mut run = Run::new(self);
        let mut value = None;
        for &(f, v) in features {
            if value != Some(v) {
                if let Some(previous) = value {
                    run.flush(&mut sums, previous);
                }
                value = Some(v);
            }
            run.add(self, f);
        }
        if let Some(previous) = value {
            run.flush(&mut sums, previous);
        }
        self.head_logits(&sums)
    }

    /// Logits from value-weighted sums: the linear part scaled per head plus the hidden layer's.
    fn head_logits(&self, sums: &Sums) -> Vec<f32> {
        let mut logits: Vec<f32> = sums
            .linear
            .iter()
            .zip(&self.header.scales)
            .zip(&self.header.bias)
            .map(|((a, s), b)| a * s + b)
            .collect();
        let deep = &self.deep;
        let pre: Vec<f32> = sums
            .hidden
            .iter()
            .zip(&deep.embed_scales)
            .zip(&deep.hidden_bias)
            .map(|((a, s), b)| a * s + b)
            .collect();
        add_deep(&mut logits, &pre, &deep.out);
        logits
    }

    /// The element-wise maximum of the calibrated probabilities of a long text's windows and of the
    /// whole text, the way [`crate::Guard`] scores a long text. The whole text's n-grams are taken as
    /// the union of its windows' (it misses only the few n-grams across a window edge), so each
    /// weight row is read once, for the window, and added to the whole text's sum at the same time;
    /// `whole_length` is the whole text's length-bucket feature ([`length_feature`]).
    pub fn max_probabilities(&self, windows: &[Vec<(u32, f32)>], whole_length: u32) -> Vec<f32> {
        let mut seen = vec![0u64; self.header.dim.div_ceil(64)];
        let mut whole_run = Run::new(self);
        let mut whole_count = 0usize;
        let mut best = vec![0.0f32; self.header.heads.len()];
        for window in windows {
            let Some((&(length, _), grams)) = window.split_last() else { continue };
            let mut run = Run::new(self);
            for &(f, _) in grams {
                run.add(self, f);
                let (word, bit) = (f as usize / 64, 1u64 << (f % 64));
                if let Some(w) = seen.get_mut(word)
                    && *w & bit == 0
                {
                    *w |= bit;
                    whole_count += 1;
                    whole_run.add(self, f);
                }
            }
            let value = grams.first().map_or(0.0, |g| g.1);
            merge_max(&mut best, &self.finish(&mut run, value, length));
        }
        let value = 1.0 / (whole_count.max(1) as f32).sqrt();
        merge_max(&mut best, &self.finish(&mut whole_run, value, whole_length));
        best
    }

    /// The linear weight row of a feature.
    fn row(&self, feature: u32) -> Option<&[i8]> {
        let n = self.header.heads.len();
        let start = feature as usize * n;
        self.weights.get(start..start + n)
    }

    /// Calibrated probabilities from a run of n-gram rows (all at `value`) and the length-bucket
    /// feature (at 1).
    fn finish(&self, run: &mut Run, value: f32, length: u32) -> Vec<f32> {
        let mut sums = Sums::new(self);
        run.flush(&mut sums, value);
        run.add(self, length);
        run.flush(&mut sums, 1.0);
        self.calibrate(&self.head_logits(&sums))
    }

    /// Platt-calibrated probabilities of logits.
    fn calibrate(&self, logits: &[f32]) -> Vec<f32> {
        logits.iter().zip(&self.header.platt).map(|(z, (a, b))| sigmoid(a * z + b)).collect()
    }

    /// Calibrated probabilities of every head.
    pub fn probabilities(&self, features: &[(u32, f32)]) -> Vec<f32> {
        self.calibrate(&self.logits(features))
    }
}

fn add_row(run: &mut [i32], row: &[i8]) {
    for (a, w) in run.iter_mut().zip(row) {
        *a += i32::from(*w);
    }
}

fn merge_max(into: &mut [f32], other: &[f32]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a = a.max(*b);
    }
}

/// Adds an integer run sum times its feature value to the float accumulator and clears the run.
fn flush(acc: &mut [f32], run: &mut [i32], value: f32) {
    for (a, r) in acc.iter_mut().zip(run.iter_mut()) {
        *a += *r as f32 * value;
        *r = 0;
    }
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Hashed features of normalised text: CJK character 1–3-grams, ASCII word 1–2-grams and character
/// 3-grams inside words, plus any extra tokens (lexicon hits); values are 1/sqrt(count) so long texts
/// do not saturate. One length-bucket feature (value 1) lets each head learn how much a short text says.
/// Hashing is allocation-free per n-gram and duplicates are dropped with a bitset (no sort), since this
/// runs on every window of every checked text.
pub fn features(normalised: &str, extra: &[String], frame: (bool, bool)) -> Vec<(u32, f32)> {
    let mut seen = vec![0u64; DIM / 64];
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(normalised.len() * 2);
    let mut add = |id: u32| {
        let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
        if let Some(w) = seen.get_mut(word)
            && *w & bit == 0
        {
            *w |= bit;
            out.push((id, 1.0));
        }
    };
    // Words and CJK n-grams are also hashed in conjunction with the text's question frame (a request, or
    // a legal, protective or explanatory question; see `frames`), so each n-gram can weigh differently
    // in "教我洗钱" and "洗钱判几年": a linear model cannot form that product itself.
    let frame_salt = match frame {
        (_, true) => Some(0x40u8),
        (true, false) => Some(0x80u8),
        (false, false) => None,
    };
    let mut gram = |kind: u8, parts: &[&[u8]], in_frame: bool| {
        add(hash_parts(kind, parts));
        if let Some(salt) = frame_salt.filter(|_| in_frame) {
            add(hash_parts(kind ^ salt, parts));
        }
    };
    let chars: Vec<(usize, char)> = normalised.char_indices().collect();
    let mut previous_word: Option<&str> = None;
    let mut i = 0;
    while i < chars.len() {
        let (byte, c) = chars[i];
        if c.is_ascii_alphanumeric() {
            let start = byte;
            while i < chars.len() && chars[i].1.is_ascii_alphanumeric() {
                i += 1;
            }
            let end = chars.get(i).map_or(normalised.len(), |(b, _)| *b);
            let word = &normalised[start..end];
            gram(b'w', &[word.as_bytes()], true);
            // Character 3-grams of `<word>` (ASCII, so bytes are characters).
            let wb = word.as_bytes();
            let at = |k: usize| -> u8 {
                if k == 0 {
                    b'<'
                } else if k == wb.len() + 1 {
                    b'>'
                } else {
                    wb[k - 1]
                }
            };
            for k in 0..wb.len() {
                gram(b't', &[&[at(k), at(k + 1), at(k + 2)]], false);
            }
            if let Some(prev) = previous_word {
                gram(b'b', &[prev.as_bytes(), b" ", wb], true);
            }
            previous_word = Some(word);
            continue;
        }
        if !c.is_whitespace() {
            let mut buf = [0u8; 12];
            let mut len = 0;
            for (n, k) in (i..chars.len().min(i + 3)).enumerate() {
                let ck = chars[k].1;
                if ck.is_whitespace() || ck.is_ascii_alphanumeric() {
                    break;
                }
                len += ck.encode_utf8(&mut buf[len..]).len();
                gram(b'1' + n as u8, &[&buf[..len]], true);
            }
        }
        i += 1;
    }
    for token in extra {
        add(hash(b'x', token.as_bytes()));
    }
    let norm = 1.0 / (out.len() as f32).sqrt();
    for (_, v) in &mut out {
        *v = norm;
    }
    // The length bucket at full weight, outside the normalisation: a greeting has few n-grams, and
    // without this the few it has (and the bias) speak far louder than in a long text.
    out.push((length_feature(normalised), 1.0));
    out
}

/// The length-bucket feature of a text (the last feature [`features`] returns, at value 1).
pub fn length_feature(normalised: &str) -> u32 {
    hash(b'0', &[length_bucket(evidence_units(normalised))])
}

/// How much text there is to judge: CJK (and other non-ASCII) characters count one each, ASCII words
/// two each (a word carries about as much as two Chinese characters). "hello" is 2, "你好" is 2,
/// "how to make a bomb" is 10.
pub fn evidence_units(normalised: &str) -> usize {
    let mut units = 0;
    let mut in_word = false;
    for c in normalised.chars() {
        if c.is_ascii_alphanumeric() {
            if !in_word {
                units += 2;
            }
            in_word = true;
        } else {
            in_word = false;
            // The CJK test first: `is_alphanumeric` takes a slow table walk for ideographs.
            if !c.is_ascii() && (text::normalize::is_cjk(c) || c.is_alphanumeric()) {
                units += 1;
            }
        }
    }
    units
}

/// Logarithmic length buckets: 0–2, 3–4, 5–8, 9–16, 17–32, 33–64, 65–128, more.
fn length_bucket(units: usize) -> u8 {
    match units {
        0..=2 => 0,
        3..=4 => 1,
        5..=8 => 2,
        9..=16 => 3,
        17..=32 => 4,
        33..=64 => 5,
        65..=128 => 6,
        _ => 7,
    }
}

/// FNV-1a, salted by the feature kind, reduced to a bucket.
fn hash(kind: u8, bytes: &[u8]) -> u32 {
    hash_parts(kind, &[bytes])
}

/// [`hash`] of the concatenation of `parts`, without building it.
fn hash_parts(kind: u8, parts: &[&[u8]]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(kind);
    h = h.wrapping_mul(0x0000_0100_0000_01b3);
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % DIM as u64) as u32
}

/// A stable 64-bit hash of text, used for deterministic data splits.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
