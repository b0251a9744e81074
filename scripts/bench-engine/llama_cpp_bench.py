#!/usr/bin/env python3
"""llama.cpp's side of `cargo xtask bench-engine`: the same measurement as `finllm bench --json`, through
llama-cpp-python, printed as the same JSON shape.

    python3 scripts/bench-engine/llama_cpp_bench.py MODEL.gguf --threads 2 --depths 0,16384 \
        --prompt-tokens 512 --gen-tokens 64 --rounds 3

For each depth the context is prefilled once (untimed); each round rolls the cache back to the depth, times
the prefill of a fresh prompt on top of it, then times greedy decoding. The median of the rounds is reported.
Token ids are seeded pseudo-random ids, as in `finllm bench`. Also prints the model's weight and per-token KV
bytes (from the GGUF) so the caller can express decode speed as a share of the memory-bandwidth roofline.
"""

import argparse
import json
import statistics
import sys
import time

import gguf
import llama_cpp
import numpy as np


def token_stream(vocab, seed=0x9E3779B97F4A7C15):
    state = seed
    while True:
        state ^= (state << 13) & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 7
        state ^= (state << 17) & 0xFFFFFFFFFFFFFFFF
        yield 1000 + state % (vocab - 2000)


def model_bytes(path):
    """Bytes one decode step reads: every tensor but the embedding table (unless it doubles as the output head);
    of a mixture-of-experts layer's stacked experts only the share a token uses (experts used / experts)."""
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    field = lambda key, default=None: int(fields[key].parts[-1][0]) if key in fields else default  # noqa: E731
    arch = bytes(fields["general.architecture"].parts[-1]).decode()
    experts = field(f"{arch}.expert_count", 0)
    used = field(f"{arch}.expert_used_count", 0)
    layers = field(f"{arch}.block_count") - field(f"{arch}.nextn_predict_layers", 0)
    total = 0
    names = set()
    for t in reader.tensors:
        names.add(t.name)
        if t.name.startswith("blk.") and int(t.name.split(".")[1]) >= layers:
            continue  # multi-token-prediction layers are not run
        share = used / experts if experts and "_exps." in t.name else 1.0
        total += int(t.n_bytes) * share
    if "output.weight" in names:
        total -= next(int(t.n_bytes) for t in reader.tensors if t.name == "token_embd.weight")
    heads = field(f"{arch}.attention.head_count")
    kv_heads = field(f"{arch}.attention.head_count_kv")
    head_dim = field(f"{arch}.attention.key_length", field(f"{arch}.embedding_length") // heads)
    kv_per_token = layers * 2 * kv_heads * head_dim * 2  # K and V, f16
    return int(total), kv_per_token


def proc_status_bytes(key):
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM peak), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def last_argmax(llm):
    """Greedy choice from the last evaluated position (llama-cpp-python keeps no scores without logits_all)."""
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return int(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).argmax())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depths", default="0")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--no-mmap", action="store_true",
                    help="read the weights into memory instead of mapping the file (llama.cpp's --no-mmap)")
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    n_ctx = max(depths) + args.prompt_tokens + args.gen_tokens + 16
    llm = llama_cpp.Llama(
        model_path=args.model, n_ctx=n_ctx, n_batch=args.batch, n_ubatch=args.batch,
        n_threads=args.threads, n_threads_batch=args.threads, verbose=False, use_mmap=not args.no_mmap,
    )
    tokens = token_stream(llm.n_vocab())
    take = lambda n: [next(tokens) for _ in range(n)]  # noqa: E731
    llm.eval(take(16))  # warm-up
    results = []
    for depth in depths:
        llm.reset()
        if depth:
            llm.eval(take(depth))
        prefill, decode = [], []
        for _ in range(args.rounds):
            llm.n_tokens = depth  # eval() drops cached positions from here on
            prompt = take(args.prompt_tokens)
            start = time.perf_counter()
            llm.eval(prompt)
            prefill.append(args.prompt_tokens / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(args.gen_tokens):
                llm.eval([last_argmax(llm)])
            decode.append(args.gen_tokens / (time.perf_counter() - start))
        results.append(dict(
            depth=depth, prefill_tokens_per_s=statistics.median(prefill),
            decode_tokens_per_s=statistics.median(decode), prefill_rounds=prefill, decode_rounds=decode,
        ))
        print(f"llama.cpp depth {depth}: {results[-1]}", file=sys.stderr)
    weights, kv = model_bytes(args.model)
    json.dump(dict(model=args.model, engine="llama.cpp " + llama_cpp.__version__, threads=args.threads,
                   weight_bytes=weights, kv_bytes_per_token=kv, results=results,
                   resident_bytes=proc_status_bytes("VmRSS"), peak_resident_bytes=proc_status_bytes("VmHWM")),
              sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
