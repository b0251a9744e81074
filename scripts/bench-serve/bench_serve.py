#!/usr/bin/env python3
"""Benchmarks of `finllm serve` (issue 5's speed section), standard library only.

  gateway     upstream mode: finllm in front of a fast local fake upstream vs that upstream directly;
              p50/p99 latency of sequential non-streaming chat requests, and the difference (targets: <= 1 ms
              p50, <= 5 ms p99 added).
  prefix      time to first token of a streamed chat answer with a ~2,000-token shared system prompt, uncached
              (a system prompt never seen) vs cached (the same system prompt, another question); target >= 5x.
  throughput  aggregate generated tokens/s at 1, 4, 8, 16 concurrent requests, finllm vs llama.cpp's server
              (`python3 -m llama_cpp.server`, llama-cpp-python) on the same GGUF and thread count, as ratios.

The model for prefix and throughput: a random-weight GGUF with Qwen2.5-0.5B's shapes at Q8_0 (speed does not
depend on weight values), written by `python3 scripts/bench-engine/make_models.py OUT_DIR qwen05-q8_0`.

Writes JSON (one file per run, all results) and prints a short Markdown table. Timing noise: run on a quiet
machine; the figures are only comparable within one run.

    python3 scripts/bench-serve/bench_serve.py gateway --finllm target/release/finllm
    python3 scripts/bench-serve/bench_serve.py prefix --finllm target/release/finllm --model qwen05-q8_0.gguf
    python3 scripts/bench-serve/bench_serve.py throughput --finllm target/release/finllm --model qwen05-q8_0.gguf
"""

import argparse
import http.client
import http.server
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path, proc, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"server on port {port} exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"server on port {port} never answered {path}")


class Server:
    """A child process serving HTTP on a port, stopped with SIGTERM."""

    def __init__(self, args, port, ready_path, env=None, cwd=None):
        self.port = port
        log = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log", delete=False)
        self.log = log.name
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ, **(env or {})}, cwd=cwd)
        wait_http(port, ready_path, self.proc)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def finllm(binary, data_dir, *args, threads=None):
    port = free_port()
    env = {"RAYON_NUM_THREADS": str(threads)} if threads else {}
    usage = subprocess.run([os.path.abspath(binary), "serve", "--help"], capture_output=True, text=True).stdout
    # Builds before the default-model download have no --no-download (and download nothing).
    offline = ["--no-download"] if "--no-download" in usage else []
    cmd = [os.path.abspath(binary), "serve", "--port", str(port), *offline, *args]
    return Server(cmd, port, "/health", env=env, cwd=data_dir)


def post(conn, path, body):
    data = json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {payload[:300]!r}")
    return json.loads(payload)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- gateway ---------------------------------------------------------------------------------------------

ANSWER = json.dumps({
    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}).encode()


