//! Fuzzes chat templates: arbitrary template source and message text must either compile and render or fail
//! with a `TemplateError`, never panic or hang.

#![no_main]

use engine::chat_template::{BuiltinTemplate, ChatMessage, ChatTemplate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line is the template, the rest a message.
    let (source, content) = text.split_once('\n').unwrap_or((&text, ""));
    let messages = [ChatMessage::new("system", content), ChatMessage::new("user", content)];
    let tools =
        serde_json::json!([{"type": "function", "function": {"name": content, "parameters": {}}}]);
    if let Ok(template) = ChatTemplate::from_source(source, "<s>", "</s>") {
        let _ = template.render(&messages, Some(&tools), true);
    }
    for which in [BuiltinTemplate::ChatMl, BuiltinTemplate::Llama3, BuiltinTemplate::Ling] {
        let rendered = ChatTemplate::builtin(which).render(&messages, Some(&tools), true);
        assert!(rendered.is_ok(), "built-in {which:?} failed: {rendered:?}");
    }
});
