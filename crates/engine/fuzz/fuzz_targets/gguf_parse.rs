//! Fuzzes the GGUF parser, the first code that touches a downloaded model file: any byte string must
//! either validate or be a `Corrupt`/`UnsupportedQuant` error, never a panic, an abort or an allocation
//! the input's size does not justify. What validates then goes through everything that reads metadata
//! (tokenizer, chat template), since those trust the parser's output.

#![no_main]

use engine::chat_template::ChatTemplate;
use engine::gguf;
use engine::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(content) = gguf::validate(data) {
        let _ = Tokenizer::from_gguf(&content);
        let _ = ChatTemplate::from_gguf(&content);
    }
});
