//! `finllm pull` and `finllm models` against a local imitation of the hub: a pulled GGUF is listed and
//! usable by name; missing repos, gated repos, a corrupted download and an unreachable hub fail with exit
//! code 1 and a message naming the cause; a dropped transfer resumes.

use std::path::{Path, PathBuf};

use crate::fake_hub::{FakeFile, FakeHub, FakeRepo, Quirk};
use crate::{Run, finllm};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../engine/fixtures").join(rel)
}

fn tiny_repo() -> FakeRepo {
    let q8 = std::fs::read(fixture("qwen2/model-q8_0.gguf")).unwrap();
    let f32 = std::fs::read(fixture("qwen2/model-f32.gguf")).unwrap();
    FakeRepo {
        name: "tiny/qwen2-GGUF".to_owned(),
        files: vec![
            FakeFile::new("README.md", b"# tiny".to_vec()),
            FakeFile::new("tiny-q8_0.gguf", q8).quirk(Quirk::Redirect),
            FakeFile::new("tiny-f32.gguf", f32).quirk(Quirk::DropAfter(100_000)),
        ],
        token: None,
    }
}

fn run_with(hub: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec!["--data-dir", "data"];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    env.push(("FINLLM_HUB_ENDPOINT", hub));
    finllm(dir, &all, &env)
}

#[test]
fn pull_then_list_then_generate_by_name() {
    let hub = FakeHub::start(vec![tiny_repo()]);
    let dir = tempfile::tempdir().unwrap();
    let run = run_with(&hub.endpoint, dir.path(), &["pull", "tiny/qwen2-GGUF:Q8_0"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.trim().ends_with("tiny-q8_0.gguf"), "{}", run.stdout);
    assert!(dir.path().join("data/models/tiny/qwen2-GGUF/tiny-q8_0.gguf").is_file());

    // The f32 file's first transfer is cut off: the pull resumes it with a Range request.
    let run = run_with(&hub.endpoint, dir.path(), &["pull", "tiny/qwen2-GGUF/tiny-f32.gguf"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(hub.log().iter().any(|l| l.contains("tiny-f32.gguf range=100000-")), "{:?}", hub.log());

    let run = run_with(&hub.endpoint, dir.path(), &["models", "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rows: Vec<(String, String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("-").to_owned();
            (s("name"), s("format"), s("quant"))
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("tiny/qwen2-GGUF/tiny-f32.gguf".into(), "gguf".into(), "F32".into()),
            ("tiny/qwen2-GGUF/tiny-q8_0.gguf".into(), "gguf".into(), "Q8_0".into()),
        ]
    );
    let table = run_with(&hub.endpoint, dir.path(), &["models"], &[]);
    assert!(table.stdout.starts_with("NAME") && table.stdout.contains("qwen2"), "{}", table.stdout);

    let generate =
        ["generate", "--model", "tiny/qwen2-GGUF:Q8_0", "--prompt", "hi", "--max-tokens", "3"];
    let run = run_with(&hub.endpoint, dir.path(), &generate, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let generate =
        ["generate", "--model", "tiny/qwen2-GGUF", "--prompt", "hi", "--max-tokens", "3"];
    let run = run_with(&hub.endpoint, dir.path(), &generate, &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("matches several models"), "{}", run.stderr);
    let generate = ["generate", "--model", "nobody/nothing", "--prompt", "hi"];
    let run = run_with(&hub.endpoint, dir.path(), &generate, &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("finllm pull"), "{}", run.stderr);

    // Pulling again downloads nothing.
    let before = hub.log().len();
    let run = run_with(&hub.endpoint, dir.path(), &["pull", "tiny/qwen2-GGUF:Q8_0"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("already present"), "{}", run.stderr);
    assert!(hub.log()[before..].iter().all(|l| !l.contains("/resolve/")), "{:?}", hub.log());
}

#[test]
fn failures_name_their_cause_and_exit_1() {
    let gated = FakeRepo {
        name: "corp/gated".to_owned(),
        files: vec![FakeFile::new("m.gguf", vec![7; 2048])],
        token: Some("s3cret".to_owned()),
    };
    let bad = FakeRepo {
        name: "a/corrupt".to_owned(),
        files: vec![FakeFile::new("m.gguf", vec![1; 4096]).quirk(Quirk::WrongChecksum)],
        token: None,
    };
    let hub = FakeHub::start(vec![gated, bad]);
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str], env: &[(&str, &str)], code: i32, fragment: &str| {
        let run = run_with(&hub.endpoint, dir.path(), args, env);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(fragment), "{args:?}: {}", run.stderr);
    };
    check(&["pull", "no/such-model"], &[], 1, "no such repo/file");
    check(&["pull", "corp/gated"], &[], 1, "needs a token");
    check(&["pull", "corp/gated"], &[("FINLLM_HUB_TOKEN", "wrong")], 1, "needs a token");
    check(&["pull", "corp/gated"], &[("FINLLM_HUB_TOKEN", "s3cret")], 0, "");
    check(&["pull", "corp/gated/m.gguf"], &[("HF_TOKEN", "s3cret")], 0, "");
    check(&["pull", "a/corrupt"], &[], 1, "checksum mismatch");
    assert!(!dir.path().join("data/models/a/corrupt/m.gguf.part").exists());
    assert!(!dir.path().join("data/models/a/corrupt/m.gguf").exists());
    check(&["pull", "not-a-repo"], &[], 1, "not a model reference");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("http://127.0.0.1:{port}");
    let run = run_with(&down, dir.path(), &["pull", "a/b"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot reach the model hub"), "{}", run.stderr);

    // The token never appears in `finllm config`.
    let run = finllm(dir.path(), &["config"], &[("FINLLM_HUB_TOKEN", "s3cret")]);
    assert!(
        run.stdout.contains("token = \"***\"") && !run.stdout.contains("s3cret"),
        "{}",
        run.stdout
    );
}
