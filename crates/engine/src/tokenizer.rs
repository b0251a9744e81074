//! Tokenizers: Hugging Face `tokenizer.json` and the vocabulary embedded in GGUF metadata.
//!
//! A model is only as good as the ids it is fed, so the GGUF path reproduces llama.cpp's tokenizers exactly
//! (byte-level BPE with the `gpt-2`, `llama-bpe`, `qwen2` and `deepseek-llm` pre-tokenizers, and SentencePiece
//! `llama` vocabularies merged by score with byte fallback), checked against llama.cpp's own test cases. The
//! Hugging Face path delegates encoding to the `tokenizers` crate. Both share one decoding model: every token
//! stands for a fixed byte string, so decoding is concatenation and streaming never splits a UTF-8 character.

mod bpe;
mod pretokenize;
mod spm;

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::Value as Json;
use types::{Code, ErrorCode};

use self::bpe::BpeMerges;
use self::pretokenize::{PreTokenizer, PreTokenizerKind};

/// Token texts that end generation wherever they occur in a vocabulary (llama.cpp's list plus Ling's turn end).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "<|role_end|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

/// Why a tokenizer could not be loaded or could not process its input.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A tokenizer file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A GGUF key the tokenizer needs is absent.
    #[error("GGUF metadata has no `{0}`: the file carries no usable tokenizer")]
    MissingKey(String),
    /// A GGUF key or JSON field has the wrong type or an impossible value.
    #[error("invalid tokenizer data: {0}")]
    Invalid(String),
    /// The tokenizer kind exists but is not implemented here.
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    /// The Hugging Face `tokenizers` library rejected the file or the input.
    #[error("{context}: {detail}")]
    Hf {
        /// What was being done (which file, or "encode"/"decode").
        context: String,
        /// The library's message.
        detail: String,
    },
    /// A token id outside the vocabulary was given to decode.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    UnknownId {
        /// The offending id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// Special tokens were requested but the model defines no BOS token.
    #[error("the tokenizer wants a BOS token but defines none")]
    MissingBos,
}

impl ErrorCode for TokenizerError {
    fn error_code(&self) -> Code {
        match self {
            TokenizerError::Io { .. } => Code::ModelUnavailable,
            TokenizerError::MissingKey(_)
            | TokenizerError::Invalid(_)
            | TokenizerError::Unsupported(_)
            | TokenizerError::Hf { .. }
            | TokenizerError::MissingBos => Code::UnsupportedFormat,
            TokenizerError::UnknownId { .. } => Code::InvalidParameter,
        }
    }
}

/// The role of a token in the vocabulary (GGUF `tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Ordinary text.
    Normal,
    /// The unknown token.
    Unknown,
    /// A control token such as BOS, EOS or `<|im_start|>`: never produced from plain text by the model's own
    /// tokenizer, recognised in text only when special tokens are parsed.
    Control,
    /// A token added by the model's authors that is always matched as a whole in text.
    UserDefined,
    /// A reserved, unused slot.
    Unused,
    /// A raw byte token such as `<0xE4>`.
    Byte,
}

