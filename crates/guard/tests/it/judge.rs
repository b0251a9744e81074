//! The LLM judge against a local fake OpenAI-compatible endpoint: it is asked only in the uncertain
//! band, its verdict replaces the classifier's, and a slow, failing or rambling endpoint leaves the
//! classifier's verdict in place.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use guard::{
    Guard, Judge, JudgeStyle, OpenAiJudge, Policy, Verdict,
    guard::Direction,
    judge::{parse_answer, parse_verdict},
};

/// A one-thread HTTP server answering every POST with `content` as the assistant message (after
/// `delay`, with `status`); it records the request bodies it received.
struct FakeEndpoint {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn fake(status: u16, content: &'static str, delay: Duration) -> FakeEndpoint {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            std::thread::sleep(delay);
            let payload = serde_json::json!({
                "id": "x", "object": "chat.completion", "model": "judge",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
            })
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            );
        }
    });
    FakeEndpoint { url, requests }
}

fn judged(endpoint: &FakeEndpoint, text: &str, policy: &Policy) -> guard::Judgement {
    let judge = OpenAiJudge::new(&endpoint.url, "judge-model", Some("k".into()));
    Guard::builtin().unwrap().with_judge(Arc::new(judge)).check_input(text, policy)
}

/// A policy whose uncertain band covers every score, so the judge is asked about any text.
fn always_ask() -> Policy {
    let mut p = Policy::default();
    p.judge.low = 0.0;
    p.judge.high = 1.0;
    p
}

#[test]
fn the_judge_decides_the_uncertain_band() {
    let unsafe_ = r#"{"verdict": "unsafe", "categories": ["CRI", "XYZ"], "reason": "asks for a laundering method"}"#;
    let endpoint = fake(200, unsafe_, Duration::ZERO);
    let j = judged(&endpoint, "基金定投和一次性买入哪个收益更高？", &always_ask());
    assert_eq!(j.verdict, Verdict::Unsafe, "{}", serde_json::to_string(&j).unwrap());
    assert!(j.categories.contains(&"CRI".to_owned()));
    assert!(!j.categories.contains(&"XYZ".to_owned()), "unknown categories are dropped");
    let outcome = j.judge.as_ref().unwrap();
    assert_eq!(outcome.verdict.as_ref().unwrap().reason, "asks for a laundering method");
    let sent = endpoint.requests.lock().unwrap();
    let body: serde_json::Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(body["model"], "judge-model");
    assert!(body["messages"][1]["content"].as_str().unwrap().contains("基金定投"));
}

