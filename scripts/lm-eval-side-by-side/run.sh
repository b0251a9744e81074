#!/usr/bin/env bash
# Side by side: lm-evaluation-harness (`local-completions`) and `finllm eval` on the same multiple-choice
# task, same data, same `finllm serve` endpoint. Prints accuracy of both, per-sample agreement, the largest
# per-option log-likelihood difference and the wall time of both; writes everything to $OUT.
#
# usage: scripts/lm-eval-side-by-side/run.sh [--model GGUF] [--data CSV] [--limit N] [--finllm BIN] [--out DIR]
#   defaults: the engine's fixture model, FinEval's banking certificate val split (../shared, 272 rows),
#   all rows, target/release/finllm, a fresh temporary folder. Needs python3 with venv and pip access.
#   LM_EVAL_VENV=DIR reuses a virtual environment that already has lm-eval installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
model="$repo/crates/engine/fixtures/qwen2/model-q8_0.gguf"
data="$repo/../shared/data/finance-eval/fineval/val/banking_practitioner_qualification_certificate_val.csv"
limit=100000
finllm="$repo/target/release/finllm"
out="$(mktemp -d -t finllm-lm-eval-XXXXXX)"
port=$((20000 + RANDOM % 20000))
concurrency=4
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --finllm) finllm="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
[ -f "$data" ] || { echo "no data file $data (the shared benchmark data is not here)" >&2; exit 2; }
[ -x "$finllm" ] || { echo "no finllm binary at $finllm (cargo build --release -p cli)" >&2; exit 2; }

venv="${LM_EVAL_VENV:-$out/venv}"
if [ ! -x "$venv/bin/lm_eval" ]; then
  echo "== installing lm-eval into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "lm-eval[api]" transformers gguf >&2
fi
"$venv/bin/pip" show lm-eval 2>/dev/null | grep -i '^version' | sed 's/^/lm-eval /' >&2

# Every run gets a freshly started server (untimed), so no run finds prompts of another run in the
# server's prefix cache; its counters after the run (prompt tokens computed and reused, requests) go to
# $out/<run>.metrics.
serve_pid=""
trap '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true' EXIT
start_serve() {
  FINLLM_DATA_DIR="$out/serve-data" "$finllm" serve --model "$model" --port "$port" >>"$out/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.5
  done
  served="$(curl -sf "http://127.0.0.1:$port/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')"
  # One warm-up request, so neither side pays for the server's first request.
  curl -sf "http://127.0.0.1:$port/v1/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"$served\",\"prompt\":\"答案：\",\"max_tokens\":1}" >/dev/null
}
stop_serve() { # $1 = run name
  curl -sf "http://127.0.0.1:$port/metrics" >"$out/$1.metrics" || true
  kill "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
  serve_pid=""
}

echo "== finllm serve --model $(basename "$model") on port $port" >&2
start_serve
stop_serve startup
python3 "$here/side_by_side.py" prepare "$data" "$limit" "$out" >&2
rows="$(wc -l <"$out/data.jsonl")"
"$venv/bin/python" "$here/tokenizer_from_gguf.py" "$model" "$out/tokenizer" 2>/dev/null

export HF_HOME="$out/hf" HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
now() { date +%s.%N; }
lm_eval_run() { # $1 = output folder, $2 = num_concurrent
  "$venv/bin/lm_eval" --model local-completions \
    --model_args "model=$served,base_url=http://127.0.0.1:$port/v1/completions,tokenizer_backend=huggingface,tokenizer=$out/tokenizer,add_bos_token=True,num_concurrent=$2,max_retries=3,max_length=32768" \
    --tasks finllm_side_by_side --include_path "$out/lm_eval_task" --output_path "$1" --log_samples --batch_size 1 \
    >"$1.log" 2>&1
}

finllm_run() { # $1 = name; a fresh result store and --no-cache, so it asks everything
  FINLLM_DATA_DIR="$out/$1-data" "$finllm" eval run --task "$out/finllm_task.toml" \
    --endpoint "http://127.0.0.1:$port/v1" --model "$served" --scoring loglik --no-cache \
    --concurrency "$concurrency" --limit "$rows" --report "$out/$1" >"$out/$1.log" 2>&1
}

# finllm runs before and after lm-eval, and the slower of the two counts, so that load from other
# processes drifting during the runs does not favour finllm.
# Each run's wall time is measured without the server start between runs.
echo "== finllm eval run (before)" >&2
start_serve; t0=$(now); finllm_run finllm_report; t1=$(now); stop_serve finllm_report
echo "== lm-eval, defaults (num_concurrent=1, batch_size=1)" >&2
start_serve; t1b=$(now); lm_eval_run "$out/lm_eval_out" 1; t2=$(now); stop_serve lm_eval_out
echo "== lm-eval, num_concurrent=$concurrency (finllm's default concurrency)" >&2
start_serve; t2b=$(now); lm_eval_run "$out/lm_eval_concurrent_out" "$concurrency"; t3=$(now)
stop_serve lm_eval_concurrent_out
echo "== finllm eval run (after)" >&2
start_serve; t3b=$(now); finllm_run finllm_report_after; t4=$(now); stop_serve finllm_report_after
lm_eval_eval_s() { python3 -c 'import json,sys,glob; print(json.load(open(sorted(glob.glob(sys.argv[1]+"/**/results_*.json",recursive=True))[-1]))["total_evaluation_time_seconds"])' "$1"; }
python3 - "$out" "$t0" "$t1" "$t1b" "$t2" "$t2b" "$t3" "$t3b" "$t4" "$(lm_eval_eval_s "$out/lm_eval_out")" "$(lm_eval_eval_s "$out/lm_eval_concurrent_out")" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
out, t0, t1, t1b, t2, t2b, t3, t3b, t4, e1, e2, cpus, load = sys.argv[1:]
t0, t1, t1b, t2, t2b, t3, t3b, t4 = map(float, (t0, t1, t1b, t2, t2b, t3, t3b, t4))
json.dump({"lm_eval_s": round(t2 - t1b, 2), "lm_eval_concurrent_s": round(t3 - t2b, 2),
           "lm_eval_own_evaluation_s": round(float(e1), 2), "lm_eval_concurrent_own_evaluation_s": round(float(e2), 2),
           "finllm_before_s": round(t1 - t0, 2), "finllm_after_s": round(t4 - t3b, 2),
           "finllm_s": round(max(t1 - t0, t4 - t3b), 2), "cpus": int(cpus), "load_average_at_end": load},
          open(out + "/times.json", "w"))
PY
python3 "$here/side_by_side.py" compare "$out"
echo "(all files in $out)" >&2
