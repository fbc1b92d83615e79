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
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instructgpt.ingest import IngestConfig, PiiConfig, PiiDetector, ingest  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _load_gold(path: Path) -> dict[str, list[dict]]:
    gold = {}
    with open(path, "rb") as f:
        for line in f:
            obj = json.loads(line)
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
    rss0 = _peak_rss_mb()
    t0 = time.perf_counter()
    res = ingest(log, cfg, progress=False)
    wall = time.perf_counter() - t0
    rss1 = _peak_rss_mb()
    rep = res.report

    # 2. PII quality on the world's true spans, over every schema-valid row.
    gold = _load_gold(out / "world" / "pii_spans.jsonl")
    det = PiiDetector(PiiConfig())
    rows = []
    with open(log, "rb") as f:
        for line in f:
            try:
                obj = json.loads(line)
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
    sample = [t for _, t in rows[:: max(1, len(rows) // args.presidio_sample)]][: args.presidio_sample]
    nofilter = PiiDetector(PiiConfig(prefilter=False))
    nofilter.find(sample[0])
    t_s = time.perf_counter()
    nofilter.find_many(sample)
    per_prompt = (time.perf_counter() - t_s) / len(sample)
    presidio_alone_s = per_prompt * len(rows)

    n = rep["rows_in"]
    print(f"\nIngest benchmark: {n:,} rows ({log})")
    print(f"{'rule':<16}{'seconds':>10}")
    for k, v in rep["timings_s"].items():
        print(f"{k:<16}{v:>10.2f}")
    print(f"{'total':<16}{wall:>10.2f}   ({n / wall:,.0f} prompts/s)")
    print(f"peak RSS {rss1:,.0f} MB (before ingest {rss0:,.0f} MB)")
    print(f"kept {rep['kept']:,}  removed {rep['removed']:,}  accounting_ok {rep['accounting_ok']}")
    print("quarantined by reason:", json.dumps(rep["quarantined_by_reason"]))
    print(f"PII pre-filter candidates: {rep['pii_candidates']:,} of {n:,} "
          f"({rep['pii_candidates'] / max(n, 1):.1%})")
    print(f"\n{'PII type':<16}{'true spans':>12}{'recall':>10}")
    for k in recall:
        print(f"{k:<16}{tot[k]:>12,}{recall[k]:>10.4f}")
    print(f"false positives on PII-free prompts: {fp:,} / {clean:,} = {fp_rate:.4%}")
    print(f"\nPII step with pre-filter (whole log):   {rep['timings_s']['pii']:8.1f} s")
    print(f"Presidio alone, no pre-filter (sample of {len(sample):,}, extrapolated): "
          f"{presidio_alone_s:8.1f} s  ({per_prompt * 1e3:.3f} ms/prompt)")
    print(f"speed-up of the PII step: {presidio_alone_s / max(rep['timings_s']['pii'], 1e-9):.1f}x")
    print(json.dumps({
        "rows_in": n, "wall_s": round(wall, 2), "prompts_per_s": round(n / wall),
        "peak_rss_mb": round(rss1), "timings_s": rep["timings_s"], "kept": rep["kept"],
        "accounting_ok": rep["accounting_ok"], "pii_candidates": rep["pii_candidates"],
        "pii_recall": recall, "pii_fp_rate": round(fp_rate, 6),
        "presidio_alone_extrapolated_s": round(presidio_alone_s, 1),
        "presidio_alone_ms_per_prompt": round(per_prompt * 1e3, 4),
        "pii_eval_s": round(t_pii, 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
