//! Tokenizer parity with llama.cpp: every test case shipped with llama.cpp's vocabulary files must encode to
//! exactly the ids llama.cpp (and the original Hugging Face tokenizer) produce, and decode back to the input.
//!
//! The vocabularies live outside the repository (`<repo>/../shared/vocab`); without them the test says so
//! and passes, so that a clean checkout still builds and tests.

use std::fs::File;
use std::path::PathBuf;

use candle_core::quantized::gguf_file::Content;
use engine::chat_template::{BuiltinTemplate, ChatMessage, ChatTemplate, TemplateOrigin};
use engine::tokenizer::{StreamDecoder, Tokenizer};

/// The separator llama.cpp's `test-tokenizer-0` puts after every case in a `.inp` file.
const CASE_END: &str = "\n__ggml_vocab_test__\n";

fn vocab_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vocab");
    dir.is_dir().then_some(dir)
}

fn load(path: &std::path::Path) -> Tokenizer {
    let mut file = File::open(path).unwrap();
    let content = Content::read(&mut file).unwrap();
    Tokenizer::from_gguf(&content).unwrap()
}

/// Reads the cases of one vocabulary: (input text, expected ids).
fn cases(gguf: &std::path::Path) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(format!("{}.inp", gguf.display())).unwrap();
    let out = std::fs::read_to_string(format!("{}.out", gguf.display())).unwrap();
    let inputs: Vec<&str> = inp.split(CASE_END).collect();
    let outputs: Vec<&str> = out.lines().collect();
    // The file ends with a separator, so the split leaves one empty tail.
    assert_eq!(inputs.last(), Some(&""), "{}: .inp must end with a separator", gguf.display());
    let inputs = &inputs[..inputs.len() - 1];
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{}: .inp and .out disagree on the number of cases",
        gguf.display()
    );
    inputs
        .iter()
        .zip(outputs)
        .map(|(text, ids)| {
            let ids = ids.split_whitespace().map(|id| id.parse().unwrap()).collect();
            ((*text).to_owned(), ids)
        })
        .collect()
}

fn check_vocab(name: &str) {
    let Some(dir) = vocab_dir() else {
        println!(
            "SKIPPED tokenizer parity for {name}: ../shared/vocab is absent (see shared/vocab/README.md)"
        );
        return;
    };
    let path = dir.join(format!("ggml-vocab-{name}.gguf"));
    let tokenizer = load(&path);
    let cases = cases(&path);
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for (text, expected) in &cases {
        // llama.cpp's test tokenizes without BOS/EOS and without parsing special tokens.
        let ids = tokenizer.encode_with(text, false, false).unwrap();
        if &ids != expected {
            failures.push(format!("{text:?}\n   got {ids:?}\n  want {expected:?}"));
            continue;
        }
        // Decoding gives the text back (SentencePiece's added leading space is removed again).
        assert_eq!(&tokenizer.decode(&ids).unwrap(), text, "{name}: decode of {text:?}");
        // Streaming gives the same text, one valid UTF-8 piece at a time.
        let mut stream = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&stream.push(&tokenizer, id).unwrap());
        }
        streamed.push_str(&stream.finish());
        assert_eq!(&streamed, text, "{name}: streamed decode of {text:?}");
    }
    println!("{name}: {}/{} cases match llama.cpp", cases.len() - failures.len(), cases.len());
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn qwen2_matches_llama_cpp() {
    check_vocab("qwen2");
}

#[test]
fn llama_bpe_matches_llama_cpp() {
    check_vocab("llama-bpe");
}

#[test]
fn gpt2_matches_llama_cpp() {
    check_vocab("gpt-2");
}

#[test]
fn deepseek_llm_matches_llama_cpp() {
    check_vocab("deepseek-llm");
}

#[test]
fn llama_spm_matches_llama_cpp() {
    check_vocab("llama-spm");
}

fn load_content(name: &str) -> Option<Content> {
    let Some(dir) = vocab_dir() else {
        println!("SKIPPED {name}: ../shared/vocab is absent (see shared/vocab/README.md)");
        return None;
    };
    let mut file = File::open(dir.join(format!("ggml-vocab-{name}.gguf"))).unwrap();
    Some(Content::read(&mut file).unwrap())
}

/// Qwen2's GGUF carries its own chat template; rendered and encoded, the turn markers are single control
/// tokens and both `<|endoftext|>` and `<|im_end|>` end generation.
#[test]
fn qwen2_chat_template_and_special_tokens() {
    let Some(content) = load_content("qwen2") else { return };
    let start = std::time::Instant::now();
    let tokenizer = Tokenizer::from_gguf(&content).unwrap();
    println!(
        "qwen2: tokenizer built from GGUF metadata in {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let template = ChatTemplate::from_gguf(&content).unwrap();
    assert_eq!(template.origin(), TemplateOrigin::Model);
    let rendered = template.render(&[ChatMessage::new("user", "利率是多少?")], None, true).unwrap();
    assert_eq!(
        rendered,
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n利率是多少?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    let ids = tokenizer.encode_chat(&rendered).unwrap();
    assert_eq!(ids[0], 151_644, "no BOS for Qwen, <|im_start|> first");
    assert_eq!(ids.iter().filter(|&&id| id == 151_645).count(), 2);
    assert_eq!(tokenizer.decode(&ids).unwrap(), rendered);
    assert!(tokenizer.is_eos(151_643) && tokenizer.is_eos(151_645));
    assert_eq!(tokenizer.bos_id(), Some(151_643));
    assert!(!tokenizer.adds_bos());

    // Throughput on a long mixed-script prompt, for orientation only (no assertion on time).
    let text = std::fs::read_to_string(vocab_dir().unwrap().join("ggml-vocab-qwen2.gguf.inp"))
        .unwrap()
        .repeat(60);
    let start = std::time::Instant::now();
    let ids = tokenizer.encode(&text, false).unwrap();
    let elapsed = start.elapsed();
    println!(
        "qwen2: encoded {} KiB into {} tokens in {:.1} ms ({:.0} tokens/s)",
        text.len() / 1024,
        ids.len(),
        elapsed.as_secs_f64() * 1e3,
        ids.len() as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(tokenizer.decode(&ids).unwrap(), text);
}

/// The Llama 3 vocabulary has no template in its GGUF: the built-in Llama 3 one is chosen, it writes BOS
/// itself, and `encode_chat` does not add a second one.
#[test]
fn llama_bpe_falls_back_to_builtin_llama3_template() {
    let Some(content) = load_content("llama-bpe") else { return };
    let tokenizer = Tokenizer::from_gguf(&content).unwrap();
    assert!(tokenizer.adds_bos());
    assert_eq!(tokenizer.encode("Hi", true).unwrap(), [128_000, 13_347]);
    let template = ChatTemplate::from_gguf(&content).unwrap();
    assert_eq!(template.origin(), TemplateOrigin::Builtin(BuiltinTemplate::Llama3));
    let rendered = template.render(&[ChatMessage::new("user", "Hi")], None, true).unwrap();
    let ids = tokenizer.encode_chat(&rendered).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == 128_000).count(), 1, "{ids:?}");
    assert_eq!(&ids[..2], [128_000, tokenizer.id_of("<|start_header_id|>").unwrap()]);
    assert!(tokenizer.is_eos(tokenizer.id_of("<|eot_id|>").unwrap()));
}
