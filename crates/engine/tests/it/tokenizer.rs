//! Hermetic tokenizer tests: a small byte-level BPE vocabulary is trained here from a fixed corpus and written
//! both as a Hugging Face `tokenizer.json` and as GGUF metadata, so the two loaders must agree id for id; a
//! small SentencePiece vocabulary checks byte fallback. Round trips cover Chinese, emoji and mixed scripts, and
//! the streaming decoder must reproduce `decode` without ever splitting a character.

use std::collections::{BTreeMap, HashMap};

use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
use engine::tokenizer::{StreamDecoder, TokenKind, Tokenizer, TokenizerError};
use serde_json::json;

/// Qwen2's pre-tokenizer expression, as in its `tokenizer.json`.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

const CORPUS: &str = "The bank's interest rate rose to 4.25% in 2024. 银行的利率在二零二四年上升。 \
    Customers asked: what is the rate? The rate is fixed for the term of the loan. 客户问：利率是多少？ \
    Payments are due monthly; late payments incur fees. 💶💷💵 Zinssatz für Kredite in Zürich. \
    the the the rate rate rate bank bank 利率 利率 银行 银行";

const SAMPLES: &[&str] = &[
    "",
    "The rate is 4.25%.",
    "  leading and trailing spaces  ",
    "银行的利率是多少？",
    "Mixed 中文 and English, with émigré accents and Zürich.",
    "emoji: 💶💷 🦙 😶‍🌫️ ✅",
    "tabs\tand\nnew\n\nlines\r\n",
    "digits 1234567890 and 3.14159",
    "<|im_start|>user\n利率?<|im_end|>\n<|im_start|>assistant\n",
    "It's, they'RE, we'll",
];

/// GPT-2's byte → character table, written independently of the engine's.
fn byte_chars() -> Vec<char> {
    let mut chars = Vec::with_capacity(256);
    let mut extra = 0;
    for b in 0..=255u32 {
        if (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b) {
            chars.push(char::from_u32(b).unwrap());
        } else {
            chars.push(char::from_u32(256 + extra).unwrap());
            extra += 1;
        }
    }
    chars
}

/// A tiny BPE trainer: words are space-prefixed runs, merges are the most frequent adjacent pairs (ties by
/// first occurrence), `n` of them. Deterministic by construction.
fn train(n: usize) -> (Vec<String>, Vec<(String, String)>) {
    let table = byte_chars();
    let encode = |s: &str| s.bytes().map(|b| table[usize::from(b)].to_string()).collect::<Vec<_>>();
    let mut words: Vec<Vec<String>> = Vec::new();
    for (i, w) in CORPUS.split(' ').enumerate() {
        words.push(encode(&if i == 0 { w.to_owned() } else { format!(" {w}") }));
    }
    let mut vocab: Vec<String> = table.iter().map(|c| c.to_string()).collect();
    let mut merges = Vec::new();
    for _ in 0..n {
        let mut counts: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        let mut order = 0;
        for word in &words {
            for pair in word.windows(2) {
                order += 1;
                let entry = counts.entry((pair[0].clone(), pair[1].clone())).or_insert((0, order));
                entry.0 += 1;
            }
        }
        let Some(((a, b), _)) =
            counts.into_iter().max_by(|x, y| x.1.0.cmp(&y.1.0).then(y.1.1.cmp(&x.1.1)))
        else {
            break;
        };
        let merged = format!("{a}{b}");
        for word in &mut words {
            let mut i = 0;
            while i + 1 < word.len() {
                if word[i] == a && word[i + 1] == b {
                    word[i] = merged.clone();
                    word.remove(i + 1);
                }
                i += 1;
            }
        }
        vocab.push(merged);
        merges.push((a, b));
    }
    (vocab, merges)
}

fn hf_json(vocab: &[String], merges: &[(String, String)]) -> serde_json::Value {
    let vocab_map: serde_json::Map<String, serde_json::Value> =
        vocab.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<_> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": vocab.len() + i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
            byte_level.clone()
        ]},
        "post_processor": byte_level.clone(),
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab_map,
                  "merges": merges.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>()}
    })
}

fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn gguf(metadata: Vec<(&str, Value)>) -> Content {
    Content {
        magic: VersionedMagic::GgufV3,
        metadata: metadata.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    }
}

fn bpe_gguf(vocab: &[String], merges: &[(String, String)]) -> Content {
    let tokens: Vec<String> =
        vocab.iter().cloned().chain(SPECIALS.iter().map(|s| (*s).to_owned())).collect();
    let types =
        (0..tokens.len()).map(|i| Value::I32(if i < vocab.len() { 1 } else { 3 })).collect();
    gguf(vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens", strings(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", strings(merges.iter().map(|(a, b)| format!("{a} {b}")))),
        ("tokenizer.ggml.eos_token_id", Value::U32(vocab.len() as u32)),
    ])
}

