"""Benchmark of the ingest stage on a simulated log (not part of the test suite).

    python bench/ingest.py [--scale 1000000] [--dir /tmp/ingest-bench] [--presidio-sample 5000]

Generates the log with the world generator (once; reused when present), runs `ingest` and
prints prompts per second, peak memory, the time per rule, PII recall per type on the world's
true spans, the false-positive rate on PII-free prompts, and Presidio alone without the
pre-filter on a sample (extrapolated to the whole log). The LAST line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from instructgpt.ingest import IngestConfig, PiiConfig, PiiDetector, ingest  # noqa: E402

RECALL_MIN = {"EMAIL": 0.99, "PHONE": 0.99, "CREDIT_CARD": 0.99, "SSN": 0.99, "IP_ADDRESS": 0.99,
              "STREET_ADDRESS": 0.90, "PERSON": 0.90}
FP_MAX = 0.01
TOTAL_MAX_S, PEAK_MAX_MB = 60.0, 4096.0


def _peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def _load_gold(path: Path) -> dict[str, list[dict]]:
    gold = {}
    with open(path, "rb") as f:
        for line in f:
            obj = orjson.loads(line)
            gold[obj["prompt_id"]] = obj["spans"]
    return gold


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=1_000_000)
    p.add_argument("--dir", type=Path, default=Path("/tmp/ingest-bench"))
    p.add_argument("--presidio-sample", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    out = args.dir / str(args.scale)
    log = out / "prompts.jsonl"
    if not log.exists():
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "instructgpt.world.generate", "--out", str(out),
             "--scale", str(args.scale), "--seed", str(args.seed)],
            check=True, cwd=ROOT,
        )
        print(f"generated {log} in {time.perf_counter() - t0:.1f} s")

    # 1. The stage itself (drop mode, as for training).
    cfg = IngestConfig()
    load_before = os.getloadavg()
    rss0 = _peak_rss_mb()
    t0 = time.perf_counter()
    res = ingest(log, cfg, progress=False)
    wall = time.perf_counter() - t0
    rss1 = _peak_rss_mb()
    rss_children = _peak_rss_mb(resource.RUSAGE_CHILDREN)  # PII pool workers (the largest one)
    load_after = os.getloadavg()
    rep = res.report
    del res

    # 2. PII quality on the world's true spans, over every schema-valid row.
    gold = _load_gold(out / "world" / "pii_spans.jsonl")
    det = PiiDetector(PiiConfig())
    rows = []
    with open(log, "rb") as f:
        for line in f:
            try:
                obj = orjson.loads(line)
                if isinstance(obj, dict) and isinstance(obj.get("text"), str) and isinstance(obj.get("prompt_id"), str):
                    rows.append((obj["prompt_id"], obj["text"]))
            except ValueError:
                pass
    t_pii = time.perf_counter()
    found = det.find_many([t for _, t in rows])
    t_pii = time.perf_counter() - t_pii
    hit, tot, clean, fp = Counter(), Counter(), 0, 0
    for (pid, _), spans in zip(rows, found):
        true = gold.get(pid, [])
        if not true:
            clean += 1
            fp += bool(spans)
        for sp in true:
            tot[sp["type"]] += 1
            hit[sp["type"]] += any(
                s.type == sp["type"] and s.start < sp["end"] and s.end > sp["start"] for s in spans
            )
    recall = {k: round(hit[k] / tot[k], 4) for k in sorted(tot)}
    fp_rate = fp / max(clean, 1)

    # 3. Presidio alone, no pre-filter, on a sample, extrapolated.
    #    Stock AnalyzerEngine.analyze, every recognizer on every prompt, one process.
    sample = [t for _, t in rows[:: max(1, len(rows) // args.presidio_sample)]][: args.presidio_sample]
    nofilter = PiiDetector(PiiConfig(prefilter=False), workers=1)
    nofilter._analyze_presidio(sample[0], nofilter.types)
    t_s = time.perf_counter()
    for t in sample:
        nofilter._analyze_presidio(t, nofilter.types)
    per_prompt = (time.perf_counter() - t_s) / len(sample)
    presidio_alone_s = per_prompt * len(rows)
    speedup = presidio_alone_s / max(rep["timings_s"]["pii"], 1e-9)

    n = rep["rows_in"]
    print(f"\nIngest benchmark: {n:,} rows ({log})")
    print(f"{'rule':<16}{'seconds':>10}")
    for k, v in rep["timings_s"].items():
        print(f"{k:<16}{v:>10.2f}")
    print(f"{'total':<16}{wall:>10.2f}   ({n / wall:,.0f} prompts/s)")
    print(f"peak RSS {rss1:,.0f} MB (before ingest {rss0:,.0f} MB); largest PII pool worker "
          f"{rss_children:,.0f} MB (shares most pages with the parent: fork)")
    print(f"machine: {os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"kept {rep['kept']:,}  removed {rep['removed']:,}  accounting_ok {rep['accounting_ok']}")
    print("quarantined by reason:", json.dumps(rep["quarantined_by_reason"]))
    print(f"PII pre-filter candidates: {rep['pii_candidates']:,} of {n:,} "
          f"({rep['pii_candidates'] / max(n, 1):.1%})")
    print(f"\n{'PII type':<16}{'true spans':>12}{'recall':>10}{'min':>8}")
    for k in recall:
        ok = recall[k] >= RECALL_MIN.get(k, 0.0)
        print(f"{k:<16}{tot[k]:>12,}{recall[k]:>10.4f}{RECALL_MIN.get(k, 0.0):>8.2f}  {'ok' if ok else 'FAIL'}")
    print(f"false positives on PII-free prompts: {fp:,} / {clean:,} = {fp_rate:.4%}  "
          f"(max {FP_MAX:.0%}: {'ok' if fp_rate <= FP_MAX else 'FAIL'})")
    print(f"\nPII step with pre-filter (whole log):   {rep['timings_s']['pii']:8.1f} s")
    print(f"Presidio alone, no pre-filter (sample of {len(sample):,}, extrapolated): "
          f"{presidio_alone_s:8.1f} s  ({per_prompt * 1e3:.3f} ms/prompt)")
    print(f"speed-up of the PII step: {speedup:.1f}x")
    quality_ok = all(recall.get(k, 1.0) >= v for k, v in RECALL_MIN.items()) and fp_rate <= FP_MAX
    accept = wall < TOTAL_MAX_S and rss1 + rss_children < PEAK_MAX_MB and quality_ok
    print(f"acceptance (< {TOTAL_MAX_S:.0f} s, < {PEAK_MAX_MB / 1024:.0f} GB, recall, FP): "
          f"{'PASS' if accept else 'FAIL'}")
    print(json.dumps({
        "rows_in": n, "total_s": round(wall, 2), "wall_s": round(wall, 2), "prompts_per_s": round(n / wall),
        "peak_rss_mb": round(rss1), "peak_rss_pool_worker_mb": round(rss_children),
        "timings_s": rep["timings_s"], "kept": rep["kept"],
        "accounting_ok": rep["accounting_ok"], "pii_candidates": rep["pii_candidates"],
        "pii_recall": recall, "pii_fp_rate": round(fp_rate, 6),
        "presidio_alone_extrapolated_s": round(presidio_alone_s, 1),
        "presidio_alone_ms_per_prompt": round(per_prompt * 1e3, 4),
        "speedup_pii": round(speedup, 2),
        "pii_eval_s": round(t_pii, 1), "cpus": os.cpu_count(),
        "loadavg_1m_before": round(load_before[0], 2), "loadavg_1m_after": round(load_after[0], 2),
        "acceptance_pass": accept,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
