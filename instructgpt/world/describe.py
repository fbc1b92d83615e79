"""Statistics of a generated (or real) raw prompt log.

    python -m instructgpt.world.describe DIR

Reads DIR/prompts.jsonl as bytes (it may hold malformed rows), plus the gold files under
DIR/world/ when present (PII spans, task families). Prints one readable table.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

LONG_TEXT = 20000  # characters; longer texts count as malformed ("absurdly long")
_FIELDS = {"prompt_id": str, "user_id": str, "text": str, "timestamp": str, "source": str, "style": str}


def classify_line(raw: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """(defect, row): defect is None for a well-formed row."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return "not_json", None
    if not isinstance(row, dict):
        return "not_json", None
    for name, typ in _FIELDS.items():
        if name not in row:
            return f"missing_{name}", None
        if not isinstance(row[name], typ):
            return f"wrong_type_{name}", None
    text = row["text"]
    if not text.strip():
        return "empty_text", None
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        return "control_chars", None
    if len(text) > LONG_TEXT:
        return "too_long", None
    if not row["timestamp"][:4].isdigit():
        return "bad_timestamp", None
    return None, row


def near_duplicates(texts: list[str], min_share: float = 0.9, min_chars: int = 20) -> int:
    """Distinct texts that share a long common prefix (>= min_share of the shorter text) with
    another distinct text: the paper's dedup heuristic. Adjacent in sorted order suffices."""
    uniq = sorted(set(texts))
    flagged: set[int] = set()
    for i in range(1, len(uniq)):
        a, b = uniq[i - 1], uniq[i]
        n = min(len(a), len(b))
        k = 0
        while k < n and a[k] == b[k]:
            k += 1
        if k >= min_chars and k >= min_share * n:
            flagged.update((i - 1, i))
    return len(flagged)


def describe(data_dir: Path) -> dict[str, Any]:
    defects: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    with (data_dir / "prompts.jsonl").open("rb") as f:
        for raw in f:
            defect, row = classify_line(raw.rstrip(b"\n"))
            if defect:
                defects[defect] += 1
            else:
                rows.append(row)  # type: ignore[arg-type]
    per_user = Counter(r["user_id"] for r in rows)
    counts = list(per_user.values())
    texts = [r["text"] for r in rows]
    stats: dict[str, Any] = {
        "rows": len(rows) + sum(defects.values()), "well_formed": len(rows), "malformed": dict(defects),
        "users": len(per_user),
        "labeler_accounts": sum(1 for u in per_user if u.startswith("labeler-")),
        "prompts_per_user": {"max": max(counts, default=0), "median": statistics.median(counts) if counts else 0,
                             "mean": round(statistics.fmean(counts), 2) if counts else 0,
                             "users_over_200": sum(c > 200 for c in counts),
                             "share_users_over_200": round(sum(c > 200 for c in counts) / max(1, len(counts)), 4)},
        "exact_duplicate_rate": round(1 - len(set(texts)) / max(1, len(texts)), 4),
        "near_duplicate_rate": round(near_duplicates(texts) / max(1, len(texts)), 4),
        "source": dict(Counter(r["source"] for r in rows).most_common()),
        "style": dict(Counter(r["style"] for r in rows).most_common()),
    }
    pii_path = data_dir / "world" / "pii_spans.jsonl"
    if pii_path.exists():
        by_type: Counter[str] = Counter()
        any_pii = 0
        with pii_path.open(encoding="utf-8") as f:
            for line in f:
                spans = json.loads(line)["spans"]
                any_pii += bool(spans)
                by_type.update({s["type"] for s in spans})
        stats["pii_rate"] = {"any": round(any_pii / max(1, len(rows)), 4),
                             **{k: round(v / max(1, len(rows)), 4) for k, v in sorted(by_type.items())}}
    specs_path = data_dir / "world" / "specs.jsonl"
    if specs_path.exists():
        with specs_path.open(encoding="utf-8") as f:
            stats["family"] = dict(Counter(json.loads(line)["family"] for line in f).most_common())
    return stats


def _table(stats: dict[str, Any]) -> str:
    out: list[str] = []

    def row(label: str, value: Any) -> None:
        out.append(f"  {label:<28} {value}")

    def section(title: str) -> None:
        out.append(f"\n{title}\n" + "-" * len(title))

    def mix(title: str, d: dict[str, float | int], total: int, rates: bool = False) -> None:
        section(title)
        for k, v in d.items():
            row(k, f"{v:>7.2%}" if rates else f"{v:>7}  ({v / max(1, total):.1%})")

    section("log")
    for k in ("rows", "well_formed", "users", "labeler_accounts"):
        row(k, f"{stats[k]:>7}")
    section("prompts per user")
    for k, v in stats["prompts_per_user"].items():
        row(k, f"{v:>7.2%}" if k.startswith("share") else f"{v:>7}")
    section("duplicates")
    row("exact duplicate rate", f"{stats['exact_duplicate_rate']:>7.2%}")
    row("near-duplicate rate", f"{stats['near_duplicate_rate']:>7.2%}")
    if "pii_rate" in stats:
        mix("PII rate (share of well-formed rows)", stats["pii_rate"], 1, rates=True)
    total_bad = sum(stats["malformed"].values())
    mix(f"malformed rows ({total_bad}, {total_bad / max(1, stats['rows']):.2%} of rows)",
        dict(sorted(stats["malformed"].items())), total_bad)
    mix("source", stats["source"], stats["well_formed"])
    mix("style", stats["style"], stats["well_formed"])
    if "family" in stats:
        mix("family", stats["family"], sum(stats["family"].values()))
    return "\n".join(out).lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print statistics of a raw prompt log.")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--json", action="store_true", help="print the statistics as JSON instead")
    args = p.parse_args(argv)
    stats = describe(args.data_dir)
    print(json.dumps(stats, indent=1) if args.json else _table(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
