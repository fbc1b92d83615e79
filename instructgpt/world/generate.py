"""Write a seeded world: raw prompt log, demonstrations, corpus, cloze task and gold files.

    python -m instructgpt.world.generate --out data [--profile tiny|demo] [--seed 0] [--scale N]

Same seed, same bytes: every random draw comes from one `random.Random(seed)` (or a stream
derived from it by name), files are written with a fixed key order and "\\n" line ends.
`--scale N` writes only a log of about N rows (plus its PII gold) for ingestion benchmarks.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from instructgpt.world.corpus import corpus_vocabulary, corpus_words, glossary, make_corpus, make_nlp_task
from instructgpt.world.facts import FactTable
from instructgpt.world.families import FAMILIES, words
from instructgpt.world.labelers_sim import calibrate, sample_pool, stable_int
from instructgpt.world.malformed import malformed_lines
from instructgpt.world.users import LogConfig, LogRow, build_log
from instructgpt.world.world import World


@dataclass(frozen=True)
class Profile:
    n_rows: int  # raw log rows (about)
    n_docs: int  # corpus documents
    n_nlp: int  # cloze items
    n_training_labelers: int = 16
    n_heldout_labelers: int = 8
    n_calibration: int = 400  # prompts used to calibrate labeler noise


PROFILES: dict[str, Profile] = {
    "tiny": Profile(n_rows=400, n_docs=400, n_nlp=60, n_calibration=150),
    "demo": Profile(n_rows=20000, n_docs=15000, n_nlp=500),
}


def _iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_str = json.encoder.encode_basestring  # JSON string literal, ensure_ascii=False flavour


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _write_lines(path: Path, lines: list[str] | list[bytes]) -> None:
    with path.open("wb") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n")


def _log_lines(rows: list[LogRow], rng: random.Random) -> tuple[list[bytes], list[tuple[str, LogRow]]]:
    """Serialise rows, weave in malformed ones, assign prompt ids in file order."""
    n_bad = max(9, round(0.004 * len(rows)))
    bad = malformed_lines(rng, n_bad, [rows[rng.randrange(len(rows))].text for _ in range(n_bad)])
    slots = sorted(rng.sample(range(len(rows) + n_bad), n_bad))
    lines: list[bytes] = []
    good: list[tuple[str, LogRow]] = []
    bad_i = row_i = 0
    for pos in range(len(rows) + n_bad):
        pid = f"p{pos:07d}"
        if bad_i < n_bad and slots[bad_i] == pos:
            lines.append(bad[bad_i](pid))
            bad_i += 1
            continue
        r = rows[row_i]
        row_i += 1
        good.append((pid, r))
        # Hand-formatted (same bytes as json.dumps of the dict): 5x faster at --scale sizes.
        lines.append((f'{{"prompt_id": "{pid}", "user_id": {_str(r.user_id)}, "text": {_str(r.text)}, '
                      f'"timestamp": "{_iso(r.t)}", "source": "{r.source}", "style": "{r.style}"}}').encode("utf-8"))
    return lines, good


def _pii_lines(good: list[tuple[str, LogRow]]) -> list[str]:
    return [_dumps({"prompt_id": pid, "spans": r.spans}) for pid, r in good if r.spans]


def _demonstration(facts: FactTable, spec: dict[str, Any], pid: str, labelers: list[Any]) -> dict[str, Any]:
    lab = labelers[stable_int("demo", pid) % len(labelers)]
    # Labelers differ in wording (their variant), never in form: every demonstration is
    # well-formed (a dropped final full stop would teach SFT to stop mid-sentence).
    text = FAMILIES[spec["family"]].gold(spec, facts, lab.variant)
    return {"prompt_id": pid, "labeler_id": lab.labeler_id, "response": text}


def generate(out: Path, profile: str = "demo", seed: int = 0, scale: int | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "world").mkdir(exist_ok=True)
    rng = random.Random(seed)
    facts = FactTable.sample(rng)
    prof = PROFILES[profile]
    n_rows = scale if scale else prof.n_rows
    train_specs = sample_pool(random.Random(stable_int(seed, "train")), "t", prof.n_training_labelers, heldout=False)
    held_specs = sample_pool(random.Random(stable_int(seed, "heldout")), "h", prof.n_heldout_labelers, heldout=True)
    pool = 3000 if scale else None  # pre-rendered tasks per (family, style) cell
    rows = build_log(random.Random(stable_int(seed, "log")), facts, LogConfig(n_rows=n_rows, pool_per_cell=pool),
                     [s.labeler_id for s in train_specs])
    lines, good = _log_lines(rows, random.Random(stable_int(seed, "malformed")))
    _write_lines(out / "prompts.jsonl", lines)
    _write_lines(out / "world" / "pii_spans.jsonl", _pii_lines(good))
    counts: dict[str, Any] = {"rows": len(lines), "well_formed": len(good), "malformed": len(lines) - len(good),
                              "users": len({r.user_id for _, r in good}),
                              "injected_duplicates": sum(r.kind == "duplicate" for _, r in good),
                              "injected_near_duplicates": sum(r.kind == "near_duplicate" for _, r in good),
                              "with_pii": sum(bool(r.spans) for _, r in good)}
    meta: dict[str, Any] = {"format_version": 1, "seed": seed, "profile": profile, "scale": bool(scale),
                            "families": list(FAMILIES), "counts": counts}
    (out / "world" / "facts.json").write_text(_dumps(facts.to_json()) + "\n", encoding="utf-8")
    if scale:
        (out / "world" / "world.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        return meta

    specs = {pid: r.spec for pid, r in good}
    texts = {pid: r.text for pid, r in good}
    # Demonstrations and corpus first: the corpus's tokens are the vocabulary that judging needs
    # (calibration below judges). Calibration changes only tau, never a labeler's wording habit.
    demos = [_demonstration(facts, specs[pid], pid, train_specs) for pid, _ in good]
    crng = random.Random(stable_int(seed, "corpus"))
    docs = make_corpus(crng, facts, prof.n_docs)
    used: set[str] = set()
    for _, r in good:
        text = r.text
        for sp in reversed(r.spans):  # PII values are not vocabulary
            text = text[:sp["start"]] + text[sp["end"]:]
        used.update(words(text))
    for d in demos:
        used.update(words(d["response"]))
    missing = used - corpus_words(docs)
    docs += glossary(missing, crng)
    crng.shuffle(docs)
    vocabulary = corpus_vocabulary(docs)

    world = World(facts, specs, texts, train_specs, held_specs, meta, frozenset(vocabulary))
    # Calibrate labeler noise on model-like outputs (paper: 72.6 % agreement).
    cal_rng = random.Random(stable_int(seed, "calibration"))
    cal_ids = sorted(cal_rng.sample(sorted(specs), min(prof.n_calibration, len(specs))))
    groups = [[(world.judge(pid, c), c) for c in world.candidates(pid, 4, 0)] for pid in cal_ids]
    train_specs, held_specs, agreement = calibrate(groups, train_specs, held_specs)

    _write_lines(out / "demonstrations.jsonl", [_dumps(d) for d in demos])
    _write_lines(out / "corpus.jsonl", [_dumps({"doc_id": f"d{i:06d}", "kind": d["kind"], "text": d["text"]})
                                        for i, d in enumerate(docs)])
    (out / "world" / "vocabulary.json").write_text(json.dumps(vocabulary, indent=0) + "\n", encoding="utf-8")
    nlp = make_nlp_task(random.Random(stable_int(seed, "nlp")), facts, prof.n_nlp)
    _write_lines(out / "nlp_task.jsonl", [_dumps(x) for x in nlp])

    _write_lines(out / "world" / "specs.jsonl", [
        _dumps({"prompt_id": pid, "family": r.family, "style": r.style, "source": r.source,
                "kind": r.kind, "text": r.text, "spec": r.spec}) for pid, r in good])
    (out / "world" / "labelers.json").write_text(json.dumps(
        {"training": [asdict(s) for s in train_specs], "heldout": [asdict(s) for s in held_specs],
         "agreement": agreement}, indent=1) + "\n", encoding="utf-8")
    counts.update({"demonstrations": len(demos), "corpus_docs": len(docs), "glossary_words": len(missing),
                   "nlp_items": len(nlp), "training_labelers": len(train_specs),
                   "heldout_labelers": len(held_specs)})
    meta["agreement"] = agreement
    (out / "world" / "world.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory (e.g. data)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=None, help="write only a log of about N rows")
    args = p.parse_args(argv)
    if args.scale is not None and args.scale < 100:
        p.error("--scale must be at least 100 rows")
    t0 = time.perf_counter()
    meta = generate(args.out, args.profile, args.seed, args.scale)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f}s: {json.dumps(meta['counts'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