class FakeUpstream(http.server.BaseHTTPRequestHandler):
    """Answers every chat request at once (keep-alive, no work): the cost measured is the gateway's."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm and delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode())

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(ANSWER)


def latencies(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = {"model": "fake", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        post(conn, "/v1/chat/completions", body)
        out.append((time.perf_counter() - t0) * 1e3)
    conn.close()
    return out


def bench_gateway(args):
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeUpstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    up_port = upstream.server_address[1]
    with tempfile.TemporaryDirectory() as data_dir:
        gateway = finllm(args.finllm, data_dir, "--upstream", f"http://127.0.0.1:{up_port}")
        try:
            latencies(up_port, 200)  # warm-up: connection pools, page cache, SQLite
            latencies(gateway.port, 200)
            direct, via = [], []
            # Interleaved blocks, so that machine load drifts hit both sides alike.
            block = 250
            for _ in range(max(1, args.requests // block)):
                direct += latencies(up_port, block)
                via += latencies(gateway.port, block)
        finally:
            gateway.stop()
    upstream.shutdown()
    result = {
        "requests_each": len(direct),
        "direct_ms": {"p50": percentile(direct, 50), "p99": percentile(direct, 99), "mean": statistics.mean(direct)},
        "via_finllm_ms": {"p50": percentile(via, 50), "p99": percentile(via, 99), "mean": statistics.mean(via)},
    }
    result["added_ms"] = {
        "p50": result["via_finllm_ms"]["p50"] - result["direct_ms"]["p50"],
        "p99": result["via_finllm_ms"]["p99"] - result["direct_ms"]["p99"],
    }
    result["targets_ms"] = {"p50": 1.0, "p99": 5.0}
    result["met"] = result["added_ms"]["p50"] <= 1.0 and result["added_ms"]["p99"] <= 5.0
    return result


# --- prefix cache -----------------------------------------------------------------------------------------


def words(seed, n):
    rng = random.Random(seed)
    return " ".join(f"t{rng.randrange(100, 30000)}" for _ in range(n))


def first_token(port, model, system, question, max_tokens=4):
    """Streams a chat answer; returns (seconds to the first content chunk, usage)."""
    body = {
        "model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    ttft, usage = None, None
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices", []):
            if ttft is None and choice.get("delta", {}).get("content"):
                ttft = time.perf_counter() - t0
    conn.close()
    return ttft, usage


def bench_prefix(args):
    model = os.path.splitext(os.path.basename(args.model))[0]
    with tempfile.TemporaryDirectory() as data_dir:
        server = finllm(args.finllm, data_dir, "--model", os.path.abspath(args.model), threads=args.threads)
        try:
            # Tokens per word differ between vocabularies: measure, then size the system prompt to the target.
            _, small = first_token(server.port, model, words(0, 20), "warm up")
            _, large = first_token(server.port, model, words(0, 220), "warm up")
            per_word = (large["prompt_tokens"] - small["prompt_tokens"]) / 200
            n_words = max(1, round(args.system_tokens / per_word))
            uncached, cached = [], []
            for trial in range(args.trials):
                # Each trial's system prompt starts differently, so nothing of it is cached yet.
                system = f"Policy {trial}-{random.random():.6f}. " + words(1000 + trial, n_words)
                t, usage = first_token(server.port, model, system, "What is the repayment schedule?")
                uncached.append({"ttft_s": t, "usage": usage})
                t, usage = first_token(server.port, model, system, "And the total interest?")
                cached.append({"ttft_s": t, "usage": usage})
        finally:
            server.stop()
    u = statistics.median(r["ttft_s"] for r in uncached)
    c = statistics.median(r["ttft_s"] for r in cached)
    return {
        "model": args.model, "trials": args.trials, "system_words": n_words, "tokens_per_word": per_word,
        "prompt_tokens": uncached[0]["usage"]["prompt_tokens"] if uncached[0]["usage"] else None,
        "uncached": uncached, "cached": cached,
        "uncached_ttft_s_median": u, "cached_ttft_s_median": c, "speedup": u / c, "target_speedup": 5.0,
        "met": u / c >= 5.0,
    }


# --- throughput -------------------------------------------------------------------------------------------


def completion_tokens(port, model, prompt, max_tokens, eos):
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "logit_bias": {str(eos): -100}}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    answer = post(conn, "/v1/completions", body)
    conn.close()
    return answer["usage"]["completion_tokens"]


def aggregate(port, model, concurrency, max_tokens, eos):
    prompts = [words(50 + i, 12) for i in range(concurrency)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        tokens = sum(pool.map(lambda p: completion_tokens(port, model, p, max_tokens, eos), prompts))
    wall = time.perf_counter() - t0
    return {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}


def bench_throughput(args):
    levels = [int(x) for x in args.levels.split(",")]
    model = os.path.splitext(os.path.basename(args.model))[0]
    path = os.path.abspath(args.model)
    results = {"model": args.model, "threads": args.threads, "max_tokens": args.max_tokens, "levels": levels}
    with tempfile.TemporaryDirectory() as data_dir:
        server = finllm(args.finllm, data_dir, "--model", path, threads=args.threads)
        try:
            aggregate(server.port, model, 1, 4, args.eos)
            results["finllm"] = {n: aggregate(server.port, model, n, args.max_tokens, args.eos) for n in levels}
        finally:
            server.stop()
    port = free_port()
    llama = Server(
        [sys.executable, "-m", "llama_cpp.server", "--model", path, "--host", "127.0.0.1", "--port", str(port),
         "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads), "--n_ctx", "4096"],
        port, "/v1/models",
    )
    try:
        aggregate(port, model, 1, 4, args.eos)
        results["llama_cpp_server"] = {n: aggregate(port, model, n, args.max_tokens, args.eos) for n in levels}
    finally:
        llama.stop()
    results["ratio"] = {
        n: results["finllm"][n]["tokens_per_s"] / results["llama_cpp_server"][n]["tokens_per_s"] for n in levels
    }
    results["targets"] = {"1": 1.0, "8": 1.5}
    results["note"] = ("llama-cpp-python's server has no parallel slots: it answers one request at a time, "
                       "so its concurrent requests queue; finllm batches them (continuous batching).")
    return results


# --- main -------------------------------------------------------------------------------------------------


def table(name, r):
    rows = []
    if name == "gateway":
        rows += ["| gateway | direct | via finllm | added | target |", "|---|---|---|---|---|"]
        for p in ("p50", "p99"):
            rows.append(f"| {p} | {r['direct_ms'][p]:.3f} ms | {r['via_finllm_ms'][p]:.3f} ms | "
                        f"{r['added_ms'][p]:.3f} ms | <= {r['targets_ms'][p]:.0f} ms |")
    elif name == "prefix":
        rows += ["| prefix cache | TTFT (median) | cached tokens |", "|---|---|---|"]
        rows.append(f"| uncached | {r['uncached_ttft_s_median']:.3f} s | "
                    f"{[x['usage']['prompt_tokens_details']['cached_tokens'] for x in r['uncached'] if x['usage']]} |")
        rows.append(f"| cached | {r['cached_ttft_s_median']:.3f} s | "
                    f"{[x['usage']['prompt_tokens_details']['cached_tokens'] for x in r['cached'] if x['usage']]} |")
        rows.append(f"| speedup | {r['speedup']:.1f}x (target >= 5x, {r['prompt_tokens']} prompt tokens) | |")
    else:
        rows += ["| concurrent | finllm tok/s | llama.cpp server tok/s | ratio |", "|---|---|---|---|"]
        for n in r["levels"]:
            rows.append(f"| {n} | {r['finllm'][n]['tokens_per_s']:.1f} | "
                        f"{r['llama_cpp_server'][n]['tokens_per_s']:.1f} | {r['ratio'][n]:.2f}x |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=["gateway", "prefix", "throughput", "all"])
    parser.add_argument("--finllm", default="target/release/finllm", help="the finllm binary")
    parser.add_argument("--model", help="GGUF for prefix and throughput (random-weight Qwen2.5-0.5B shape, Q8_0)")
    parser.add_argument("--requests", type=int, default=3000, help="gateway: requests per side")
    parser.add_argument("--trials", type=int, default=3, help="prefix: system prompts tried")
    parser.add_argument("--system-tokens", type=int, default=2000, help="prefix: tokens in the system prompt")
    parser.add_argument("--levels", default="1,4,8,16", help="throughput: concurrency levels")
    parser.add_argument("--max-tokens", type=int, default=64, help="throughput: tokens per request")
    parser.add_argument("--threads", type=int, default=2, help="inference threads for both servers")
    parser.add_argument("--eos", type=int, default=2, help="throughput: EOS id, banned so every request runs full")
    parser.add_argument("--out", default="target/bench-serve", help="folder for the JSON results")
    args = parser.parse_args()
    benches = ["gateway", "prefix", "throughput"] if args.bench == "all" else [args.bench]
    if any(b != "gateway" for b in benches) and not args.model:
        parser.error("--model is needed for prefix and throughput")
    os.makedirs(args.out, exist_ok=True)
    runners = {"gateway": bench_gateway, "prefix": bench_prefix, "throughput": bench_throughput}
    for name in benches:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = runners[name](args)
        result["machine"] = {"cpus": os.cpu_count(), "finllm": args.finllm,
                             "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path = os.path.join(args.out, f"{name}.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        print(table(name, result))
        print(f"({path})\n", flush=True)


if __name__ == "__main__":
    main()
