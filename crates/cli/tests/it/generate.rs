//! `finllm generate` on the engine's committed tiny models: streams text, reports speed on stderr, is
//! reproducible with a seed, and fails with a clear message on a bad model or an oversized prompt.

use std::path::PathBuf;

use crate::finllm;

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/fixtures")
        .join(rel)
        .display()
        .to_string()
}

#[test]
fn generates_text_and_reports_speed() {
    let dir = tempfile::tempdir().unwrap();
    // A dense model and both Bailing MoE versions (GGUF, and an HF folder with an MTP layer and no tokenizer).
    for (rel, prompt_flag, prompt) in [
        ("llama/model-q8_0.gguf", "--prompt", "hello"),
        ("bailingmoe/model-q8_0.gguf", "--prompt", "hello"),
        ("bailingmoe2/model-q8_0.gguf", "--prompt", "hello"),
        ("bailingmoe2/hf", "--prompt-ids", "1,40,41,42"),
    ] {
        let model = fixture(rel);
        let args = [
            "generate",
            "--model",
            &model,
            prompt_flag,
            prompt,
            "--max-tokens",
            "8",
            "--temperature",
            "0",
        ];
        let run = finllm(dir.path(), &args, &[]);
        assert_eq!(run.code, 0, "{rel}: {}", run.stderr);
        assert!(!run.stdout.trim().is_empty(), "{rel}");
        assert!(run.stderr.contains("prefill:") && run.stderr.contains("tok/s"), "{}", run.stderr);
    }
}

#[test]
fn same_seed_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("llama/hf");
    let run = |seed: &str| {
        let args = [
            "generate",
            "--model",
            &model,
            "--prompt-ids",
            "1,20,30,40",
            "--max-tokens",
            "16",
            "--temperature",
            "1.5",
            "--top-k",
            "0",
            "--top-p",
            "1",
            "--min-p",
            "0",
            "--seed",
            seed,
        ];
        let r = finllm(dir.path(), &args, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn errors_name_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf").display().to_string();
    let run = finllm(dir.path(), &["generate", "--model", &missing, "--prompt-ids", "1"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("nope.gguf"), "{}", run.stderr);

    let model = fixture("llama/model-f32.gguf");
    let args = ["generate", "--model", &model, "--prompt-ids", "1,2,3,4,5", "--ctx", "4"];
    let run = finllm(dir.path(), &args, &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("context window"), "{}", run.stderr);
}
