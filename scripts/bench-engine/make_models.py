#!/usr/bin/env python3
"""Writes the random-weight GGUF models of real shapes that `cargo xtask bench-engine` measures (speed does not
depend on weight values). Never commit the outputs (0.5 to 10 GB each).

    python3 scripts/bench-engine/make_models.py OUT_DIR [NAME ...]

Without names it writes `qwen05-q8_0` and `qwen15-q4_k_m`; the big ones are written only when named. Existing
outputs are kept.

* `qwen05-q8_0`, `qwen15-q4_k_m`: Qwen2.5-0.5B's shape at Q8_0 and Qwen2.5-1.5B's shape at Q4_K_M, quantized by
  llama.cpp's own quantizer (llama-cpp-python): seeded normal values x 0.02 written as F16 first (the 1.5B model
  needs ~3 GB of RAM and temporary disk), then quantized; the F16 file is deleted.
* `ling-mini-q4_k_m`: Ant's Ling-mini-2.0 shape (GGUF arch `bailingmoe2`): 20 layers (layer 0 dense, FFN 5120),
  hidden 2048, 16 heads / 4 KV heads of 128, NeoX RoPE on half of each head (theta 600000), 256 experts of FFN 512
  in 8 groups (4 used), top-8, sigmoid routing with an expert bias, x2.5, 1 shared expert of FFN 512, vocab
  157,184, context 32768 (no MTP layer: plain decoding never runs it). 16.26B parameters, 1.43B active per token
  (789M without the embedding and output matrices), as Ant states for Ling-mini-2.0; 9.9 GB.
* `dense-8b-q4_k_m`: Llama-3-8B's shape (arch `llama`): 32 layers, hidden 4096, 32 heads / 8 KV heads, FFN 14336,
  vocab 128,256, context 8192. 8.03B parameters, all active (6.98B without embedding and output); 4.9 GB.

The dense model with about Ling-mini's active parameter count is `qwen15-q4_k_m` (Qwen2.5-1.5B: 1.54B parameters,
1.31B without the embedding; Ling-mini activates 1.43B, 789M without embedding and output).

The two big models are too large to write as F16 and quantize on a 24 GB / 40 GB-free machine, so their Q4_K_M
blocks are written directly, one tensor at a time (peak RAM about one tensor, < 0.5 GB): random bytes for the
quants and scales of every block, small positive f16 `d` (and `dmin` = d x half the quant range, so values are
centred) with magnitudes like 0.02-weights. Each tensor gets the type llama.cpp's Q4_K_M would give it: the script
first quantizes a proxy with the same architecture, layer count and tensor names but tiny dims (rows of 256) with
llama_model_quantize and copies the chosen type per tensor name (with the bundled llama.cpp: Q6_K for output and,
on half of the layers, attn_v / attn_qkv / ffn_down / ffn_down_exps / ffn_down_shexp; Q4_K elsewhere, token_embd
included; F32 norms, router and expert bias). Each written file is loaded by llama.cpp and a few
tokens are decoded as a smoke test.
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
    add_vocab(w, VOCAB)

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


def quantize_f16(f16, out, ftype, what):
    """llama.cpp's quantizer from the F16 file `f16` (deleted afterwards) to `out`."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    rc = llama_cpp.llama_model_quantize(f16.encode(), out.encode(), ctypes.byref(params))
    os.remove(f16)
    if rc != 0:
        sys.exit(f"llama.cpp could not quantize {what} (code {rc})")


# Models written block by block (see the module docstring).
DIRECT = {
    "ling-mini-q4_k_m": dict(
        arch="bailingmoe2", hidden=2048, layers=20, heads=16, kv_heads=4, head_dim=128, ffn=5120, vocab=157184,
        experts=256, top_k=8, n_group=8, topk_group=4, shared=1, expert_ffn=512, dense_lead=1, theta=600000.0,
        rotary=0.5, scale=2.5, ctx=32768, eps=1e-6,
    ),
    "dense-8b-q4_k_m": dict(
        arch="llama", hidden=4096, layers=32, heads=32, kv_heads=8, head_dim=128, ffn=14336, vocab=128256,
        theta=500000.0, ctx=8192, eps=1e-5,
    ),
}
Q4_K_M = 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
QT = gguf.GGMLQuantizationType


