"""Benchmark: sampling throughput (label stage, evaluation, rollouts) against the plain loop.

``instructgpt.generation.sample`` runs a prompt repeated in a batch once and copies its KV cache
to its rows, batches prompts of similar length, and drops rows from the batch after their EOS.
This benchmark times it against ``plain_sample`` below, the loop it replaced (prompts in the
given order, every row's prompt run, every row kept until the longest answer ends), on the demo
base model (``models/demo-base``, from ``make data``) and prompts of ``data/prompts.jsonl``:

  label      64 prompts × 12 samples each, as the label stage draws 2K candidates (K = 6)
  evaluate   256 distinct prompts, one answer each, as the evaluate stage samples

Both at temperature 1, 48 new tokens, batch 64. Reports samples/s of each, the ratio and the mean
answer length (the two samplers draw different random numbers, so their answers differ, but
from the same distribution: the lengths agree). Timings are medians of repeats after a warm-up.
Prints a table and, as the LAST line, one JSON object. Not part of the test suite.

    .venv/bin/python bench/sampling.py [--threads N --repeats 3]   (~2 min idle)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instructgpt.data import collate_prompts  # noqa: E402
from instructgpt.generation import sample  # noqa: E402
from instructgpt.models import cache_kwarg, load_causal_lm  # noqa: E402


@torch.no_grad()
def plain_sample(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float,
                 batch_size: int, seed: int) -> list[list[int]]:
    """The reference: batches in the given order, every row run and kept to the batch's end."""
    g = torch.Generator().manual_seed(seed)
    eos, pad, kw = tokenizer.eos_token_id, tokenizer.pad_token_id, cache_kwarg(model)
    out = []
    for start in range(0, len(prompts), batch_size):
        b = collate_prompts(tokenizer, prompts[start: start + batch_size], 256 - max_new_tokens)
        o = model(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                  use_cache=True, logits_to_keep=1)
        past, logits, pos = o[kw], o.logits[:, -1], b.position_ids[:, -1:]
        mask = torch.cat([b.attention_mask, b.attention_mask.new_ones(len(pos), max_new_tokens)], 1)
        done = torch.zeros(len(pos), dtype=torch.bool)
        toks = []
        for t in range(max_new_tokens):
            nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=g).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            toks.append(nxt)
            done |= nxt == eos
            if bool(done.all()):
                break
            pos = pos + 1
            o = model(input_ids=nxt[:, None], attention_mask=mask[:, : b.input_ids.shape[1] + t + 1],
                      position_ids=pos, use_cache=True, **{kw: past})
            past, logits = o[kw], o.logits[:, -1]
        for row in torch.stack(toks, 1).tolist():
            out.append(row[: row.index(eos) + 1] if eos in row else row)
    return out


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models/demo-base"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_causal_lm(args.model)
    model.eval()
    texts = []
    for line in (ROOT / "data/prompts.jsonl").open(encoding="utf-8", errors="replace"):
        try:  # the demo log carries malformed rows on purpose (ingest quarantines them)
            text = json.loads(line).get("text")
        except (ValueError, AttributeError):
            continue
        if isinstance(text, str) and text.strip() and len(texts) < 320:
            texts.append(text)
    workloads = {"label": [t for t in texts[:64] for _ in range(12)], "evaluate": texts[64:320]}
    rows, figures = [], {"threads": torch.get_num_threads()}
    for name, prompts in workloads.items():
        new_s, new = timed(lambda: sample(model, tok, prompts, 48, 1.0, 64, seed=0), args.repeats)
        old_s, old = timed(lambda: plain_sample(model, tok, prompts, 48, 1.0, 64, seed=0), args.repeats)
        n = len(prompts)
        new_len = statistics.mean(len(s.response_ids) for s in new)
        old_len = statistics.mean(len(r) for r in old)
        rows.append((name, n, n / old_s, n / new_s, old_s / new_s, old_len, new_len))
        figures[name] = {"samples": n, "plain_samples_per_s": round(n / old_s, 1),
                         "samples_per_s": round(n / new_s, 1), "speedup": round(old_s / new_s, 2),
                         "mean_tokens_plain": round(old_len, 2), "mean_tokens": round(new_len, 2)}
    print(f"{'workload':10s} {'samples':>8s} {'plain/s':>9s} {'sample/s':>9s} {'speedup':>8s} {'tokens':>13s}")
    for name, n, a, b, r, la, lb in rows:
        print(f"{name:10s} {n:8d} {a:9.1f} {b:9.1f} {r:7.2f}x {la:6.2f}/{lb:6.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