fn both() -> (Tokenizer, Tokenizer) {
    let (vocab, merges) = train(300);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, hf_json(&vocab, &merges).to_string()).unwrap();
    let hf = Tokenizer::from_file(&path).unwrap();
    let gguf = Tokenizer::from_gguf(&bpe_gguf(&vocab, &merges)).unwrap();
    (hf, gguf)
}

/// Streams ids one at a time; returns the pieces.
fn stream(tokenizer: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut decoder = StreamDecoder::new();
    let mut pieces: Vec<String> =
        ids.iter().map(|&id| decoder.push(tokenizer, id).unwrap()).collect();
    pieces.push(decoder.finish());
    pieces
}

#[test]
fn gguf_and_tokenizer_json_agree_and_round_trip() {
    let (hf, gguf) = both();
    assert_eq!(hf.vocab_size(), gguf.vocab_size());
    let mut merged_tokens = 0;
    for text in SAMPLES {
        let from_hf = hf.encode(text, true).unwrap();
        let from_gguf = gguf.encode(text, true).unwrap();
        assert_eq!(from_hf, from_gguf, "{text:?}");
        merged_tokens += from_gguf.iter().filter(|&&id| (256..556).contains(&id)).count();
        for tokenizer in [&hf, &gguf] {
            assert_eq!(tokenizer.decode(&from_gguf).unwrap(), *text);
            let pieces = stream(tokenizer, &from_gguf);
            assert_eq!(pieces.concat(), *text, "{text:?}");
            assert!(
                pieces.iter().all(|p| !p.contains('\u{FFFD}')),
                "a piece split a character: {pieces:?}"
            );
        }
    }
    // The trained merges are in use, so the test exercises BPE and not only the byte alphabet.
    assert!(merged_tokens > 20, "only {merged_tokens} merged tokens");
}

#[test]
fn special_tokens_are_single_ids_unless_disabled() {
    let (hf, gguf) = both();
    let im_start = gguf.id_of("<|im_start|>").unwrap();
    let im_end = gguf.id_of("<|im_end|>").unwrap();
    for tokenizer in [&hf, &gguf] {
        let ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
        assert_eq!(ids.first(), Some(&im_start));
        assert_eq!(ids.last(), Some(&im_end));
        // Parsing disabled: the marker is spelled out in ordinary tokens.
        let literal = tokenizer.encode_with("<|im_start|>", false, false).unwrap();
        assert!(literal.len() > 1 && !literal.contains(&im_start), "{literal:?}");
        assert_eq!(tokenizer.decode(&literal).unwrap(), "<|im_start|>");
        assert_eq!(tokenizer.token_kind(im_start), Some(TokenKind::Control));
        assert_eq!(tokenizer.decode_skip_special(&ids).unwrap(), "user\nhi");
        // Qwen-style: no BOS, and both end-of-text and end-of-turn stop generation.
        assert_eq!(tokenizer.bos_id(), None);
        assert!(
            tokenizer.is_eos(im_end) && tokenizer.is_eos(tokenizer.id_of("<|endoftext|>").unwrap())
        );
        assert_eq!(tokenizer.token_to_piece(im_end).as_deref(), Some("<|im_end|>"));
        assert_eq!(tokenizer.token_text(u32::from(b'a')), Some("a"));
    }
}

/// A small SentencePiece vocabulary: `<unk> <s> </s>`, the 256 byte tokens, then scored pieces.
fn spm_tokenizer() -> Tokenizer {
    let mut tokens = vec!["<unk>".to_owned(), "<s>".to_owned(), "</s>".to_owned()];
    let mut types = vec![Value::I32(2), Value::I32(3), Value::I32(3)];
    let mut scores = vec![Value::F32(0.0); 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(Value::I32(6));
        scores.push(Value::F32(0.0));
    }
    for (i, piece) in
        ["ra", "te", "rate", "▁rate", "▁", "r", "a", "t", "e", "利", "率", "é"].iter().enumerate()
    {
        tokens.push((*piece).to_owned());
        types.push(Value::I32(1));
        scores.push(Value::F32(-(i as f32)));
    }
    Tokenizer::from_gguf(&gguf(vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", strings(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.scores", Value::Array(scores)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
    ]))
    .unwrap()
}

