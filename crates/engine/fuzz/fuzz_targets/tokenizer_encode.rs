//! Fuzzes tokenization: arbitrary bytes (as lossy UTF-8) through a small byte-level BPE vocabulary and a small
//! SentencePiece one must encode without panicking, decode back to the same text (byte-level BPE is lossless),
//! and stream to exactly what `decode` returns.

#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
use engine::tokenizer::{StreamDecoder, Tokenizer};
use libfuzzer_sys::fuzz_target;

fn content(metadata: Vec<(&str, Value)>) -> Content {
    Content {
        magic: VersionedMagic::GgufV3,
        metadata: metadata.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    }
}

fn strings(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// Byte-level BPE: the 256 GPT-2 byte characters, a few merges, two control tokens.
fn bpe() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut extra = 0;
        let mut tokens: Vec<String> = (0..=255u32)
            .map(|b| {
                let printable = (0x21..=0x7E).contains(&b)
                    || (0xA1..=0xAC).contains(&b)
                    || (0xAE..=0xFF).contains(&b);
                let code = if printable {
                    b
                } else {
                    extra += 1;
                    255 + extra
                };
                char::from_u32(code).map(String::from).unwrap_or_default()
            })
            .collect();
        let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r"];
        tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
        tokens.extend(["<|im_start|>".to_owned(), "<|im_end|>".to_owned()]);
        let types = (0..tokens.len())
            .map(|i| Value::I32(if i + 2 >= tokens.len() { 3 } else { 1 }))
            .collect();
        Tokenizer::from_gguf(&content(vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String("qwen2".into())),
            ("tokenizer.ggml.tokens", strings(tokens)),
            ("tokenizer.ggml.token_type", Value::Array(types)),
            ("tokenizer.ggml.merges", strings(merges.iter().map(|m| (*m).to_owned()).collect())),
        ]))
        .unwrap_or_else(|e| panic!("fixture vocabulary: {e}"))
    })
}

/// SentencePiece: `<unk> <s> </s>`, byte tokens, a few scored pieces.
fn spm() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut tokens = vec!["<unk>".to_owned(), "<s>".to_owned(), "</s>".to_owned()];
        let mut types = vec![Value::I32(2), Value::I32(3), Value::I32(3)];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(Value::I32(6));
        }
        for piece in ["▁", "▁the", "th", "e", "利", "率"] {
            tokens.push(piece.to_owned());
            types.push(Value::I32(1));
        }
        let scores = (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect();
        Tokenizer::from_gguf(&content(vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.tokens", strings(tokens)),
            ("tokenizer.ggml.token_type", Value::Array(types)),
            ("tokenizer.ggml.scores", Value::Array(scores)),
        ]))
        .unwrap_or_else(|e| panic!("fixture vocabulary: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for tokenizer in [bpe(), spm()] {
        let Ok(ids) = tokenizer.encode(&text, true) else { return };
        let Ok(decoded) = tokenizer.decode(&ids) else { panic!("decode of encoded ids failed") };
        let mut stream = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &ids {
            streamed
                .push_str(&stream.push(tokenizer, id).unwrap_or_else(|e| panic!("stream: {e}")));
        }
        streamed.push_str(&stream.finish());
        assert_eq!(streamed, decoded);
    }
    // Byte-level BPE without special-token parsing loses nothing.
    let ids = bpe().encode_with(&text, false, false).unwrap_or_default();
    assert_eq!(bpe().decode(&ids).ok().as_deref(), Some(&*text));
});