#[test]
fn the_judge_can_clear_a_text() {
    let endpoint = fake(200, r#"{"verdict":"safe","categories":[],"reason":"ok"}"#, Duration::ZERO);
    let j = judged(&endpoint, "女生是不是天生就不适合学金融？", &always_ask());
    assert_eq!(j.verdict, Verdict::Safe);
}

#[test]
fn outside_the_band_and_on_lexicon_blocks_the_judge_is_not_asked() {
    let endpoint = fake(200, r#"{"verdict":"safe"}"#, Duration::ZERO);
    let mut never = Policy::default();
    never.judge.enabled = false;
    assert_eq!(judged(&endpoint, "教我怎么洗钱不被发现", &never).verdict, Verdict::Unsafe);
    // A lexicon block is certain: no judge can clear it.
    assert_eq!(
        judged(&endpoint, "how to make a bomb at home", &always_ask()).verdict,
        Verdict::Unsafe
    );
    // Too short to judge at all.
    assert!(judged(&endpoint, "hello", &always_ask()).judge.is_none());
    assert!(endpoint.requests.lock().unwrap().is_empty());
}

#[test]
fn failures_and_timeouts_keep_the_classifier_verdict() {
    let text = "女生是不是天生就不适合学金融？";
    let plain = Guard::builtin().unwrap().check_input(text, &Policy::default());
    let mut slow_policy = always_ask();
    slow_policy.judge.budget_ms = 200;
    for (endpoint, needle) in [
        (fake(500, "boom", Duration::ZERO), "HTTP 500"),
        (fake(200, "I cannot decide.", Duration::ZERO), "no verdict"),
        (fake(200, r#"{"verdict":"safe"}"#, Duration::from_secs(3)), ""),
    ] {
        let j = judged(&endpoint, text, &slow_policy);
        assert_eq!(j.verdict, plain.verdict, "{needle}");
        let outcome = j.judge.unwrap();
        assert!(outcome.verdict.is_none());
        assert!(outcome.error.as_deref().unwrap().contains(needle), "{:?}", outcome.error);
    }
    let down = OpenAiJudge::new("http://127.0.0.1:9/v1", "m", None);
    let err = down.judge(text, Direction::Input, Duration::from_millis(500)).unwrap_err();
    assert!(matches!(err, guard::GuardError::Judge { .. }), "{err}");
}

#[test]
fn verdicts_are_read_from_json_or_words() {
    let check = |answer: &str, expect: Option<Verdict>| {
        assert_eq!(parse_verdict(answer).map(|v| v.verdict), expect, "{answer}");
    };
    check(r#"{"verdict": "controversial", "categories": ["DIS"]}"#, Some(Verdict::Controversial));
    check(
        "好的。\n```json\n{\"verdict\":\"unsafe\",\"categories\":[\"cri\"]}\n```",
        Some(Verdict::Unsafe),
    );
    check("Verdict: unsafe, it asks for a weapon.", Some(Verdict::Unsafe));
    check("该内容不安全。", Some(Verdict::Unsafe));
    check("This is safe.", Some(Verdict::Safe));
    check(r#"{"verdict": "maybe"}"#, None);
    check("", None);
    assert_eq!(
        parse_verdict(r#"{"verdict":"unsafe","categories":["cri"," pri "]}"#).unwrap().categories,
        ["CRI", "PRI"]
    );
}

#[test]
fn guard_models_answer_in_their_own_formats() {
    let check = |style: JudgeStyle, answer: &str, expect: Option<(Verdict, &[&str])>| {
        let got = parse_answer(style, answer).map(|v| (v.verdict, v.categories));
        let expect = expect.map(|(v, c)| (v, c.iter().map(|c| (*c).to_owned()).collect()));
        assert_eq!(got, expect, "{style:?}: {answer}");
    };
    let qwen = JudgeStyle::Qwen3guard;
    check(qwen, "Safety: Unsafe\nCategories: Violent", Some((Verdict::Unsafe, &["VIO"])));
    check(
        qwen,
        "Safety: Controversial\nCategories: Politically Sensitive Topics",
        Some((Verdict::Controversial, &["POL"])),
    );
    check(
        qwen,
        "Safety: Unsafe\nCategories: Non-violent Illegal Acts, PII, Jailbreak\nRefusal: No",
        Some((Verdict::Unsafe, &["CRI", "PRI"])),
    );
    check(qwen, "Safety: Safe\nCategories: None\nRefusal: Yes", Some((Verdict::Safe, &[])));
    let llama = JudgeStyle::LlamaGuard;
    check(llama, "safe", Some((Verdict::Safe, &[])));
    check(llama, "\n\nunsafe\nS2,S10", Some((Verdict::Unsafe, &["CRI", "DIS"])));
    check(llama, "unsafe\nS13", Some((Verdict::Unsafe, &["POL"])));
    // An answer outside the style's format falls back to the general reading; none at all is none.
    check(llama, r#"{"verdict":"controversial"}"#, Some((Verdict::Controversial, &[])));
    check(qwen, "I can't help with that.", None);
    assert_eq!("qwen3guard".parse::<JudgeStyle>(), Ok(JudgeStyle::Qwen3guard));
    assert_eq!("llama-guard".parse::<JudgeStyle>(), Ok(JudgeStyle::LlamaGuard));
    assert!("gpt".parse::<JudgeStyle>().unwrap_err().contains("qwen3guard"));
}

#[test]
fn guard_models_get_the_bare_text_as_the_turn_they_judge() {
    let endpoint =
        fake(200, "Safety: Unsafe\nCategories: Non-violent Illegal Acts", Duration::ZERO);
    let judge = OpenAiJudge::new(&endpoint.url, "qwen3guard", Some("secret-key".into()))
        .with_style(JudgeStyle::Qwen3guard);
    assert!(!format!("{judge:?}").contains("secret-key"), "the key stays out of logs");
    let text = "基金定投和一次性买入哪个收益更高？";
    let v = judge.judge(text, Direction::Input, Duration::from_secs(5)).unwrap();
    assert_eq!((v.verdict, v.categories), (Verdict::Unsafe, vec!["CRI".to_owned()]));
    let v = judge.judge("好的，下面是步骤。", Direction::Output, Duration::from_secs(5)).unwrap();
    assert_eq!(v.verdict, Verdict::Unsafe);
    let sent = endpoint.requests.lock().unwrap();
    let input: serde_json::Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(input["messages"], serde_json::json!([{"role": "user", "content": text}]));
    let output: serde_json::Value = serde_json::from_str(&sent[1]).unwrap();
    assert_eq!(
        output["messages"][1],
        serde_json::json!({"role": "assistant", "content": "好的，下面是步骤。"})
    );
    assert_eq!(output["messages"][0]["role"], "user");
}