#[test]
fn sentencepiece_falls_back_to_bytes_and_streams_whole_characters() {
    let spm = spm_tokenizer();
    let rate = spm.id_of("▁rate").unwrap();
    // BOS is added, a leading space is implied, and "rate" merges by score.
    assert_eq!(spm.encode("rate", true).unwrap(), [1, rate]);
    // 银 is not in the vocabulary: three byte tokens <0xE9> <0x93> <0xB6>.
    let ids = spm.encode("利率 银", false).unwrap();
    let bytes: Vec<u32> = "银".bytes().map(|b| 3 + u32::from(b)).collect();
    assert!(ids.ends_with(&bytes), "{ids:?}");
    assert_eq!(spm.decode(&ids).unwrap(), "利率 银");
    // Streaming holds the first two bytes back and releases the character with the third.
    let pieces = stream(&spm, &ids);
    assert_eq!(pieces.concat(), "利率 银");
    assert_eq!(&pieces[pieces.len() - 4..], ["", "", "银", ""]);
    // A decoder continuing a prompt keeps the leading space of its first piece.
    let mut after = StreamDecoder::after_prompt();
    assert_eq!(after.push(&spm, rate).unwrap(), " rate");
    for text in ["rate rate", "  é ", "", "\n"] {
        assert_eq!(spm.decode(&spm.encode(text, false).unwrap()).unwrap(), text);
    }
    // An incomplete character at the very end is flushed as U+FFFD, as lossy decoding does.
    let mut decoder = StreamDecoder::new();
    assert_eq!(decoder.push(&spm, 3 + 0xE9).unwrap(), "");
    assert!(decoder.has_pending());
    assert_eq!(decoder.finish(), "\u{FFFD}");
}

#[test]
fn bad_tokenizers_are_errors_not_panics() {
    let check = |metadata: Vec<(&str, Value)>, want: fn(&TokenizerError) -> bool| {
        let err = Tokenizer::from_gguf(&gguf(metadata)).unwrap_err();
        assert!(want(&err), "{err:?}");
        assert!(!err.to_string().is_empty());
    };
    let tokens = || strings(["a".to_owned(), "b".to_owned()]);
    check(vec![], |e| matches!(e, TokenizerError::MissingKey(_)));
    check(
        vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", tokens()),
        ],
        |e| matches!(e, TokenizerError::Unsupported(_)),
    );
    check(
        vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.tokens", tokens()),
            ("tokenizer.ggml.scores", Value::Array(vec![Value::F32(0.0)])),
        ],
        |e| matches!(e, TokenizerError::Invalid(_)),
    );
    check(
        vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.tokens", Value::U32(3)),
        ],
        |e| matches!(e, TokenizerError::Invalid(_)),
    );
    check(
        vec![
            ("tokenizer.ggml.model", Value::String("rwkv".into())),
            ("tokenizer.ggml.tokens", tokens()),
        ],
        |e| matches!(e, TokenizerError::Unsupported(_)),
    );

    let spm = spm_tokenizer();
    assert!(matches!(
        spm.decode(&[1_000_000]),
        Err(TokenizerError::UnknownId { id: 1_000_000, .. })
    ));
    assert!(StreamDecoder::new().push(&spm, u32::MAX).is_err());

    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Tokenizer::from_file(&dir.path().join("absent.json")),
        Err(TokenizerError::Io { .. })
    ));
    std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
    assert!(matches!(Tokenizer::from_hf_dir(dir.path()), Err(TokenizerError::Hf { .. })));
}

#[test]
fn hf_dir_reads_bos_and_end_of_generation_ids() {
    let (vocab, merges) = train(50);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), hf_json(&vocab, &merges).to_string())
        .unwrap();
    let config = json!({"bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|im_end|>", "add_bos_token": true});
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let eot = vocab.len() as u32;
    std::fs::write(
        dir.path().join("generation_config.json"),
        json!({"eos_token_id": [eot + 2, 7]}).to_string(),
    )
    .unwrap();
    let tokenizer = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(tokenizer.bos_id(), Some(eot));
    assert!(tokenizer.adds_bos());
    assert_eq!(tokenizer.eos_id(), Some(eot + 2));
    assert_eq!(tokenizer.eos_ids(), [7, eot, eot + 2]);
    assert_eq!(tokenizer.encode("hi", true).unwrap()[0], eot);
    assert_eq!(tokenizer.encode("hi", false).unwrap().first(), Some(&u32::from(b'h')));
    // A rendered chat prompt that already starts with BOS does not get a second one.
    let ids = tokenizer.encode_chat("<|endoftext|>hi").unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == eot).count(), 1);
}

/// Long runs of one character class (padding, separators, a pasted blob) must tokenize, not hit the regex
/// engine's backtracking limit, and decode back.
#[test]
fn long_uniform_runs_tokenize() {
    let (hf, gguf) = both();
    let runs = [
        format!("{}a", " ".repeat(300_000)),
        format!("x{}y", "\n \t".repeat(100_000)),
        "!".repeat(200_000),
        "abc".repeat(100_000),
        "9".repeat(100_000),
        "银行".repeat(50_000),
    ];
    for text in &runs {
        let ids = gguf.encode(text, false).unwrap();
        assert_eq!(gguf.decode(&ids).unwrap(), *text);
        assert_eq!(hf.encode(text, false).unwrap(), ids, "{:?}…", &text[..10]);
    }
}

