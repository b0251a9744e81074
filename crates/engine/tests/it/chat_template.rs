//! Chat templates: exact renders of the built-in formats, golden renders of tool conversations, the
//! `transformers` semantics real templates rely on, and clear errors for broken templates.
//!
//! Golden files live in `tests/data/chat_template/`; regenerate them with `UPDATE_GOLDEN=1 cargo test -p engine`
//! and review the diff.

use std::path::PathBuf;

use engine::chat_template::{
    BuiltinTemplate, ChatMessage, ChatTemplate, TemplateError, TemplateOrigin,
};
use serde_json::{Value, json};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat_template").join(name)
}

fn check_golden(name: &str, got: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display())
    });
    assert_eq!(got, want, "render differs from {}", path.display());
}

fn simple_chat() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "You are precise."),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello!"),
        ChatMessage::new("user", "Rate?"),
    ]
}

/// A tool conversation as an OpenAI client sends it: string-encoded arguments, `null` content.
fn tool_chat() -> (Vec<ChatMessage>, Value) {
    let messages: Vec<ChatMessage> = serde_json::from_value(json!([
        {"role": "system", "content": "You are a banking assistant."},
        {"role": "user", "content": "What is the EUR/CHF rate today? 今天的汇率是多少？"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_fx_rate", "arguments": "{\"base\": \"EUR\", \"quote\": \"CHF\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_fx_rate", "content": "{\"rate\": 0.9412}"},
        {"role": "assistant", "content": "1 EUR = 0.9412 CHF."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}
    ]))
    .unwrap();
    let tools = json!([{
        "type": "function",
        "function": {
            "name": "get_fx_rate",
            "description": "Current exchange rate between two currencies",
            "parameters": {"type": "object", "properties": {"base": {"type": "string"}, "quote": {"type": "string"}},
                           "required": ["base", "quote"]}
        }
    }]);
    (messages, tools)
}

#[test]
fn chatml_renders_qwen_layout() {
    let got =
        ChatTemplate::builtin(BuiltinTemplate::ChatMl).render(&simple_chat(), None, true).unwrap();
    assert_eq!(
        got,
        "<|im_start|>system\nYou are precise.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nRate?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn llama3_renders_header_layout() {
    let got =
        ChatTemplate::builtin(BuiltinTemplate::Llama3).render(&simple_chat(), None, true).unwrap();
    assert_eq!(
        got,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are precise.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n\
         Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nRate?<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn ling_renders_role_tags() {
    let got =
        ChatTemplate::builtin(BuiltinTemplate::Ling).render(&simple_chat(), None, true).unwrap();
    assert_eq!(
        got,
        "<role>SYSTEM</role>You are precise.<|role_end|><role>HUMAN</role>Hi<|role_end|>\
         <role>ASSISTANT</role>Hello!<|role_end|><role>HUMAN</role>Rate?<|role_end|><role>ASSISTANT</role>"
    );
    // Without a system message and without the generation prompt.
    let got = ChatTemplate::builtin(BuiltinTemplate::Ling)
        .render(&simple_chat()[1..2], None, false)
        .unwrap();
    assert_eq!(got, "<role>HUMAN</role>Hi<|role_end|>");
}

#[test]
fn tool_conversations_match_golden_renders() {
    let (messages, tools) = tool_chat();
    for (which, file) in [
        (BuiltinTemplate::ChatMl, "chatml_tools.txt"),
        (BuiltinTemplate::Llama3, "llama3_tools.txt"),
        (BuiltinTemplate::Ling, "ling_tools.txt"),
    ] {
        let template = ChatTemplate::builtin(which);
        let got = template.render(&messages, Some(&tools), true).unwrap();
        // Tool definitions and decoded call arguments reach the prompt.
        assert!(
            got.contains("get_fx_rate") && got.contains(r#""base": "EUR""#),
            "{which:?}:\n{got}"
        );
        assert!(
            got.contains("0.9412") && got.contains("今天的汇率") && got.contains("Thanks"),
            "{which:?}:\n{got}"
        );
        check_golden(file, &got);
    }
}

#[test]
fn ling_groups_consecutive_tool_results_in_one_observation() {
    let messages = vec![
        ChatMessage::new("user", "Two rates"),
        ChatMessage::new("tool", "a"),
        ChatMessage::new("tool", "b"),
    ];
    let got = ChatTemplate::builtin(BuiltinTemplate::Ling).render(&messages, None, true).unwrap();
    assert_eq!(
        got,
        "<role>HUMAN</role>Two rates<|role_end|><role>OBSERVATION</role>\n<tool_response>\na\n</tool_response>\
         \n<tool_response>\nb\n</tool_response><|role_end|><role>ASSISTANT</role>"
    );
}

/// A template written the way Hugging Face templates are: whitespace control from trim_blocks/lstrip_blocks,
/// Python methods, loop controls, `tojson(indent=…)`, `strftime_now`, `bos_token`, `raise_exception`.
const HF_STYLE: &str = r#"{{ bos_token }}
{% for message in messages %}
    {% if message.role == 'skip' %}{% continue %}{% endif %}
    {% if message.role == 'stop' %}{% break %}{% endif %}
    {% if 'tool_calls' in message %}
[calls {{ message.tool_calls | length }}: {{ message.tool_calls[0].function.arguments | tojson(indent=2) }}]
    {% endif %}
[{{ message.role.upper() }}] {{ message.content.strip() }}{% if message.content.strip().startswith('Hi') %} (greeting){% endif %}

{% endfor %}
{% for key, value in extra_map.items() %}{{ key }}={{ value }};{% endfor %}
{% if messages | length > 5 %}{{ raise_exception('too many messages') }}{% endif %}
date={{ strftime_now('%d %b %Y') }} eos={{ eos_token }}
{{ extra_map | tojson(separators=(',', ':'), ensure_ascii=true) }}|{{ {'b': 1, 'a': [1, 2]} | tojson(sort_keys=true, indent=1) }}"#;

#[test]
fn renders_like_transformers() {
    let template =
        ChatTemplate::from_source(HF_STYLE, "<s>", "</s>").unwrap().with_fixed_time(1_721_997_296);
    assert_eq!(template.origin(), TemplateOrigin::Model);
    let mut messages = vec![
        ChatMessage::new("user", "  Hi there  "),
        ChatMessage::new("skip", "hidden"),
        ChatMessage {
            role: "assistant".into(),
            tool_calls: Some(
                serde_json::from_value(json!([
                    {"function": {"name": "f", "arguments": "{\"x\": [1, 2], \"y\": \"é\"}"}}
                ]))
                .unwrap(),
            ),
            ..ChatMessage::default()
        },
        ChatMessage::new("stop", "never shown"),
        ChatMessage::new("user", "after stop"),
    ];
    let mut extra = serde_json::Map::new();
    extra.insert("extra_map".into(), json!({"a": 1, "é": "é"}));
    let got = template.render_with(&messages, None, false, &extra).unwrap();
    // The expected text is what Python's jinja2, configured as in transformers, renders for this input.
    assert_eq!(
        got,
        "<s>\n[USER] Hi there (greeting)\n[calls 1: {\n  \"x\": [\n    1,\n    2\n  ],\n  \"y\": \"é\"\n}]\n[ASSISTANT] \na=1;é=é;date=26 Jul 2024 eos=</s>\n{\"a\":1,\"\\u00e9\":\"\\u00e9\"}|{\n \"a\": [\n  1,\n  2\n ],\n \"b\": 1\n}"
    );
    // raise_exception becomes a typed error that names the template's message.
    messages.push(ChatMessage::new("user", "one more"));
    let err = template.render_with(&messages, None, false, &extra).unwrap_err();
    assert!(matches!(&err, TemplateError::Raised(m) if m == "too many messages"), "{err:?}");
}

#[test]
fn malformed_templates_are_errors_not_panics() {
    for source in
        ["{% for m in messages %}", "{{ messages[0] ", "{% if %}x{% endif %}", "{% endfor %}"]
    {
        let err = ChatTemplate::from_source(source, "", "").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{source:?}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    // Errors that only show at render time are errors too.
    for source in ["{{ messages[0].content | no_such_filter }}", "{{ messages[0].content + 1 }}"] {
        match ChatTemplate::from_source(source, "", "") {
            Err(err) => assert!(matches!(err, TemplateError::Syntax(_)), "{source:?}: {err:?}"),
            Ok(template) => {
                let err =
                    template.render(&[ChatMessage::new("user", "x")], None, true).unwrap_err();
                assert!(matches!(err, TemplateError::Render(_)), "{source:?}: {err:?}");
            }
        }
    }
}

#[test]
fn hf_dir_reads_named_templates_and_special_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "bos_token": {"content": "<s>", "special": true},
        "eos_token": "</s>",
        "chat_template": [
            {"name": "default", "template": "{{ bos_token }}default:{{ messages[0].content }}{{ eos_token }}"},
            {"name": "tool_use", "template": "tools:{{ tools | length }}"}
        ]
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let template = ChatTemplate::from_hf_dir(dir.path()).unwrap();
    let messages = [ChatMessage::new("user", "hi")];
    assert_eq!(template.render(&messages, None, true).unwrap(), "<s>default:hi</s>");
    assert_eq!(template.render(&messages, Some(&json!([{}, {}])), true).unwrap(), "tools:2");

    // A folder without a template falls back by model type.
    let bare = tempfile::tempdir().unwrap();
    std::fs::write(bare.path().join("config.json"), r#"{"model_type": "bailing_moe_v2"}"#).unwrap();
    let template = ChatTemplate::from_hf_dir(bare.path()).unwrap();
    assert_eq!(template.origin(), TemplateOrigin::Builtin(BuiltinTemplate::Ling));

    // A malformed template list is a configuration error.
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"chat_template": [{"name": "default"}]}"#,
    )
    .unwrap();
    assert!(matches!(ChatTemplate::from_hf_dir(dir.path()), Err(TemplateError::Config(_))));
}

#[test]
fn messages_deserialize_from_openai_json() {
    let (messages, _) = tool_chat();
    assert_eq!(messages[2].content, "");
    let call = &messages[2].tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (call.id.as_deref(), call.kind.as_str(), call.function.name.as_str()),
        (Some("call_1"), "function", "get_fx_rate")
    );
    assert_eq!(messages[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(messages[5].content, "Thanks");
    // And serialize back without the absent fields.
    let back = serde_json::to_value(&messages[1]).unwrap();
    assert_eq!(back.as_object().unwrap().len(), 2);
}

/// A reasoning-model template in the style of Qwen3's (reverse slicing, namespaces, `is string`, chained
/// `split`/`strip` methods, `enable_thinking` passed as an extra variable). The expected text is what Python's
/// jinja2, configured as in transformers, renders for the same input.
#[test]
fn renders_reasoning_template_like_transformers() {
    let source = std::fs::read_to_string(golden_path("reasoning_template.jinja")).unwrap();
    let template = ChatTemplate::from_source(&source, "", "<|im_end|>").unwrap();
    let messages = [
        ChatMessage::new("user", "Q1"),
        ChatMessage::new("assistant", "<think>\nr1\n</think>\n\nA1"),
        ChatMessage::new("user", "Q2"),
        ChatMessage::new("assistant", "<think>\nr2\n</think>\n\nA2"),
        ChatMessage::new("user", "<tool_response>x</tool_response>"),
    ];
    let mut extra = serde_json::Map::new();
    extra.insert("enable_thinking".into(), json!(false));
    let got = template.render_with(&messages, None, true, &extra).unwrap();
    assert_eq!(
        got,
        "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
}
