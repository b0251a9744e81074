//! Finding a continuation's tokens by text offset in echoed prompt log-probabilities.

use eval::backend::{continuation_logprob, tail_logprob, token_count};
use serde_json::json;

#[test]
fn sums_the_continuation_tokens_by_byte_offset() {
    let prompt = "答案：B";
    let ctx = "答案：".len();
    let lp = json!({"tokens": ["答案", "：", "B"], "token_logprobs": [null, -1.0, -0.25], "text_offset": [0, 6, 9]});
    assert_eq!(continuation_logprob(&lp, prompt, ctx).unwrap().unwrap(), -0.25);
}

#[test]
fn character_offsets_are_recognised() {
    let prompt = "答案：B";
    let lp = json!({"tokens": ["答案", "：", "B"], "token_logprobs": [null, -1.0, -0.5], "text_offset": [0, 2, 3]});
    assert_eq!(continuation_logprob(&lp, prompt, "答案：".len()).unwrap().unwrap(), -0.5);
}

#[test]
fn a_token_straddling_the_boundary_counts() {
    let lp =
        json!({"tokens": ["ab", "c d"], "token_logprobs": [null, -2.0], "text_offset": [0, 2]});
    assert_eq!(continuation_logprob(&lp, "abc d", 3).unwrap().unwrap(), -2.0);
    let bad = json!({"tokens": ["ab"], "token_logprobs": [null, -1.0], "text_offset": [0]});
    assert!(continuation_logprob(&bad, "ab", 1).is_err());
}

#[test]
fn offsets_that_do_not_describe_the_prompt_fall_back_to_token_counts() {
    // Byte-fallback tokens of 需 rendered as U+FFFD: offsets count 3 bytes per replacement character.
    let prompt = "需：A";
    let lp = json!({"tokens": ["\u{fffd}", "\u{fffd}", "\u{fffd}", "：", "A"],
        "token_logprobs": [null, -1.0, -1.0, -0.5, -0.125], "text_offset": [0, 3, 6, 9, 12]});
    assert_eq!(continuation_logprob(&lp, prompt, "需：".len()).unwrap(), None);
    let context = json!({"tokens": ["\u{fffd}", "\u{fffd}", "\u{fffd}", "："], "token_logprobs": [null, -1.0, -1.0, -0.5]});
    assert_eq!(tail_logprob(&lp, token_count(&context).unwrap()).unwrap(), -0.125);
    assert!(tail_logprob(&lp, 5).is_err());
}

/// A one-thread HTTP server answering each request with the next of `replies` (status, body), then
/// closing the connection; returns its base URL.
fn serve_replies(replies: Vec<(u16, String)>) -> String {
    serve_and_capture(replies).0
}

/// [`serve_replies`], also handing over each request body.
fn serve_and_capture(replies: Vec<(u16, String)>) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let (sender, bodies) = std::sync::mpsc::channel();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (status, body) in replies {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut request = vec![0; length];
            reader.read_exact(&mut request).unwrap();
            let _ = sender.send(String::from_utf8_lossy(&request).into_owned());
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    (format!("http://{addr}"), bodies)
}