impl TokenKind {
    fn from_gguf(code: i64) -> Self {
        match code {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }

    /// Whether the token is special (control or unknown): hidden by `decode_skip_special`.
    pub fn is_special(self) -> bool {
        matches!(self, Self::Control | Self::Unknown)
    }
}

/// How a GGUF vocabulary turns text into ids.
#[derive(Debug)]
enum GgufAlgorithm {
    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
    Bpe { merges: BpeMerges, pre: PreTokenizer, ignore_merges: bool, byte_chars: Box<[char; 256]> },
    /// SentencePiece merged by score (`tokenizer.ggml.model = "llama"`).
    Spm { scores: Vec<f32>, add_space_prefix: bool },
}

#[derive(Debug)]
enum Backend {
    Gguf {
        algorithm: GgufAlgorithm,
        /// Control, user-defined and unknown tokens, longest text first: the order llama.cpp matches them in.
        special_by_length: Vec<u32>,
        unk: Option<u32>,
        add_eos: bool,
    },
    Hf {
        inner: Box<tokenizers::Tokenizer>,
        /// A copy that treats special-token text as plain text, made on first use.
        literal: OnceLock<Box<tokenizers::Tokenizer>>,
        /// Whether `inner`'s post-processor itself prepends BOS.
        post_processor_adds_bos: bool,
    },
}

/// A loaded tokenizer: encodes text to ids and decodes ids to text.
#[derive(Debug)]
pub struct Tokenizer {
    backend: Backend,
    tokens: Vec<String>,
    token_to_id: HashMap<String, u32>,
    kinds: Vec<TokenKind>,
    /// The bytes each token stands for when decoded.
    pieces: Vec<Vec<u8>>,
    /// SentencePiece vocabularies prefix text with a space; decoding removes it again from the first token.
    strip_first_space: bool,
    bos: Option<u32>,
    add_bos: bool,
    eos: Option<u32>,
    eos_ids: Vec<u32>,
}

impl Tokenizer {
    /// Builds the tokenizer embedded in a GGUF file's metadata.
    pub fn from_gguf(content: &Content) -> Result<Tokenizer, TokenizerError> {
        let meta = &content.metadata;
        let model = gguf_string(meta, "tokenizer.ggml.model")?
            .ok_or_else(|| missing("tokenizer.ggml.model"))?;
        let tokens = gguf_strings(meta, "tokenizer.ggml.tokens")?
            .ok_or_else(|| missing("tokenizer.ggml.tokens"))?;
        if tokens.is_empty() {
            return Err(TokenizerError::Invalid("tokenizer.ggml.tokens is empty".into()));
        }
        let n = tokens.len();
        let kinds = match gguf_array(meta, "tokenizer.ggml.token_type")? {
            Some(values) => {
                check_len("tokenizer.ggml.token_type", values.len(), n)?;
                values
                    .iter()
                    .map(|v| gguf_int(v).map(TokenKind::from_gguf))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => vec![TokenKind::Normal; n],
        };
        let mut token_to_id = HashMap::with_capacity(n);
        for (id, text) in tokens.iter().enumerate() {
            token_to_id.insert(text.clone(), id as u32);
        }
        let pre_name = gguf_string(meta, "tokenizer.ggml.pre")?.unwrap_or_default();

        let (algorithm, mut add_bos, default_bos) = match model.as_str() {
            "gpt2" => {
                let pre_kind = PreTokenizerKind::from_gguf_name(&pre_name).ok_or_else(|| {
                    TokenizerError::Unsupported(format!(
                        "byte-level BPE pre-tokenizer `{pre_name}` (supported: gpt-2, llama-bpe, qwen2, deepseek-llm)"
                    ))
                })?;
                let merges = gguf_strings(meta, "tokenizer.ggml.merges")?
                    .ok_or_else(|| missing("tokenizer.ggml.merges"))?;
                let merges = BpeMerges::new(merges.iter().map(String::as_str));
                let llama3 = pre_kind == PreTokenizerKind::Llama3;
                let algorithm = GgufAlgorithm::Bpe {
                    merges,
                    pre: PreTokenizer::new(pre_kind)?,
                    ignore_merges: llama3,
                    byte_chars: Box::new(bpe::byte_to_char_table()),
                };
                (algorithm, llama3, None)
            }
            "llama" => {
                let scores = match gguf_array(meta, "tokenizer.ggml.scores")? {
                    Some(values) => {
                        check_len("tokenizer.ggml.scores", values.len(), n)?;
                        values.iter().map(gguf_float).collect::<Result<Vec<_>, _>>()?
                    }
                    None => vec![0.0; n],
                };
                let add_space_prefix =
                    gguf_bool(meta, "tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
                (GgufAlgorithm::Spm { scores, add_space_prefix }, true, Some(1))
            }
            other => {
                return Err(TokenizerError::Unsupported(format!(
                    "GGUF tokenizer model `{other}` (supported: gpt2, llama)"
                )));
            }
        };
        let valid = |id: Option<u32>| id.filter(|&id| (id as usize) < n);
        let bos = valid(gguf_u32(meta, "tokenizer.ggml.bos_token_id")?.or(default_bos));
        let eos = valid(gguf_u32(meta, "tokenizer.ggml.eos_token_id")?);
        let unk = valid(gguf_u32(meta, "tokenizer.ggml.unknown_token_id")?)
            .or_else(|| kinds.iter().position(|k| *k == TokenKind::Unknown).map(|i| i as u32));
        if let Some(flag) = gguf_bool(meta, "tokenizer.ggml.add_bos_token")? {
            add_bos = flag;
        }
        let add_bos = add_bos && bos.is_some();
        let add_eos =
            gguf_bool(meta, "tokenizer.ggml.add_eos_token")?.unwrap_or(false) && eos.is_some();

        let mut eos_ids: Vec<u32> = [
            eos,
            gguf_u32(meta, "tokenizer.ggml.eot_token_id")?,
            gguf_u32(meta, "tokenizer.ggml.eom_token_id")?,
        ]
        .into_iter()
        .flatten()
        .filter(|&id| (id as usize) < n)
        .collect();
        eos_ids.extend(END_OF_GENERATION_TEXTS.iter().filter_map(|t| token_to_id.get(*t).copied()));
        eos_ids.sort_unstable();
        eos_ids.dedup();

        let mut special_by_length: Vec<u32> = (0..n as u32)
            .filter(|&id| {
                matches!(
                    kinds[id as usize],
                    TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                )
            })
            .collect();
        special_by_length.sort_by_key(|&id| std::cmp::Reverse(tokens[id as usize].len()));

        let pieces = match &algorithm {
            GgufAlgorithm::Bpe { .. } => {
                let map = bpe::char_to_byte_map();
                tokens
                    .iter()
                    .zip(&kinds)
                    .map(|(text, kind)| match kind {
                        TokenKind::Normal => bpe::byte_level_decode(text, &map),
                        TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown => {
                            text.as_bytes().to_vec()
                        }
                        TokenKind::Unused | TokenKind::Byte => Vec::new(),
                    })
                    .collect()
            }
            GgufAlgorithm::Spm { .. } => {
                tokens.iter().zip(&kinds).map(|(text, kind)| spm_piece(text, *kind)).collect()
            }
        };
        let strip_first_space =
            matches!(algorithm, GgufAlgorithm::Spm { add_space_prefix: true, .. });
        Ok(Tokenizer {
            backend: Backend::Gguf { algorithm, special_by_length, unk, add_eos },
            tokens,
            token_to_id,
            kinds,
            pieces,
            strip_first_space,
            bos,
            add_bos,
            eos,
            eos_ids,
        })
    }

    /// Loads a Hugging Face `tokenizer.json` on its own (special tokens are taken from the file's added tokens).
    pub fn from_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
        Self::from_hf_json(&bytes, &path.display().to_string(), &HfConfig::default())
    }

    /// Loads a Hugging Face model folder: `tokenizer.json`, plus `tokenizer_config.json` (BOS/EOS, `add_bos_token`)
    /// and `generation_config.json` (extra end-of-generation ids) when present.
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|source| io_error(&path, source))?;
        let config = HfConfig::read(dir)?;
        Self::from_hf_json(&bytes, &path.display().to_string(), &config)
    }