def add_vocab(w, n_vocab):
    """A dummy byte-fallback SentencePiece vocabulary (the benchmarks feed token ids)."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    toks += [f"\u2581t{n}" for n in range(n_vocab - len(toks))]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (n_vocab - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def add_metadata(w, s, file_type):
    """The keys convert_hf_to_gguf.py writes for these architectures."""
    w.add_name(s["name"])
    w.add_context_length(s["ctx"])
    w.add_embedding_length(s["hidden"])
    w.add_block_count(s["layers"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_rope_freq_base(s["theta"])
    w.add_layer_norm_rms_eps(s["eps"])
    w.add_file_type(file_type)
    w.add_vocab_size(s["vocab"])
    if s["arch"] == "llama":
        w.add_rope_dimension_count(s["head_dim"])
    else:
        w.add_key_length(s["head_dim"])
        w.add_value_length(s["head_dim"])
        w.add_rope_dimension_count(int(s["head_dim"] * s["rotary"]))
        w.add_expert_count(s["experts"])
        w.add_expert_used_count(s["top_k"])
        w.add_expert_group_count(s["n_group"])
        w.add_expert_group_used_count(s["topk_group"])
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
        w.add_leading_dense_block_count(s["dense_lead"])
        w.add_expert_feed_forward_length(s["expert_ffn"])
        w.add_expert_shared_feed_forward_length(s["expert_ffn"] * s["shared"])
        w.add_expert_weights_scale(s["scale"])
        w.add_expert_shared_count(s["shared"])
        w.add_expert_weights_norm(True)
    add_vocab(w, s["vocab"])


def tensor_plan(s):
    """(name, numpy shape, kind) of every tensor; kind is "norm" (ones), "f32" (small random, kept F32 by
    llama.cpp's quantizer: router and expert bias) or "weight" (quantized)."""
    h, hd, nh, nkv = s["hidden"], s["head_dim"], s["heads"], s["kv_heads"]
    plan = [("token_embd.weight", (s["vocab"], h), "weight")]
    for l in range(s["layers"]):
        b = f"blk.{l}."
        plan += [(b + "attn_norm.weight", (h,), "norm"), (b + "ffn_norm.weight", (h,), "norm")]
        if s["arch"] == "llama":
            plan += [(b + "attn_q.weight", (nh * hd, h), "weight"), (b + "attn_k.weight", (nkv * hd, h), "weight"),
                     (b + "attn_v.weight", (nkv * hd, h), "weight")]
        else:
            plan += [(b + "attn_qkv.weight", ((nh + 2 * nkv) * hd, h), "weight"),
                     (b + "attn_q_norm.weight", (hd,), "norm"), (b + "attn_k_norm.weight", (hd,), "norm")]
        plan.append((b + "attn_output.weight", (h, nh * hd), "weight"))
        if s["arch"] == "llama" or l < s["dense_lead"]:
            plan += [(b + "ffn_gate.weight", (s["ffn"], h), "weight"), (b + "ffn_up.weight", (s["ffn"], h), "weight"),
                     (b + "ffn_down.weight", (h, s["ffn"]), "weight")]
        else:
            ne, fe, fs = s["experts"], s["expert_ffn"], s["expert_ffn"] * s["shared"]
            plan += [(b + "ffn_gate_inp.weight", (ne, h), "f32"), (b + "exp_probs_b.bias", (ne,), "f32"),
                     (b + "ffn_gate_exps.weight", (ne, fe, h), "weight"),
                     (b + "ffn_up_exps.weight", (ne, fe, h), "weight"),
                     (b + "ffn_down_exps.weight", (ne, h, fe), "weight"),
                     (b + "ffn_gate_shexp.weight", (fs, h), "weight"), (b + "ffn_up_shexp.weight", (fs, h), "weight"),
                     (b + "ffn_down_shexp.weight", (h, fs), "weight")]
    plan += [("output_norm.weight", (h,), "norm"), ("output.weight", (s["vocab"], h), "weight")]
    return plan


def proxy_spec(s):
    """Same architecture, layer count and tensor names, tiny dims (rows of 256 so every K-quant applies)."""
    p = dict(s, hidden=256, head_dim=256 // s["heads"], vocab=512, ffn=256, name=s["name"] + "-proxy")
    if s["arch"] != "llama":
        p.update(experts=16, expert_ffn=256)  # llama.cpp's quantizer only special-cases 8 experts
    return p


def llama_cpp_types(s, tmp_dir):
    """{tensor name: GGML type} as llama.cpp's Q4_K_M quantizer chooses them, read from a quantized proxy."""
    p = proxy_spec(s)
    f16, q = os.path.join(tmp_dir, p["name"] + ".f16.tmp"), os.path.join(tmp_dir, p["name"] + ".q.tmp")
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(f16, p["arch"])
    add_metadata(w, p, 1)
    for name, shape, kind in tensor_plan(p):
        if kind == "weight":
            w.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16))
        else:
            w.add_tensor(name, np.ones(shape, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    quantize_f16(f16, q, Q4_K_M, s["name"] + " proxy")
    types = {t.name: QT(int(t.tensor_type)) for t in gguf.GGUFReader(q).tensors}
    os.remove(q)
    return types


# Byte offset of the f16 super-block scale `d` (and of `dmin`, or None) in each block type (ggml-common.h), and the
# d that gives values of roughly 0.02 for random quants and scales.
BLOCK_SCALES = {
    QT.Q4_K: (0, 2, 1e-4),  # d, dmin, scales[12], qs[128]: x = d*sc*q - dmin*m, q in 0..15
    QT.Q5_K: (0, 2, 5e-5),  # d, dmin, scales[12], qh[32], qs[128]: q in 0..31
    QT.Q6_K: (208, None, 2e-5),  # ql[128], qh[64], scales[16] (int8), d: x = d*sc*(q-32)
    QT.Q8_0: (0, None, 3e-4),  # d, qs[32] (int8)
}


def random_blocks(rng, qtype, shape):
    """Random valid blocks of `qtype` for a tensor of numpy shape `shape`, as the uint8 byte array gguf-py takes."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = int(np.prod(shape)) // block
    raw = np.frombuffer(rng.bytes(n_blocks * size), dtype=np.uint8).reshape(n_blocks, size).copy()
    d_off, dmin_off, d0 = BLOCK_SCALES[qtype]
    d = (d0 * rng.uniform(0.5, 1.5, n_blocks)).astype(np.float16)
    raw[:, d_off : d_off + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    if dmin_off is not None:  # centre the unsigned quants: dmin*m ~ d*sc*(q range / 2)
        half_range = 7.5 if qtype == QT.Q4_K else 15.5
        dmin = (d.astype(np.float32) * half_range).astype(np.float16)
        raw[:, dmin_off : dmin_off + 2] = dmin.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(*shape[:-1], shape[-1] // block * size)


def write_direct(path, s, types, seed):
    """Writes the GGUF tensor by tensor: infos first, then each tensor's data generated just before it is written."""
    rng = np.random.default_rng(seed)
    plan = tensor_plan(s)
    w = gguf.GGUFWriter(path, s["arch"])
    add_metadata(w, s, Q4_K_M)
    for name, shape, kind in plan:
        qtype = types[name]
        if qtype in (QT.F32, QT.F16):
            dt = np.float32 if qtype == QT.F32 else np.float16
            w.add_tensor_info(name, shape, np.dtype(dt), int(np.prod(shape)) * np.dtype(dt).itemsize)
        else:
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            byte_shape = (*shape[:-1], shape[-1] // block * size)
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shape, kind in plan:
        qtype = types[name]
        if qtype in (QT.F32, QT.F16):
            dt = np.float32 if qtype == QT.F32 else np.float16
            if kind == "norm":
                data = np.ones(shape, dt)
            elif name.endswith("exp_probs_b.bias"):
                data = (0.01 * rng.standard_normal(shape)).astype(dt)
            else:
                data = (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])).astype(dt)
        else:
            data = random_blocks(rng, qtype, shape)
        w.write_tensor_data(data)
    w.close()


def smoke_test(path, n_tokens=8):
    """Loads the file in llama.cpp and decodes a few tokens (2 threads): a check, not a benchmark."""
    import time

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, n_batch=64, verbose=False)
    t1 = time.perf_counter()
    prompt = [1] + [1000 + 37 * i for i in range(15)]
    llm.eval(prompt)
    t2 = time.perf_counter()
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    for _ in range(n_tokens):
        llm.eval([tok])
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    t3 = time.perf_counter()
    print(f"{os.path.basename(path)}: loaded in {t1 - t0:.1f} s, prefill {len(prompt)} tokens "
          f"{len(prompt) / (t2 - t1):.1f} tok/s, decode {n_tokens} tokens {n_tokens / (t3 - t2):.2f} tok/s "
          f"(llama.cpp, 2 threads, shared machine)", file=sys.stderr)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    names = sys.argv[2:] or list(SHAPES)
    unknown = [n for n in names if n not in SHAPES and n not in DIRECT]
    if unknown:
        sys.exit(f"unknown model(s) {unknown}; known: {sorted(SHAPES) + sorted(DIRECT)}")
    os.makedirs(out_dir, exist_ok=True)
    for seed, name in enumerate(names):
        out = os.path.join(out_dir, name + ".gguf")
        if os.path.exists(out):
            print(f"kept {out}", file=sys.stderr)
            continue
        print(f"writing {out} ...", file=sys.stderr)
        if name in DIRECT:
            spec = dict(DIRECT[name], name=name)
            tmp = out + ".tmp"
            write_direct(tmp, spec, llama_cpp_types(spec, out_dir), seed)
            os.replace(tmp, out)
            smoke_test(out)
            print(out)
            continue
        hidden, inter, layers, heads, kv_heads, ftype = SHAPES[name]
        f16 = out + ".f16.tmp"
        write_f16(f16, hidden, inter, layers, heads, kv_heads, seed)
        quantize_f16(f16, out, ftype, name)
        print(out)


if __name__ == "__main__":
    main()