#[test]
fn openai_backend_retries_server_errors_and_gives_up_on_client_errors() {
    use eval::backend::{Backend, Limits, OpenAi};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ok = json!({"choices": [{"text": "答案：B"}]}).to_string();
    let base = serve_replies(vec![(503, "{}".into()), (429, "{}".into()), (200, ok)]);
    let backend =
        OpenAi::new(&base, "m", None, false, Limits::new(1, 0.0)).unwrap().with_retries(2);
    assert_eq!(runtime.block_on(backend.generate("q", 8)).unwrap(), "答案：B");

    let base = serve_replies(vec![(400, r#"{"error": {"message": "bad"}}"#.into())]);
    let backend = OpenAi::new(&base, "m", None, false, Limits::new(1, 0.0)).unwrap();
    let err = runtime.block_on(backend.generate("q", 8)).unwrap_err().to_string();
    assert!(err.contains("HTTP 400") && err.contains("bad"), "{err}");

    let base = serve_replies(vec![(503, "{}".into()), (503, "{}".into())]);
    let backend =
        OpenAi::new(&base, "m", None, false, Limits::new(1, 0.0)).unwrap().with_retries(1);
    let err = runtime.block_on(backend.generate("q", 8)).unwrap_err().to_string();
    assert!(err.contains("after 2 tries"), "{err}");

    let chat = OpenAi::new(&base, "m", None, true, Limits::new(1, 0.0)).unwrap();
    let err = runtime.block_on(chat.loglik("q", &["A".into()])).unwrap_err();
    assert!(matches!(err, eval::EvalError::Unsupported(_)), "{err}");
}

#[test]
fn images_go_as_content_parts_and_a_refusing_model_is_unsupported() {
    use eval::backend::{Backend, Limits, OpenAi};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ok = json!({"choices": [{"message": {"content": "答案：A"}}]}).to_string();
    let refuse = r#"{"error": {"message": "this model does not accept image content"}}"#;
    let (base, bodies) = serve_and_capture(vec![(200, ok), (400, refuse.into())]);
    let chat = OpenAi::new(&base, "vl", None, true, Limits::new(1, 0.0)).unwrap();
    assert!(chat.supports_images());
    let images = vec!["data:image/png;base64,iVBORw0KGgo=".to_string()];
    let out = runtime.block_on(chat.generate_with_images("图中是什么？", &images, 8)).unwrap();
    assert_eq!(out, "答案：A");
    let sent: serde_json::Value = serde_json::from_str(&bodies.recv().unwrap()).unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"type": "text", "text": "图中是什么？"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}])
    );
    let err = runtime.block_on(chat.generate_with_images("图中是什么？", &images, 8)).unwrap_err();
    assert!(matches!(err, eval::EvalError::Unsupported(_)), "{err}");
    let completions = OpenAi::new(&base, "vl", None, false, Limits::new(1, 0.0)).unwrap();
    assert!(!completions.supports_images());
}

/// An echo answer's `logprobs` for `prompt` split into single-byte tokens, the last one scored `last`.
fn echoed(prompt: &str, last: f64) -> serde_json::Value {
    let tokens: Vec<String> = prompt.chars().map(String::from).collect();
    let offsets: Vec<usize> = prompt.char_indices().map(|(i, _)| i).collect();
    let mut lps: Vec<serde_json::Value> = vec![json!(null)];
    lps.extend((1..tokens.len()).map(|_| json!(-1.0)));
    *lps.last_mut().unwrap() = json!(last);
    json!({"tokens": tokens, "token_logprobs": lps, "text_offset": offsets})
}

#[test]
fn all_options_of_a_sample_go_as_one_request_in_prompt_order() {
    use eval::backend::{Backend, Limits, OpenAi};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Choices come back out of order; `index` says which prompt each scores.
    let answer = json!({"choices": [
        {"index": 1, "text": "答案：B", "logprobs": echoed("答案：B", -0.5)},
        {"index": 0, "text": "答案：A", "logprobs": echoed("答案：A", -2.0)},
    ]});
    let (base, bodies) = serve_and_capture(vec![(200, answer.to_string())]);
    let backend = OpenAi::new(&base, "m", None, false, Limits::new(1, 0.0)).unwrap();
    let lps = runtime.block_on(backend.loglik("答案：", &["A".into(), "B".into()])).unwrap();
    assert_eq!(lps, vec![-2.0, -0.5]);
    let sent: serde_json::Value = serde_json::from_str(&bodies.recv().unwrap()).unwrap();
    assert_eq!(sent["prompt"], json!(["答案：A", "答案：B"]));
    assert_eq!((sent["echo"].clone(), sent["max_tokens"].clone()), (json!(true), json!(0)));
    assert!(bodies.try_recv().is_err(), "one request for both options");

    // A short answer is an error, not a silent misalignment.
    let short = json!({"choices": [{"index": 0, "logprobs": echoed("答案：A", -2.0)}]});
    let base = serve_replies(vec![(200, short.to_string())]);
    let backend = OpenAi::new(&base, "m", None, false, Limits::new(1, 0.0)).unwrap();
    let err = runtime.block_on(backend.loglik("答案：", &["A".into(), "B".into()])).unwrap_err();
    assert!(err.to_string().contains("2 prompts"), "{err}");
}

