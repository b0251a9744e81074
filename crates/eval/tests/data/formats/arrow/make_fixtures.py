"""Rebuilds the Arrow fixtures (rows written for finllm's tests in CFBenchmark's layout:
instruction, input, response), with pyarrow: python make_fixtures.py"""

import pyarrow as pa

rows = {
    "id": pa.array([1, 2, None, -4], type=pa.int64()),
    "instruction": pa.array(["判断情感倾向。", "判断情感倾向。", "提取公司名称。", "判断情感倾向。"]),
    "input": pa.array(["公司净利润同比增长三成。", "股价连续跌停。", "腾讯发布财报。", None], type=pa.large_string()),
    "response": pa.array(["正面", "负面", "腾讯", "中性"]),
    "score": pa.array([0.5, 1.25, None, 2.0], type=pa.float32()),
    "checked": pa.array([True, False, True, None]),
}
table = pa.table(rows)
# Two record batches, so the reader must concatenate them.
batches = table.to_batches(max_chunksize=3)
with pa.OSFile("stream.arrow", "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
    for b in batches:
        w.write_batch(b)
with pa.OSFile("file.arrow", "wb") as f, pa.ipc.new_file(f, table.schema) as w:
    w.write_table(table)
# What any Arrow reader must see, as JSON lines (the test compares EVE's reader with it).
import json

with open("expected.jsonl", "w", encoding="utf-8") as f:
    for row in table.to_pylist():
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
