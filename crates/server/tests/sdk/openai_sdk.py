"""The official `openai` Python SDK against a real `finllm serve` with the tiny committed fixture model.

Run by .ci/run after the Rust tests:  python3 crates/server/tests/sdk/openai_sdk.py target/debug/finllm
It starts the server on a free port, runs each check, prints 'N passed, N failed' and exits non-zero on failure.
"""

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


def start_server(binary, data_dir):
    proc = subprocess.Popen(
        [binary, "--data-dir", data_dir, "serve", "--port", "0", "--model", MODEL_PATH],
        stderr=subprocess.PIPE,
        text=True,
        # The fixture model's random output is no test of the guard; tests/it/guard.rs covers the guard.
        env={**os.environ, "FINLLM_GUARD_ENABLED": "false"},
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


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "finllm")
    with tempfile.TemporaryDirectory() as data_dir:
        proc, url = start_server(binary, data_dir)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=60)
        checks = [check_models, check_chat, check_chat_stream, check_logprobs, check_completion_echo, check_seed, check_errors]
        passed = failed = 0
        try:
            for check in checks:
                try:
                    check(client)
                    passed += 1
                    print(f"ok   {check.__name__}")
                except Exception as err:  # noqa: BLE001 - report every failure, keep going
                    failed += 1
                    print(f"FAIL {check.__name__}: {err!r}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(f"{passed} passed, {failed} failed")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