#[test]
fn an_endpoint_refusing_prompt_lists_gets_one_prompt_per_request() {
    use eval::backend::{Backend, Limits, OpenAi};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let one = |prompt: &str, lp: f64| {
        (200, json!({"choices": [{"index": 0, "logprobs": echoed(prompt, lp)}]}).to_string())
    };
    let refuse = (400, r#"{"error": {"message": "prompt must be a string"}}"#.to_owned());
    let (base, bodies) = serve_and_capture(vec![
        refuse,
        one("问：A", -1.5),
        one("问：B", -0.25),
        one("问：A", -3.0),
        one("问：B", -4.0),
    ]);
    let backend = OpenAi::new(&base, "m", None, false, Limits::new(1, 0.0)).unwrap();
    let options = ["A".to_owned(), "B".to_owned()];
    assert_eq!(runtime.block_on(backend.loglik("问：", &options)).unwrap(), vec![-1.5, -0.25]);
    // Remembered: the next sample asks one prompt per request straight away.
    assert_eq!(runtime.block_on(backend.loglik("问：", &options)).unwrap(), vec![-3.0, -4.0]);
    let sent: Vec<serde_json::Value> =
        bodies.try_iter().map(|b| serde_json::from_str(&b).unwrap()).collect();
    let prompts: Vec<&serde_json::Value> = sent.iter().map(|b| &b["prompt"]).collect();
    assert_eq!(
        prompts,
        [
            &json!(["问：A", "问：B"]),
            &json!("问：A"),
            &json!("问：B"),
            &json!("问：A"),
            &json!("问：B")
        ]
    );
}

#[test]
fn a_tokenizer_prefix_before_the_echoed_prompt_is_skipped() {
    // SentencePiece's dummy-prefix `▁` spelled in byte-fallback tokens comes back as its own piece before
    // the prompt, and the served offsets count it in the first token's place (as finllm serve answers
    // with the fixture model): offsets are counted from the tokens' text instead.
    let prompt = "答：AB";
    let lp = json!({
        "tokens": ["", "", "▁", "", "", "答", "", "", "：", "A", "B"],
        "token_logprobs": [null, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -0.5, -0.25],
        "text_offset": [0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 10]});
    assert_eq!(continuation_logprob(&lp, prompt, "答：".len()).unwrap(), Some(-0.75));
    // The byte tokens of a continuation's first character count with it.
    let prompt = "答：需";
    let lp = json!({
        "tokens": ["▁", "答", "：", "", "", "需"],
        "token_logprobs": [null, -1.0, -1.0, -0.5, -0.25, -0.125],
        "text_offset": [0, 3, 6, 9, 9, 9]});
    assert_eq!(continuation_logprob(&lp, prompt, "答：".len()).unwrap(), Some(-0.875));
    // Text that is not the prompt is still no match.
    assert_eq!(continuation_logprob(&lp, "答：要", "答：".len()).unwrap(), None);
}

#[test]
fn after_offsets_fail_the_context_is_scored_first_in_the_same_request() {
    use eval::backend::{Backend, Limits, OpenAi};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Byte tokens shown as U+FFFD: offsets cannot place the options, token counts can.
    let fffd = |last: &str, lps: &[f64]| {
        let mut tokens = vec!["\u{fffd}"; 3];
        tokens.push("：");
        tokens.extend([last].iter().filter(|t| !t.is_empty()));
        let mut token_logprobs = vec![json!(null)];
        token_logprobs.extend(lps.iter().map(|lp| json!(lp)));
        let offsets: Vec<usize> = (0..tokens.len()).map(|i| 3 * i).collect();
        json!({"tokens": tokens, "token_logprobs": token_logprobs, "text_offset": offsets})
    };
    let context = fffd("", &[-1.0, -1.0, -0.5]);
    let a = fffd("A", &[-1.0, -1.0, -0.5, -0.25]);
    let b = fffd("B", &[-1.0, -1.0, -0.5, -2.0]);
    let reply = |logprobs: Vec<serde_json::Value>| {
        let choices: Vec<serde_json::Value> = logprobs
            .into_iter()
            .enumerate()
            .map(|(i, lp)| json!({"index": i, "logprobs": lp}))
            .collect();
        (200, json!({ "choices": choices }).to_string())
    };
    let (base, bodies) = serve_and_capture(vec![
        reply(vec![a.clone(), b.clone()]),
        reply(vec![context.clone()]),
        reply(vec![context, a, b]),
    ]);
    let backend = OpenAi::new(&base, "m", None, false, Limits::new(1, 0.0)).unwrap();
    let options = ["A".to_owned(), "B".to_owned()];
    for _ in 0..2 {
        assert_eq!(runtime.block_on(backend.loglik("需：", &options)).unwrap(), vec![-0.25, -2.0]);
    }
    let prompts: Vec<serde_json::Value> = bodies
        .try_iter()
        .map(|b| serde_json::from_str::<serde_json::Value>(&b).unwrap()["prompt"].clone())
        .collect();
    assert_eq!(
        prompts,
        [json!(["需：A", "需：B"]), json!("需："), json!(["需：", "需：A", "需：B"])],
        "the second sample asks once, context first"
    );
}