    fn from_hf_json(
        bytes: &[u8],
        origin: &str,
        config: &HfConfig,
    ) -> Result<Tokenizer, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|err| TokenizerError::Hf {
            context: origin.to_owned(),
            detail: err.to_string(),
        })?;
        let json: Json = serde_json::from_slice(bytes)
            .map_err(|err| TokenizerError::Invalid(format!("{origin}: {err}")))?;
        let n = inner.get_vocab_size(true);
        let mut tokens = vec![String::new(); n];
        let mut token_to_id = HashMap::with_capacity(n);
        for (text, id) in inner.get_vocab(true) {
            if let Some(slot) = tokens.get_mut(id as usize) {
                slot.clone_from(&text);
            }
            token_to_id.insert(text, id);
        }
        let added = inner.get_added_tokens_decoder();
        let mut kinds = vec![TokenKind::Normal; n];
        for (id, token) in &added {
            if let Some(kind) = kinds.get_mut(*id as usize) {
                *kind = if token.special { TokenKind::Control } else { TokenKind::UserDefined };
            }
        }
        let decoder_style = DecoderStyle::detect(&json);
        let byte_map = bpe::char_to_byte_map();
        let mut pieces = Vec::with_capacity(n);
        for (id, text) in tokens.iter().enumerate() {
            let piece = if added.contains_key(&(id as u32)) {
                text.as_bytes().to_vec()
            } else {
                match decoder_style {
                    DecoderStyle::ByteLevel => bpe::byte_level_decode(text, &byte_map),
                    DecoderStyle::SentencePiece { .. } => spm_piece(text, TokenKind::Normal),
                    DecoderStyle::Other => inner
                        .decode(&[id as u32], false)
                        .map_err(|err| TokenizerError::Hf {
                            context: origin.to_owned(),
                            detail: err.to_string(),
                        })?
                        .into_bytes(),
                }
            };
            pieces.push(piece);
        }
        let strip_first_space =
            matches!(decoder_style, DecoderStyle::SentencePiece { strip_first_space: true });

        let lookup =
            |text: &Option<String>| text.as_deref().and_then(|t| token_to_id.get(t).copied());
        let probe = inner.encode("", true).map_err(|err| TokenizerError::Hf {
            context: origin.to_owned(),
            detail: err.to_string(),
        })?;
        let first_added = probe.get_ids().first().copied();
        let bos = lookup(&config.bos_token).or_else(|| {
            ["<s>", "<|begin_of_text|>", "<|startoftext|>"]
                .iter()
                .find_map(|t| token_to_id.get(*t).copied())
                .filter(|id| Some(*id) == first_added)
        });
        let post_processor_adds_bos = bos.is_some() && first_added == bos;
        let add_bos = config.add_bos_token.unwrap_or(post_processor_adds_bos) && bos.is_some();
        let eos = lookup(&config.eos_token);
        let mut eos_ids: Vec<u32> =
            eos.into_iter().chain(config.eos_token_ids.iter().copied()).collect();
        eos_ids.extend(
            END_OF_GENERATION_TEXTS
                .iter()
                .chain(["</s>", "<|end_of_text|>"].iter())
                .filter_map(|t| token_to_id.get(*t).copied())
                .filter(|id| kinds.get(*id as usize).is_some_and(|k| *k != TokenKind::Normal)),
        );
        eos_ids.retain(|&id| (id as usize) < n);
        eos_ids.sort_unstable();
        eos_ids.dedup();

        Ok(Tokenizer {
            backend: Backend::Hf {
                inner: Box::new(inner),
                literal: OnceLock::new(),
                post_processor_adds_bos,
            },
            tokens,
            token_to_id,
            kinds,
            pieces,
            strip_first_space,
            bos,
            add_bos,
            eos: eos.or_else(|| eos_ids.first().copied()),
            eos_ids,
        })
    }

    /// Encodes text. `add_special` adds what the model wants around a sequence (BOS for Llama, nothing for Qwen);
    /// special-token text such as `<|im_start|>` is recognised as one token.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(text, add_special, true)
    }

    /// Encodes text that must not be able to forge control tokens: with `parse_special` false, `<|im_end|>` in
    /// `text` is tokenized as ordinary characters (user-defined tokens are still matched, as llama.cpp does).
    pub fn encode_with(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        match &self.backend {
            Backend::Gguf { algorithm, special_by_length, unk, add_eos } => {
                let mut out = Vec::with_capacity(text.len() / 3 + 2);
                if add_special && self.add_bos {
                    out.push(self.bos.ok_or(TokenizerError::MissingBos)?);
                }
                let fragments = self.partition(text, special_by_length, parse_special);
                match algorithm {
                    GgufAlgorithm::Bpe { merges, pre, ignore_merges, byte_chars } => {
                        let mut word_buf = String::new();
                        for fragment in fragments {
                            match fragment {
                                Fragment::Token(id) => out.push(id),
                                Fragment::Text(text) => {
                                    for word in pre.split(text)? {
                                        word_buf.clear();
                                        word_buf.extend(
                                            word.bytes().map(|b| byte_chars[usize::from(b)]),
                                        );
                                        self.bpe_word(&word_buf, merges, *ignore_merges, &mut out);
                                    }
                                }
                            }
                        }
                    }
                    GgufAlgorithm::Spm { scores, add_space_prefix } => {
                        let mut previous_special = true;
                        for fragment in fragments {
                            match fragment {
                                Fragment::Token(id) => {
                                    out.push(id);
                                    previous_special = true;
                                }
                                Fragment::Text(text) => {
                                    let mut escaped = String::with_capacity(text.len() + 4);
                                    if *add_space_prefix && previous_special {
                                        escaped.push('▁');
                                    }
                                    escaped.extend(
                                        text.chars().map(|c| if c == ' ' { '▁' } else { c }),
                                    );
                                    for piece in spm::merge(&escaped, &self.token_to_id, scores) {
                                        match self.token_to_id.get(piece) {
                                            Some(&id) => out.push(id),
                                            None => {
                                                for byte in piece.bytes() {
                                                    if let Some(id) = self.byte_token(byte).or(*unk)
                                                    {
                                                        out.push(id);
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    previous_special = false;
                                }
                            }
                        }
                    }
                }
                if add_special
                    && *add_eos
                    && let Some(eos) = self.eos
                {
                    out.push(eos);
                }
                Ok(out)
            }
            Backend::Hf { inner, literal, post_processor_adds_bos } => {
                let tokenizer: &tokenizers::Tokenizer = if parse_special {
                    inner
                } else {
                    literal.get_or_init(|| {
                        let mut copy = inner.clone();
                        copy.set_encode_special_tokens(true);
                        copy
                    })
                };
                let encoding = tokenizer.encode(text, add_special).map_err(|err| {
                    TokenizerError::Hf { context: "encode".into(), detail: err.to_string() }
                })?;
                let mut ids = encoding.get_ids().to_vec();
                if add_special && self.add_bos != *post_processor_adds_bos {
                    match (self.add_bos, self.bos) {
                        (true, Some(bos)) => ids.insert(0, bos),
                        (false, Some(bos)) if ids.first() == Some(&bos) => {
                            ids.remove(0);
                        }
                        _ => {}
                    }
                }
                Ok(ids)
            }
        }
    }

    /// Encodes a rendered chat prompt: BOS is added when the model wants one, unless the template already wrote
    /// it (Llama 3's template starts with `{{ bos_token }}`).
    pub fn encode_chat(&self, rendered: &str) -> Result<Vec<u32>, TokenizerError> {
        let starts_with_bos = self
            .bos
            .and_then(|id| self.tokens.get(id as usize))
            .is_some_and(|t| !t.is_empty() && rendered.starts_with(t.as_str()));
        self.encode_with(rendered, !starts_with_bos, true)
    }

    fn bpe_word(&self, word: &str, merges: &BpeMerges, ignore_merges: bool, out: &mut Vec<u32>) {
        if ignore_merges && let Some(&id) = self.token_to_id.get(word) {
            out.push(id);
            return;
        }
        for piece in merges.merge_word(word) {
            match self.token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    // As llama.cpp: fall back to single-character tokens where they exist, drop the rest.
                    for c in piece.chars() {
                        let mut buf = [0u8; 4];
                        if let Some(&id) = self.token_to_id.get(&*c.encode_utf8(&mut buf)) {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }

    fn byte_token(&self, byte: u8) -> Option<u32> {
        self.token_to_id.get(&format!("<0x{byte:02X}>")).copied().or_else(|| {
            if byte.is_ascii() {
                self.token_to_id.get(&char::from(byte).to_string()).copied()
            } else {
                None
            }
        })
    }

    /// Cuts text at occurrences of special tokens, longest token first (llama.cpp's `tokenizer_st_partition`).
    fn partition<'t>(
        &self,
        text: &'t str,
        special_by_length: &[u32],
        parse_special: bool,
    ) -> Vec<Fragment<'t>> {
        let mut fragments = Vec::new();
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text(text));
        for &id in special_by_length {
            let kind = self.kinds[id as usize];
            if !parse_special && kind != TokenKind::UserDefined {
                continue;
            }
            let needle = self.tokens[id as usize].as_str();
            if needle.is_empty()
                || !fragments.iter().any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                match fragment {
                    Fragment::Text(mut rest) => {
                        while let Some(pos) = rest.find(needle) {
                            if pos > 0 {
                                next.push(Fragment::Text(&rest[..pos]));
                            }
                            next.push(Fragment::Token(id));
                            rest = &rest[pos + needle.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    token => next.push(token),
                }
            }
            fragments = next;
        }
        fragments
    }

    /// Decodes ids to text, special tokens included as their text. Bytes that do not form valid UTF-8 (a
    /// sequence cut inside a character) become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_impl(ids, false)
    }

    /// Decodes ids to text, leaving out control and unknown tokens.
    pub fn decode_skip_special(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_impl(ids, true)
    }

    fn decode_impl(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut first = true;
        for &id in ids {
            let piece = self.piece(id)?;
            if skip_special && self.kinds[id as usize].is_special() {
                continue;
            }
            // As Hugging Face's decoders: the space is stripped from the first piece that is written.
            bytes.extend_from_slice(self.strip_if_first(piece, first));
            first &= piece.is_empty();
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn piece(&self, id: u32) -> Result<&[u8], TokenizerError> {
        self.pieces
            .get(id as usize)
            .map(Vec::as_slice)
            .ok_or(TokenizerError::UnknownId { id, vocab_size: self.pieces.len() })
    }

    fn strip_if_first<'p>(&self, piece: &'p [u8], first: bool) -> &'p [u8] {
        if first && self.strip_first_space {
            piece.strip_prefix(b" ").unwrap_or(piece)
        } else {
            piece
        }
    }

    /// The text one token decodes to on its own (lossy if the token is part of a multi-byte character).
    pub fn token_to_piece(&self, id: u32) -> Option<String> {
        self.pieces.get(id as usize).map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The exact bytes one token decodes to (for OpenAI-style `bytes` in logprobs).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(Vec::as_slice)
    }

    /// The token's string as stored in the vocabulary (`Ġhello`, `▁hello`, `<0x0A>`, `<|im_end|>`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The token's role in the vocabulary.
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// The first control token whose text occurs in `text`, if any (the longest one at the earliest position).
    ///
    /// A rendered chat prompt is encoded with special tokens parsed, so a user message that contains
    /// `<|im_end|>\n<|im_start|>system` would forge turns. Callers check untrusted message text with this before
    /// rendering and reject or rewrite it.
    pub fn find_control_token(&self, text: &str) -> Option<u32> {
        let mut best: Option<(usize, std::cmp::Reverse<usize>, u32)> = None;
        for (id, kind) in self.kinds.iter().enumerate() {
            if *kind != TokenKind::Control {
                continue;
            }
            let token = self.tokens[id].as_str();
            if token.is_empty() {
                continue;
            }
            if let Some(pos) = text.find(token) {
                let candidate = (pos, std::cmp::Reverse(token.len()), id as u32);
                if best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
        }
        best.map(|(_, _, id)| id)
    }

    /// The id of a token given its vocabulary string, e.g. `id_of("<|im_end|>")`.
    pub fn id_of(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }

    /// The number of tokens, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence token, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// Whether `encode(_, true)` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// The model's declared end-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Every id that ends generation (EOS, end-of-turn tokens such as `<|im_end|>` and `<|eot_id|>`), sorted.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Whether `id` ends generation.
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.binary_search(&id).is_ok()
    }
}

/// Part of the input after special tokens are cut out.
#[derive(Debug, Clone, Copy)]
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// How a Hugging Face tokenizer turns tokens back into text, read from `tokenizer.json`'s `decoder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecoderStyle {
    /// GPT-2 byte-level characters.
    ByteLevel,
    /// `▁` for spaces and `<0xNN>` byte fallback (Llama 2, Mistral); maybe with the first space stripped.
    SentencePiece { strip_first_space: bool },
    /// Anything else: each token is decoded by the library on its own.
    Other,
}

impl DecoderStyle {
    fn detect(json: &Json) -> Self {
        let decoder = &json["decoder"];
        let kind = |d: &Json| d["type"].as_str().unwrap_or_default().to_owned();
        match kind(decoder).as_str() {
            "ByteLevel" => Self::ByteLevel,
            "Metaspace" => {
                let strip = decoder["add_prefix_space"].as_bool().unwrap_or(true)
                    && decoder["prepend_scheme"].as_str() != Some("never");
                Self::SentencePiece { strip_first_space: strip }
            }
            "Sequence" => {
                let parts = decoder["decoders"].as_array().cloned().unwrap_or_default();
                let has = |name: &str| parts.iter().any(|d| kind(d) == name);
                if has("ByteLevel") {
                    Self::ByteLevel
                } else if has("ByteFallback") || has("Replace") || has("Metaspace") {
                    Self::SentencePiece { strip_first_space: has("Strip") || has("Metaspace") }
                } else {
                    Self::Other
                }
            }
            _ => Self::Other,
        }
    }
}

/// The parts of `tokenizer_config.json` and `generation_config.json` the tokenizer needs.
#[derive(Debug, Default)]
struct HfConfig {
    bos_token: Option<String>,
    eos_token: Option<String>,
    add_bos_token: Option<bool>,
    eos_token_ids: Vec<u32>,
}

impl HfConfig {
    fn read(dir: &Path) -> Result<Self, TokenizerError> {
        let mut config = HfConfig::default();
        if let Some(json) = read_optional_json(&dir.join("tokenizer_config.json"))? {
            config.bos_token = special_token_text(&json["bos_token"]);
            config.eos_token = special_token_text(&json["eos_token"]);
            config.add_bos_token = json["add_bos_token"].as_bool();
        }
        if let Some(json) = read_optional_json(&dir.join("generation_config.json"))? {
            match &json["eos_token_id"] {
                Json::Number(n) => config.eos_token_ids.extend(n.as_u64().map(|v| v as u32)),
                Json::Array(items) => {
                    config
                        .eos_token_ids
                        .extend(items.iter().filter_map(Json::as_u64).map(|v| v as u32));
                }
                _ => {}
            }
        }
        Ok(config)
    }
}

/// A special token in `tokenizer_config.json`: a string or an `AddedToken` object with `content`.
pub(crate) fn special_token_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Object(map) => map.get("content").and_then(Json::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Reads a JSON file that may be absent.
pub(crate) fn read_optional_json(path: &Path) -> Result<Option<Json>, TokenizerError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| TokenizerError::Invalid(format!("{}: {err}", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(path, source)),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> TokenizerError {
    TokenizerError::Io { path: path.display().to_string(), source }
}

/// The bytes a SentencePiece token stands for: `▁` is a space, `<0xNN>` one raw byte.
fn spm_piece(text: &str, kind: TokenKind) -> Vec<u8> {
    match kind {
        TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown => {
            text.as_bytes().to_vec()
        }
        TokenKind::Unused => Vec::new(),
        TokenKind::Normal | TokenKind::Byte => {
            if let Some(hex) = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>'))
                && hex.len() == 2
                && let Ok(byte) = u8::from_str_radix(hex, 16)
            {
                return vec![byte];
            }
            text.replace('▁', " ").into_bytes()
        }
    }
}

fn missing(key: &str) -> TokenizerError {
    TokenizerError::MissingKey(key.to_owned())
}

fn check_len(key: &str, len: usize, expected: usize) -> Result<(), TokenizerError> {
    if len == expected {
        Ok(())
    } else {
        Err(TokenizerError::Invalid(format!(
            "{key} has {len} entries but the vocabulary has {expected}"
        )))
    }
}

type Metadata = HashMap<String, Value>;

fn gguf_string(meta: &Metadata, key: &str) -> Result<Option<String>, TokenizerError> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(key, "a string", other)),
    }
}

fn gguf_array<'m>(meta: &'m Metadata, key: &str) -> Result<Option<&'m [Value]>, TokenizerError> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::Array(values)) => Ok(Some(values)),
        Some(other) => Err(wrong_type(key, "an array", other)),
    }
}

