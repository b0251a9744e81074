//! Tokenizers: Hugging Face `tokenizer.json` and the vocabulary embedded in GGUF metadata.
