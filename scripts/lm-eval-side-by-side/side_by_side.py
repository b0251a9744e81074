"""Prepares the same multiple-choice task for lm-evaluation-harness and `finllm eval`, and compares what
both produced: accuracy, per-sample agreement, per-option log-likelihood differences, wall time.

  python side_by_side.py prepare DATA.csv LIMIT OUT_DIR
      writes OUT_DIR/data.jsonl (the CSV's first LIMIT rows, fields trimmed as finllm's CSV loader trims
      them, read with the csv module so no value is re-typed), OUT_DIR/lm_eval_task/task.yaml and
      OUT_DIR/finllm_task.toml (same template: question, "A. text" lines, "答案：", letters scored)
  python side_by_side.py compare OUT_DIR
      reads OUT_DIR/lm_eval_out (--log_samples), OUT_DIR/finllm_report/report.json, OUT_DIR/times.json and
      the server's counters after each run (OUT_DIR/<run>.metrics, less those of the warm-up request in
      OUT_DIR/startup.metrics), writes OUT_DIR/figures.json and prints a Markdown table
"""

import csv
import glob
import json
import os
import sys

LETTERS = ["A", "B", "C", "D", "E", "F"]
TEMPLATE = "{{question}}\n{% for c in choices %}{{c.label}}. {{c.text}}\n{% endfor %}答案："


def prepare(data_csv, limit, out):
    os.makedirs(f"{out}/lm_eval_task", exist_ok=True)
    rows = []
    with open(data_csv, encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.DictReader(f)):
            if len(rows) >= limit:
                break
            row = {k.strip(): (v or "").strip() for k, v in row.items()}
            choices = [{"label": l, "text": row[l]} for l in LETTERS if row.get(l)]
            labels = [c["label"] for c in choices]
            rows.append(
                {
                    "id": row.get("id") or str(n + 1),
                    "question": row["question"],
                    "choices": choices,
                    "labels": labels,
                    "target_index": labels.index(row["answer"]),
                }
            )
    with open(f"{out}/data.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    # JSON is YAML: no quoting pitfalls with Chinese text and Jinja.
    task = {
        "task": "finllm_side_by_side",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": os.path.abspath(f"{out}/data.jsonl")}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": TEMPLATE,
        "doc_to_choice": "{{labels}}",
        "doc_to_target": "{{target_index}}",
        "target_delimiter": "",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    with open(f"{out}/lm_eval_task/task.yaml", "w", encoding="utf-8") as f:
        json.dump(task, f, ensure_ascii=False, indent=1)
    # finllm reads the CSV itself (its own loader), limited to the same rows with --limit.
    with open(f"{out}/finllm_task.toml", "w", encoding="utf-8") as f:
        f.write(
            'name = "side-by-side"\nkind = "single_choice"\nmetrics = ["acc", "acc_norm"]\n'
            f"[dataset]\npath = {json.dumps(os.path.abspath(data_csv))}\n"
        )
    print(f"{len(rows)} rows prepared in {out}")


RUNS = ["finllm_report", "lm_eval_out", "lm_eval_concurrent_out", "finllm_report_after"]
COUNTERS = {
    "requests": "finllm_requests_total",
    "prompt_tokens_computed": "finllm_prompt_tokens_total",
    "prompt_tokens_reused": "finllm_cached_prompt_tokens_total",
    "tokens_generated": "finllm_generated_tokens_total",
}


def counters(path):
    """The server's counters in a Prometheus text file (requests summed over routes and statuses)."""
    found = {k: 0.0 for k in COUNTERS}
    if not os.path.exists(path):
        return None
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        base = name.split("{", 1)[0]
        for key, metric in COUNTERS.items():
            if base == metric and (key != "requests" or 'route="completions"' in name):
                found[key] += float(value)
    return found


def server_figures(out, questions):
    """Per run: completions requests and prompt tokens computed / reused per question, warm-up excluded."""
    startup = counters(f"{out}/startup.metrics") or {k: 0.0 for k in COUNTERS}
    figures = {}
    for run in RUNS:
        c = counters(f"{out}/{run}.metrics")
        if c is None:
            continue
        c = {k: v - startup[k] for k, v in c.items()}
        figures[f"{run}_requests"] = int(c["requests"])
        figures[f"{run}_prompt_tokens_computed_per_question"] = round(c["prompt_tokens_computed"] / questions, 1)
        figures[f"{run}_prompt_tokens_reused_per_question"] = round(c["prompt_tokens_reused"] / questions, 1)
        figures[f"{run}_tokens_generated"] = int(c["tokens_generated"])
    return figures


def compare(out):
    files = glob.glob(f"{out}/lm_eval_out/**/samples_finllm_side_by_side_*.jsonl", recursive=True)
    if not files:
        sys.exit(f"no lm-eval samples under {out}/lm_eval_out")
    lm = {}
    for line in open(sorted(files)[-1], encoding="utf-8"):
        s = json.loads(line)
        lls = [float(r[0]) for r in s["filtered_resps"]]
        lm[str(s["doc"]["id"])] = {"ll": lls, "acc": s["acc"], "pred": lls.index(max(lls))}
    report = json.load(open(f"{out}/finllm_report/report.json", encoding="utf-8"))
    task = report["tasks"][0]
    fin = {}
    for s in task["samples"]:
        lps = s["loglik"]["logprobs"]
        fin[str(s["id"])] = {"ll": lps, "acc": s["scores"]["acc"], "pred": lps.index(max(lps))}
    common = sorted(set(lm) & set(fin), key=lambda k: (len(k), k))
    diffs = [abs(a - b) for k in common for a, b in zip(lm[k]["ll"], fin[k]["ll"])]
    same_pred = sum(lm[k]["pred"] == fin[k]["pred"] for k in common)
    times = json.load(open(f"{out}/times.json"))
    acc_lm = 100 * sum(lm[k]["acc"] for k in common) / len(common)
    acc_fin = 100 * sum(fin[k]["acc"] for k in common) / len(common)
    figures = {
        "samples": len(common),
        "only_in_lm_eval": len(set(lm) - set(fin)),
        "only_in_finllm": len(set(fin) - set(lm)),
        "acc_lm_eval": round(acc_lm, 2),
        "acc_finllm": round(acc_fin, 2),
        "acc_diff_points": round(acc_fin - acc_lm, 2),
        "same_prediction": same_pred,
        "loglik_abs_diff_max": max(diffs),
        "loglik_abs_diff_mean": sum(diffs) / len(diffs),
        **times,
        **server_figures(out, len(common)),
    }
    for key in list(times):
        if key.startswith("lm_eval_") and key.endswith("_s"):
            figures[f"finllm_over_{key[:-2]}"] = round(times["finllm_s"] / times[key], 3)
    with open(f"{out}/figures.json", "w") as f:
        json.dump(figures, f, indent=1)
    print("| figure | value |\n|---|---|")
    for k, v in figures.items():
        print(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "compare":
        compare(sys.argv[2])
    else:
        sys.exit(__doc__)
