#!/usr/bin/env python3
"""Writes the random-weight GGUF models of real shapes that `cargo xtask bench-engine` measures (speed does not
depend on weight values): Qwen2.5-0.5B's shape at Q8_0 and Qwen2.5-1.5B's shape at Q4_K_M, quantized by
llama.cpp's own quantizer (llama-cpp-python). Never commit the outputs (0.5 and 1 GB).

    python3 scripts/bench-engine/make_models.py OUT_DIR [qwen05-q8_0] [qwen15-q4_k_m]

Existing outputs are kept. Weights are seeded normal values × 0.02 written as F16 first (so the 1.5B model
needs ~3 GB of RAM and temporary disk), then quantized; the F16 file is deleted.
"""

import ctypes
import os
import sys

import gguf
import llama_cpp
import numpy as np

SHAPES = {
    # name: (hidden, intermediate, layers, heads, kv_heads, llama ftype)
    "qwen05-q8_0": (896, 4864, 24, 14, 2, 7),  # LLAMA_FTYPE_MOSTLY_Q8_0
    "qwen15-q4_k_m": (1536, 8960, 28, 12, 2, 15),  # LLAMA_FTYPE_MOSTLY_Q4_K_M
}
VOCAB = 151936


def write_f16(path, hidden, inter, layers, heads, kv_heads, seed):
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_context_length(32768)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6)
    w.add_file_type(1)
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    toks += [f"\u2581t{n}" for n in range(VOCAB - len(toks))]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (VOCAB - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def r(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    hd = hidden // heads
    w.add_tensor("token_embd.weight", r(VOCAB, hidden))
    for l in range(layers):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(p + "attn_q.weight", r(heads * hd, hidden))
        w.add_tensor(p + "attn_k.weight", r(kv_heads * hd, hidden))
        w.add_tensor(p + "attn_v.weight", r(kv_heads * hd, hidden))
        w.add_tensor(p + "attn_q.bias", np.zeros(heads * hd, np.float32))
        w.add_tensor(p + "attn_k.bias", np.zeros(kv_heads * hd, np.float32))
        w.add_tensor(p + "attn_v.bias", np.zeros(kv_heads * hd, np.float32))
        w.add_tensor(p + "attn_output.weight", r(hidden, heads * hd))
        w.add_tensor(p + "ffn_gate.weight", r(inter, hidden))
        w.add_tensor(p + "ffn_up.weight", r(inter, hidden))
        w.add_tensor(p + "ffn_down.weight", r(hidden, inter))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    names = sys.argv[2:] or list(SHAPES)
    os.makedirs(out_dir, exist_ok=True)
    for seed, name in enumerate(names):
        hidden, inter, layers, heads, kv_heads, ftype = SHAPES[name]
        out = os.path.join(out_dir, name + ".gguf")
        if os.path.exists(out):
            print(f"kept {out}", file=sys.stderr)
            continue
        f16 = out + ".f16.tmp"
        print(f"writing {out} ...", file=sys.stderr)
        write_f16(f16, hidden, inter, layers, heads, kv_heads, seed)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        rc = llama_cpp.llama_model_quantize(f16.encode(), out.encode(), ctypes.byref(params))
        os.remove(f16)
        if rc != 0:
            sys.exit(f"llama.cpp could not quantize {name} (code {rc})")
        print(out)


if __name__ == "__main__":
    main()