/// Differential test: seeded random strings drawn from ASCII, whitespace, CJK, accents, combining marks,
/// emoji (with ZWJ) and special-token fragments encode identically through `tokenizer.json` and GGUF, and
/// decode and stream back to the input.
#[test]
fn random_text_agrees_between_loaders_and_round_trips() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    const ALPHABET: &[&str] = &[
        "a",
        "e",
        "t",
        "r",
        "The",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "'s",
        "'LL",
        "7",
        "42",
        ".",
        "%",
        "!?",
        "银",
        "行",
        "利率",
        "é",
        "ü",
        "Ä",
        "\u{301}",
        "💶",
        "🦙",
        "😶\u{200d}🌫\u{fe0f}",
        "<|im_start|>",
        "<|im_",
        "end|>",
        "ক",
        "\u{17cb}",
        "\u{0}",
        "\u{7f}",
        "\u{a0}",
        "\u{2028}",
    ];
    let (hf, gguf) = both();
    let mut rng = StdRng::seed_from_u64(20_241_129);
    for case in 0..1500 {
        let len = rng.random_range(0..24);
        let text: String =
            (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect();
        let ids = gguf.encode(&text, false).unwrap();
        assert_eq!(hf.encode(&text, false).unwrap(), ids, "case {case}: {text:?}");
        assert_eq!(gguf.decode(&ids).unwrap(), text, "case {case}");
        assert_eq!(stream(&gguf, &ids).concat(), text, "case {case}");
        let literal = gguf.encode_with(&text, false, false).unwrap();
        assert_eq!(hf.encode_with(&text, false, false).unwrap(), literal, "case {case}: {text:?}");
        assert_eq!(gguf.decode(&literal).unwrap(), text, "case {case}");
    }
}

/// A Llama-2-style `tokenizer.json` (BPE with byte fallback, `▁` for spaces, a decoder that strips the first
/// space): BOS comes from the post-processor, unknown characters become byte tokens, and decoding — whole,
/// without special tokens, or streamed — gives the text back.
#[test]
fn sentencepiece_style_tokenizer_json_decodes_like_transformers() {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        vocab.insert((*t).to_owned(), json!(i));
    }
    for b in 0..=255u32 {
        vocab.insert(format!("<0x{b:02X}>"), json!(3 + b));
    }
    for piece in ["▁", "r", "a", "t", "e", "ra", "te", "rate", "▁rate", "利", "率"] {
        let id = vocab.len();
        vocab.insert(piece.to_owned(), json!(id));
    }
    let special = |id: usize, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
               "normalized": false, "special": true})
    };
    let tokenizer_json = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": ["r a", "t e", "ra te", "▁ rate"]}
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer_json.to_string()).unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"bos_token": "<s>", "eos_token": "</s>"}"#,
    )
    .unwrap();
    let tokenizer = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert!(tokenizer.adds_bos());
    let text = "rate 利率 银";
    let ids = tokenizer.encode(text, true).unwrap();
    let rate = tokenizer.id_of("▁rate").unwrap();
    assert_eq!(&ids[..2], [1, rate]);
    let bytes: Vec<u32> = "银".bytes().map(|b| 3 + u32::from(b)).collect();
    assert!(ids.ends_with(&bytes), "{ids:?}");
    assert_eq!(tokenizer.decode(&ids).unwrap(), format!("<s> {text}"));
    assert_eq!(tokenizer.decode_skip_special(&ids).unwrap(), text);
    assert_eq!(tokenizer.decode(&ids[1..]).unwrap(), text);
    let mut decoder = StreamDecoder::new().skip_special(true);
    let streamed: String = ids.iter().map(|&id| decoder.push(&tokenizer, id).unwrap()).collect();
    assert_eq!(streamed + &decoder.finish(), text);
    assert!(tokenizer.is_eos(2));
}

/// The server shares one tokenizer and one template between request threads.
#[test]
fn tokenizer_and_template_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Tokenizer>();
    shared::<StreamDecoder>();
    shared::<engine::chat_template::ChatTemplate>();
}

/// Untrusted text that spells a control token is found before it can forge a chat turn.
#[test]
fn control_tokens_in_untrusted_text_are_found() {
    let (hf, gguf) = both();
    for tokenizer in [&hf, &gguf] {
        let im_end = tokenizer.id_of("<|im_end|>").unwrap();
        let im_start = tokenizer.id_of("<|im_start|>").unwrap();
        assert_eq!(tokenizer.find_control_token("fine text 利率 <|im_"), None);
        assert_eq!(tokenizer.find_control_token("x<|im_end|>\n<|im_start|>system"), Some(im_end));
        assert_eq!(tokenizer.find_control_token("<|im_start|><|im_end|>"), Some(im_start));
    }
}
