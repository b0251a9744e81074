"""Writes a Hugging Face tokenizer folder equivalent to a GGUF file's tokenizer, for lm-eval's
`tokenizer_backend=huggingface` (lm-eval tokenizes on the client and sends token ids; finllm serve has no
/tokenize route, and transformers cannot read GGUF without torch).

Handles the two tokenizer families finllm's fixtures and common models use:
- `llama` (SentencePiece): byte fallback, `▁` for spaces plus a dummy prefix, BOS added;
- `gpt2` (byte-level BPE, e.g. Qwen2): vocabulary + merges with the Qwen2 pre-tokenizer regex.
The side-by-side script checks the result per sample (log-likelihoods must match finllm's own), so a
tokenizer mismatch shows up as a figure, not as a silent skew.

usage: python tokenizer_from_gguf.py MODEL.gguf OUT_DIR
"""

import json
import sys

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def field(reader, name):
    f = reader.fields.get(name)
    if f is None:
        return None
    if len(f.data) == 1 and f.types and f.types[0] != gguf.GGUFValueType.ARRAY:
        value = f.parts[f.data[0]]
        return bytes(value).decode("utf-8") if f.types[0] == gguf.GGUFValueType.STRING else value[0].item()
    return [
        bytes(f.parts[i]).decode("utf-8", "replace")
        if f.types[-1] == gguf.GGUFValueType.STRING
        else f.parts[i][0].item()
        for i in f.data
    ]


def main(path, out):
    reader = gguf.GGUFReader(path)
    kind = field(reader, "tokenizer.ggml.model")
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    bos = field(reader, "tokenizer.ggml.bos_token_id")
    eos = field(reader, "tokenizer.ggml.eos_token_id")
    vocab = {t: i for i, t in enumerate(tokens)}
    specials = [t for t, ty in zip(tokens, types) if ty == 3]
    if kind == "llama":
        unk = field(reader, "tokenizer.ggml.unknown_token_id")
        tok = Tokenizer(
            models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token=tokens[unk] if unk is not None else None)
        )
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence(
            [decoders.ByteFallback(), decoders.Fuse(), decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)]
        )
        add_bos = field(reader, "tokenizer.ggml.add_bos_token")
        add_bos = True if add_bos is None else bool(add_bos)
    elif kind == "gpt2":
        merges = [tuple(m.split(" ", 1)) for m in field(reader, "tokenizer.ggml.merges")]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        add_bos = bool(field(reader, "tokenizer.ggml.add_bos_token") or False)
    else:
        sys.exit(f"{path}: tokenizer model {kind!r} is not handled")
    tok.add_special_tokens(specials)
    if add_bos and bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{tokens[bos]} $A", pair=f"{tokens[bos]} $A $B", special_tokens=[(tokens[bos], bos)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=tokens[bos] if bos is not None else None,
        eos_token=tokens[eos] if eos is not None else None,
    )
    fast.save_pretrained(out)
    json.dump({"gguf": path, "model": kind, "vocab": len(tokens), "add_bos": add_bos}, open(f"{out}/source.json", "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
