"""Benchmark of the ingest stage on a simulated log (not part of the test suite).

    python bench/ingest.py [--scale 1000000] [--dir /tmp/ingest-bench] [--presidio-sample 5000]

Generates the log with the world generator (once; reused when present), runs `ingest` and
prints prompts per second, peak memory, the time per rule, PII recall per type on the world's
true spans, the false-positive rate on PII-free prompts, and Presidio alone without the
pre-filter on a sample (extrapolated to the whole log), and the adversarial figures: recall
per type with every true PII value rewritten (full-width forms, invisible characters,
Unicode spaces, dashes and digits: world.pii.adversarial), the false-positive rate on PII-free
prompts with a look-alike appended (versions, sections, OIDs, published test numbers), and
what the output gate's detector finds in the kept prompts (must be 0). The LAST line is one
JSON object.
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
    p.add_argument("--adversarial-sample", type=int, default=20000,
                   help="PII prompts rewritten adversarially, and PII-free prompts given a look-alike")
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
    t_gate = time.perf_counter()
    gate_findings = sum(bool(s) for s in PiiDetector(cfg.pii).find_many(res.kept["text"].tolist()))
    t_gate = time.perf_counter() - t_gate
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
    adv_recall, adv_tot, look_fp, look_n = _adversarial(det, rows, gold, args.adversarial_sample, args.seed)

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
    print(f"\nadversarial renderings of the true values (sample):")
    for k in adv_recall:
        print(f"{k:<16}{adv_tot[k]:>12,}{adv_recall[k]:>10.4f}")
    print(f"false positives on PII-free prompts with a look-alike: {look_fp:,} / {look_n:,} = "
          f"{look_fp / max(look_n, 1):.4%}")
    print(f"output gate's detector on the kept prompts: {gate_findings} with PII ({t_gate:.1f} s)")
    print(f"\nPII step with pre-filter (whole log):   {rep['timings_s']['pii']:8.1f} s")
    print(f"Presidio alone, no pre-filter (sample of {len(sample):,}, extrapolated): "
          f"{presidio_alone_s:8.1f} s  ({per_prompt * 1e3:.3f} ms/prompt)")
    print(f"speed-up of the PII step: {speedup:.1f}x")
    quality_ok = (all(recall.get(k, 1.0) >= v for k, v in RECALL_MIN.items()) and fp_rate <= FP_MAX
                  and all(adv_recall.get(k, 1.0) >= v for k, v in RECALL_MIN.items())
                  and look_fp / max(look_n, 1) <= FP_MAX and gate_findings == 0)
    accept = wall < TOTAL_MAX_S and rss1 + rss_children < PEAK_MAX_MB and quality_ok
    print(f"acceptance (< {TOTAL_MAX_S:.0f} s, < {PEAK_MAX_MB / 1024:.0f} GB, recall, FP): "
          f"{'PASS' if accept else 'FAIL'}")
    print(json.dumps({
        "rows_in": n, "total_s": round(wall, 2), "wall_s": round(wall, 2), "prompts_per_s": round(n / wall),
        "peak_rss_mb": round(rss1), "peak_rss_pool_worker_mb": round(rss_children),
        "timings_s": rep["timings_s"], "kept": rep["kept"],
        "accounting_ok": rep["accounting_ok"], "pii_candidates": rep["pii_candidates"],
        "pii_recall": recall, "pii_fp_rate": round(fp_rate, 6),
        "pii_recall_adversarial": adv_recall, "lookalike_fp_rate": round(look_fp / max(look_n, 1), 6),
        "gate_findings_on_kept": gate_findings, "gate_s": round(t_gate, 1),
        "presidio_alone_extrapolated_s": round(presidio_alone_s, 1),
        "presidio_alone_ms_per_prompt": round(per_prompt * 1e3, 4),
        "speedup_pii": round(speedup, 2),
        "pii_eval_s": round(t_pii, 1), "cpus": os.cpu_count(),
        "loadavg_1m_before": round(load_before[0], 2), "loadavg_1m_after": round(load_after[0], 2),
        "acceptance_pass": accept,
    }))
    return 0


def _adversarial(det, rows, gold, n: int, seed: int):
    """(recall per type on adversarially rewritten PII values, their counts, false positives
    on PII-free prompts with a look-alike appended, how many such prompts)."""
    import random

    from instructgpt.world.pii import adversarial, lookalike_sentence

    rng = random.Random(seed)
    texts, spans = [], []
    for pid, text in rows:
        true = sorted(gold.get(pid, []), key=lambda sp: sp["start"])
        if not true:
            continue
        out, new, last = [], [], 0
        for sp in true:
            out.append(text[last : sp["start"]])
            value = adversarial(text[sp["start"] : sp["end"]], rng)
            start = sum(map(len, out))
            new.append((sp["type"], start, start + len(value)))
            out.append(value)
            last = sp["end"]
        out.append(text[last:])
        texts.append("".join(out))
        spans.append(new)
        if len(texts) >= n:
            break
    hit, tot = Counter(), Counter()
    for true, found in zip(spans, det.find_many(texts)):
        for kind, start, end in true:
            tot[kind] += 1
            hit[kind] += any(s.type == kind and s.start < end and s.end > start for s in found)
    clean = [text + " " + lookalike_sentence(rng) for pid, text in rows if not gold.get(pid)][:n]
    look_fp = sum(bool(s) for s in det.find_many(clean))
    return {k: round(hit[k] / tot[k], 4) for k in sorted(tot)}, tot, look_fp, len(clean)


if __name__ == "__main__":
    raise SystemExit(main())