fn gguf_strings(meta: &Metadata, key: &str) -> Result<Option<Vec<String>>, TokenizerError> {
    let Some(values) = gguf_array(meta, key)? else { return Ok(None) };
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong_type(key, "an array of strings", other)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn gguf_bool(meta: &Metadata, key: &str) -> Result<Option<bool>, TokenizerError> {
    match meta.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            gguf_int(other).map(|v| Some(v != 0)).map_err(|_| wrong_type(key, "a bool", other))
        }
    }
}

fn gguf_u32(meta: &Metadata, key: &str) -> Result<Option<u32>, TokenizerError> {
    match meta.get(key) {
        None => Ok(None),
        Some(value) => {
            let v = gguf_int(value).map_err(|_| wrong_type(key, "an integer", value))?;
            u32::try_from(v)
                .map(Some)
                .map_err(|_| TokenizerError::Invalid(format!("{key} = {v} is not a token id")))
        }
    }
}

fn gguf_int(value: &Value) -> Result<i64, TokenizerError> {
    Ok(match value {
        Value::U8(v) => i64::from(*v),
        Value::I8(v) => i64::from(*v),
        Value::U16(v) => i64::from(*v),
        Value::I16(v) => i64::from(*v),
        Value::U32(v) => i64::from(*v),
        Value::I32(v) => i64::from(*v),
        Value::U64(v) => i64::try_from(*v).unwrap_or(i64::MAX),
        Value::I64(v) => *v,
        other => return Err(wrong_type("value", "an integer", other)),
    })
}

