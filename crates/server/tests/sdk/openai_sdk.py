"""The official `openai` Python SDK against a real `finllm serve` with the tiny committed fixture model.

Run by .ci/run after the Rust tests:  python3 crates/server/tests/sdk/openai_sdk.py target/debug/finllm
It starts the server on a free port, runs each check, prints 'N passed, N failed' and exits non-zero on failure.
"""

import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading

import openai

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODEL_PATH = os.path.join(ROOT, "crates", "engine", "fixtures", "qwen2", "model-q8_0.gguf")
MODEL = "model-q8_0"


class ToolCallingUpstream(http.server.BaseHTTPRequestHandler):
    """A scripted OpenAI-compatible model: calls `calc` until a tool result is in the conversation."""

    def log_message(self, *args):
        pass

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply({"object": "list", "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": "test"}]})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        tool_results = [m for m in request["messages"] if m["role"] == "tool"]
        if tool_results:
            value = json.loads(tool_results[-1]["content"])["result"]
            message = {"role": "assistant", "content": f"本息合计 {value} 元"}
            finish = "stop"
        else:
            call = {"id": "call_1", "type": "function", "function": {"name": "calc", "arguments": json.dumps({"expression": "10000*(1+3.5%)^3", "decimals": 2})}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        self.reply({"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def start_upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ToolCallingUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def start_server(binary, data_dir, *args, env=None):
    proc = subprocess.Popen(
        [binary, "--data-dir", data_dir, "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        # The fixture model's random output is no test of the guard; tests/it/guard.rs covers the guard.
        env={**os.environ, "FINLLM_GUARD_ENABLED": "false", **(env or {})},
    )
    for line in proc.stderr:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, match.group(1)
    raise RuntimeError("finllm serve exited before listening")


def check_models(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL], models


def check_chat(client):
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "你好"}], max_tokens=8, temperature=0
    )
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("length", "stop")
    assert answer.usage.completion_tokens <= 8 and answer.usage.prompt_tokens > 0
    return choice.message.content


def check_chat_stream(client):
    whole = check_chat(client)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "你好"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
    assert "".join(parts) == whole, ("".join(parts), whole)
    assert usage is not None and usage.completion_tokens <= 8


def check_logprobs(client):
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3, temperature=0,
        logprobs=True, top_logprobs=2,
    )
    content = answer.choices[0].logprobs.content
    assert len(content) == 3 and all(len(t.top_logprobs) == 2 for t in content)


def check_completion_echo(client):
    answer = client.completions.create(model=MODEL, prompt="abcab", max_tokens=0, echo=True, logprobs=1, temperature=0)
    choice = answer.choices[0]
    assert choice.text == "abcab", choice.text
    lps = choice.logprobs.token_logprobs
    assert lps[0] is None and all(lp <= 0 for lp in lps[1:]), lps


def check_seed(client):
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "abc"}], max_tokens=10, temperature=1.2, seed=11)
    a = client.chat.completions.create(**kwargs).choices[0].message.content
    b = client.chat.completions.create(**kwargs).choices[0].message.content
    assert a == b


def check_json_schema(client):
    schema = {
        "type": "object",
        "properties": {"payee": {"type": "string"}, "amount": {"type": "number"}, "currency": {"enum": ["CNY", "USD"]}},
        "required": ["payee", "amount", "currency"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "payment", "schema": schema, "strict": True}}
    for seed in range(3):
        answer = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "pay"}], max_tokens=120, temperature=1.0, seed=seed,
            response_format=fmt,
        )
        value = json.loads(answer.choices[0].message.content)
        assert set(value) == {"payee", "amount", "currency"}, value
        assert isinstance(value["payee"], str) and isinstance(value["amount"], (int, float)), value
        assert value["currency"] in ("CNY", "USD"), value
    try:
        bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a"}}}
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], response_format=bad)
        raise AssertionError("unsupported schema keyword accepted")
    except openai.BadRequestError as err:
        assert "pattern" in err.body["message"], err.body


def check_errors(client):
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as err:
        assert err.body["code"] == "model_not_found", err.body
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=5)
        raise AssertionError("temperature 5 accepted")
    except openai.BadRequestError as err:
        assert err.body["param"] == "temperature", err.body
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=10**6)
        raise AssertionError("context overflow accepted")
    except openai.BadRequestError as err:
        assert err.body["code"] == "context_length_exceeded", err.body


def check_tool_calls(client):
    tools = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]
    answer = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "复利"}], tools=tools)
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "calc" and json.loads(call.function.arguments)["decimals"] == 2


def check_assistant_mode(client):
    answer = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "一万元按3.5%复利存三年，本息多少？"}])
    assert answer.choices[0].message.content == "本息合计 11087.18 元", answer.choices[0].message.content


def run_checks(client, checks):
    passed = failed = 0
    for check in checks:
        try:
            check(client)
            passed += 1
            print(f"ok   {check.__name__}")
        except Exception as err:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {check.__name__}: {err!r}")
    return passed, failed


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "finllm")
    upstream, upstream_url = start_upstream()
    totals = [0, 0]
    runs = [
        (["--model", MODEL_PATH], {}, [check_models, check_chat, check_chat_stream, check_logprobs, check_completion_echo, check_seed, check_json_schema, check_errors]),
        (["--upstream", upstream_url], {}, [check_tool_calls]),
        (["--upstream", upstream_url], {"FINLLM_SERVER_ASSISTANT_TOOLS": "true"}, [check_assistant_mode]),
    ]
    for args, env, checks in runs:
        with tempfile.TemporaryDirectory() as data_dir:
            proc, url = start_server(binary, data_dir, *args, env=env)
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=60)
            try:
                passed, failed = run_checks(client, checks)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            totals[0] += passed
            totals[1] += failed
    upstream.shutdown()
    print(f"{totals[0]} passed, {totals[1]} failed")
    sys.exit(1 if totals[1] else 0)


if __name__ == "__main__":
    main()
