//! `finllm serve` with no model configured: it pulls `server.default_model` on first run (here from a
//! local imitation of the hub) and serves it, reuses the pulled copy later, and when the hub cannot be
//! reached (or downloads are off) it warns once and starts anyway, with model endpoints saying how to get one.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::fake_hub::{FakeFile, FakeHub, FakeRepo};
use crate::serve::http_get;

/// Starts `finllm serve` and returns it with its address and the stderr lines up to "listening on".
fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_finllm"));
    for (var, _) in std::env::vars() {
        if var.starts_with("FINLLM_") {
            cmd.env_remove(var);
        }
    }
    let mut child = cmd
        .current_dir(dir)
        .args(["--data-dir", "data", "serve", "--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .env("FINLLM_GUARD_ENABLED", "false")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut log, mut line) = (String::new(), String::new());
    while stderr.read_line(&mut line).unwrap() > 0 {
        log.push_str(&line);
        if let Some(addr) = line.split("listening on http://").nth(1) {
            let addr = addr.trim().to_owned();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in stderr.lines() {});
            return (child, addr, log);
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve exited before listening: {log}");
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    child.wait().unwrap();
}

#[test]
fn pulls_the_default_model_on_first_run_and_reuses_it() {
    let q8 = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/fixtures/qwen2/model-q8_0.gguf"),
    )
    .unwrap();
    let hub = FakeHub::start(vec![FakeRepo {
        name: "tiny/chat-GGUF".to_owned(),
        files: vec![FakeFile::new("tiny-q8_0.gguf", q8)],
        token: None,
    }]);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("FINLLM_HUB_ENDPOINT", hub.endpoint.as_str()),
        ("FINLLM_SERVER_DEFAULT_MODEL", "tiny/chat-GGUF/tiny-q8_0.gguf"),
    ];
    let (child, addr, log) = start(dir.path(), &[], &env);
    assert!(log.contains("pulling the default model"), "{log}");
    assert!(http_get(&addr, "/ready").starts_with("HTTP/1.1 200"), "{log}");
    stop(child);
    assert!(dir.path().join("data/models/tiny/chat-GGUF/tiny-q8_0.gguf").is_file());

    let requests = hub.log().len();
    let (child, addr, log) = start(dir.path(), &["--no-download"], &env);
    assert!(log.contains("serving the default model"), "{log}");
    assert!(http_get(&addr, "/ready").starts_with("HTTP/1.1 200"));
    stop(child);
    assert_eq!(hub.log().len(), requests, "the second start asked the hub nothing");
}

#[test]
fn without_a_hub_it_warns_and_starts_without_a_model() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, log) = start(dir.path(), &[], &[("FINLLM_HUB_ENDPOINT", down.as_str())]);
    assert_eq!(log.matches("could not download the default model").count(), 1, "{log}");
    assert!(log.contains("cannot reach the model hub"), "{log}");
    let ready = http_get(&addr, "/ready");
    assert!(ready.starts_with("HTTP/1.1 503") && ready.contains("finllm pull"), "{ready}");
    assert!(http_get(&addr, "/health").starts_with("HTTP/1.1 200"));
    stop(child);

    let (child, _, log) = start(dir.path(), &["--no-download"], &[]);
    assert!(log.contains("downloads are off"), "{log}");
    stop(child);
}
