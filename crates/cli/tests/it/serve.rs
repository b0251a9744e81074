//! `finllm serve` as a user runs it: starts on embedded defaults without a model, answers, and stops on
//! SIGTERM; bad listen settings are configuration errors.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, ChildStderr, Command, Stdio},
};

use crate::finllm;

pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Starts `finllm serve --port 0 --no-download <args>` in `dir`; returns the process, the address it
/// listens on, and the rest of its log.
pub fn spawn_serve(
    dir: &std::path::Path,
    args: &[&OsStr],
) -> (Child, String, BufReader<ChildStderr>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_finllm"))
        .current_dir(dir)
        .args(["serve", "--port", "0", "--no-download"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        addr = line.split("listening on http://").nth(1).map(|a| a.trim().to_owned());
        line.clear();
    }
    (child, addr.expect("serve never said where it listens"), stderr)
}

#[test]
fn serve_starts_without_a_model_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _log) = spawn_serve(dir.path(), &[]);
    assert!(http_get(&addr, "/health").starts_with("HTTP/1.1 200"));
    let models = http_get(&addr, "/v1/models");
    assert!(models.contains(r#""data":[]"#), "{models}");
    let ready = http_get(&addr, "/ready");
    assert!(ready.starts_with("HTTP/1.1 503") && ready.contains("model_unavailable"), "{ready}");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status} after SIGTERM");
}

#[test]
fn bad_listen_settings_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        finllm(dir.path(), &["serve", "--host", "0.0.0.0", "--port", "0", "--no-download"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("refusing to listen on 0.0.0.0"), "{}", run.stderr);
    let run = finllm(dir.path(), &["serve", "--port", "70000", "--no-download"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--port") && run.stderr.contains("server.port"), "{}", run.stderr);
    let run = finllm(dir.path(), &["serve", "--upstream", "ftp://x", "--no-download"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}
