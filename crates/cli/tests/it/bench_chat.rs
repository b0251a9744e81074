//! `finllm chat` with piped stdin (history is kept across turns, `/reset` forgets it, `/exit` quits) and
//! `finllm bench --json` on the committed tiny models.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::finllm;

fn fixture(rel: &str) -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/fixtures")
        .join(rel)
        .display()
        .to_string()
}

/// Prompt-token counts the chat reports on stderr, one per answered turn.
fn chat_turns(model: &str, input: &str) -> (Vec<usize>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_finllm"))
        .current_dir(dir.path())
        .args(["chat", "--model", model, "--max-tokens", "6", "--temperature", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let counts = stderr
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split(" prompt tokens").next()?.parse().ok())
        .collect();
    (counts, stderr)
}

#[test]
fn chat_keeps_history_and_resets() {
    // Qwen2 (ChatML), Llama 3 and Ling's `<role>…<|role_end|>` template on a Bailing MoE model.
    for model in [
        fixture("qwen2/model-q8_0.gguf"),
        fixture("llama/model-q8_0.gguf"),
        fixture("bailingmoe2/model-q8_0.gguf"),
    ] {
        let (turns, stderr) =
            chat_turns(&model, "hello\nhello\n/reset\nhello\n/exit\nnever read\n");
        assert_eq!(turns.len(), 3, "{stderr}");
        assert!(turns[1] > turns[0] + 1, "the second turn carries the first: {turns:?}");
        assert_eq!(turns[2], turns[0], "after /reset the prompt is the first one again: {turns:?}");
        assert!(stderr.contains("[conversation reset]"), "{stderr}");
    }
}

#[test]
fn chat_with_an_unknown_model_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["chat", "--model", "missing.gguf"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no model `missing.gguf`"), "{}", run.stderr);
}

#[test]
fn bench_reports_speed_per_depth_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("llama/model-q8_0.gguf");
    let args = [
        "bench",
        "--model",
        &model,
        "--depths",
        "0,40",
        "--prompt-tokens",
        "24",
        "--gen-tokens",
        "4",
        "--rounds",
        "2",
        "--json",
    ];
    let run = finllm(dir.path(), &args, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.iter().map(|r| r["depth"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 40]);
    for r in results {
        assert_eq!(r["prefill_rounds"].as_array().unwrap().len(), 2);
        assert!(r["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    }
    let too_deep = ["bench", "--model", &model, "--depths", "100000"];
    let run = finllm(dir.path(), &too_deep, &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("exceeds the model's context window"), "{}", run.stderr);
}