fn gguf_float(value: &Value) -> Result<f32, TokenizerError> {
    match value {
        Value::F32(v) => Ok(*v),
        Value::F64(v) => Ok(*v as f32),
        other => gguf_int(other).map(|v| v as f32),
    }
}

fn wrong_type(key: &str, expected: &str, found: &Value) -> TokenizerError {
    TokenizerError::Invalid(format!("{key} should be {expected}, found {:?}", found.value_type()))
}

/// Turns a stream of token ids into text as it is generated, never splitting a UTF-8 character: bytes of an
/// incomplete character are held back until the token that completes it arrives.
///
/// A decoder made with [`StreamDecoder::new`] treats the first id as the start of a sequence, exactly as
/// [`Tokenizer::decode`] does (SentencePiece's leading space is removed). For text that continues a prompt use
/// [`StreamDecoder::after_prompt`], which keeps that space.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    started: bool,
    skip_special: bool,
}

impl StreamDecoder {
    /// A decoder for a sequence that starts with the first id pushed.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder for ids that continue a prompt (the first piece keeps its leading space).
    pub fn after_prompt() -> Self {
        Self { started: true, ..Self::default() }
    }

    /// Leaves control and unknown tokens out of the text.
    pub fn skip_special(mut self, skip: bool) -> Self {
        self.skip_special = skip;
        self
    }

    /// Adds one token and returns the text it completes (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, TokenizerError> {
        let piece = tokenizer.piece(id)?;
        if !(self.skip_special && tokenizer.kinds[id as usize].is_special()) {
            let first = !self.started;
            self.started |= !piece.is_empty();
            self.pending.extend_from_slice(tokenizer.strip_if_first(piece, first));
        }
        Ok(self.take_complete())
    }

    /// Returns whatever is still held back (an incomplete character becomes U+FFFD) and empties the decoder.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    /// Whether bytes of an incomplete character are waiting for the next token.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut consumed = 0;
        loop {
            match std::str::from_utf8(&self.pending[consumed..]) {
                Ok(valid) => {
                    out.push_str(valid);
                    consumed = self.pending.len();
                    break;
                }
                Err(err) => {
                    let valid_end = consumed + err.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[consumed..valid_end]));
                    match err.error_len() {
                        // An invalid sequence: replace it, as lossy decoding of the whole text would.
                        Some(len) => {
                            out.push('\u{FFFD}');
                            consumed = valid_end + len;
                        }
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            consumed = valid_end;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        out
    }
}
