//! SIGTERM while answers are streaming: `finllm serve` stops accepting connections, lets every in-flight
//! stream run to its proper end (`finish_reason`, usage, `[DONE]`), writes their audit records, and exits 0;
//! the audit chain still verifies afterwards.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use crate::{finllm, serve::spawn_serve};

const STREAMS: usize = 4;
const MAX_TOKENS: usize = 3000;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../engine/fixtures/qwen2/model-q8_0.gguf")
}

/// Sends a streaming chat request and returns the connection once the first event has arrived.
fn open_stream(addr: &str) -> (TcpStream, Vec<u8>) {
    let body = serde_json::json!({
        "model": "model-q8_0", "stream": true, "max_tokens": MAX_TOKENS, "temperature": 0,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Summarise the quarterly report."}],
    })
    .to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("data: ") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream closed before its first event");
        received.extend_from_slice(&buf[..n]);
    }
    (stream, received)
}

#[test]
fn sigterm_drains_in_flight_streams_refuses_new_connections_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture();
    let (mut child, addr, mut stderr) =
        spawn_serve(dir.path(), &["--model".as_ref(), model.as_os_str()]);
    // Keep draining the log so the server never blocks on a full pipe; keep it for failure messages.
    let log = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });

    let mut streams: Vec<(TcpStream, Vec<u8>)> = (0..STREAMS).map(|_| open_stream(&addr)).collect();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());

    // New connections are refused once the signal is handled (the streams are still being generated).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(&addr) {
            Err(_) => break,
            Ok(probe) => drop(probe),
        }
        assert!(Instant::now() < deadline, "still accepting connections 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }

    for (i, (stream, received)) in streams.iter_mut().enumerate() {
        stream.read_to_end(received).unwrap();
        let text = String::from_utf8_lossy(received);
        assert!(text.starts_with("HTTP/1.1 200"), "stream {i}: {}", &text[..text.len().min(300)]);
        assert!(text.contains("data: [DONE]"), "stream {i} ended without [DONE]");
        assert!(text.contains(r#""finish_reason":"length""#), "stream {i} has no final event");
        assert!(
            text.contains(&format!(r#""completion_tokens":{MAX_TOKENS}"#)),
            "stream {i} was cut short"
        );
    }
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "serve exited with {status} after SIGTERM:\n{log}");
    assert!(log.contains("draining in-flight requests"), "{log}");

    // Every request and its response made it into the chain, and the chain verifies.
    let run = finllm(dir.path(), &["audit", "verify"], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with(&format!("ok: {} records", 2 * STREAMS)), "{}", run.stdout);
    let run = finllm(dir.path(), &["audit", "export"], &[]);
    let responses = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["record"]["completion_tokens"] == MAX_TOKENS)
        .count();
    assert_eq!(responses, STREAMS, "{}", run.stdout);
}
