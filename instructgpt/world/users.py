"""API users and the raw prompt log (paper section 3.2).

Users submit a heavy-tailed number of prompts (a few far above the 200-per-user cap),
sometimes re-submit a prompt with a small edit at its end (long common prefix) or verbatim,
and sometimes paste personal information. Labelers write prompts too, in the three styles.
The log is built row by row with `random.Random` only, so a seed gives the same log.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from instructgpt.world.facts import FactTable
from instructgpt.world.families import FAMILIES, FAMILY_MIX
from instructgpt.world.pii import PII_MIX, pii_sentence
from instructgpt.world.styles import USE_CASES, render

T0 = 1609459200  # 2021-01-01T00:00:00Z: the log covers about a year from here
YEAR = 365 * 24 * 3600
_API_STYLES = (("plain", 0.8), ("few_shot", 0.12), ("user_based", 0.08))
_LABELER_STYLES = (("plain", 0.4), ("few_shot", 0.3), ("user_based", 0.3))
# Small edits at the end of a re-submitted prompt: the prefix stays long and common.
_EDITS = (" please", " thanks", " thank you", " now", " again", " ok")


@dataclass
class LogRow:
    """One well-formed row of the raw log, with its gold (spec and PII spans)."""

    user_id: str
    text: str
    t: int  # seconds since the epoch, UTC
    source: str
    style: str
    family: str
    spec: dict[str, Any]
    spans: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "original"  # original | duplicate | near_duplicate


@dataclass(frozen=True)
class LogConfig:
    n_rows: int  # about this many rows, malformed ones included
    labeler_share: float = 0.17  # paper: labeler-written prompts bootstrap the process
    pii_rate: float = 0.1  # share of prompts that carry PII
    duplicate_rate: float = 0.035
    near_duplicate_rate: float = 0.06
    prompts_per_user: float = 14.0  # mean; lognormal with sigma below gives the heavy tail
    sigma: float = 1.45
    # When set, API prompts are drawn from this many pre-rendered tasks per (family, style)
    # instead of being rendered one by one: the --scale path, where speed matters more than
    # the diversity of million-row logs (PII, edits and users are still drawn per row).
    pool_per_cell: int | None = None


def _heavy_tail_counts(rng: random.Random, n_users: int, total: int, sigma: float) -> list[int]:
    """Lognormal prompt counts summing to about `total`, each user at least one prompt."""
    raw = [rng.lognormvariate(0.0, sigma) for _ in range(n_users)]
    # No single user owns more than 4 % of the log (still far above the 200 cap at demo size).
    cap = max(1.0, 0.04 * total)
    scale = total / sum(raw)
    for _ in range(8):  # re-scale the uncapped users so that capping does not shrink the log
        capped = sum(cap for x in raw if x * scale >= cap)
        free = sum(x for x in raw if x * scale < cap)
        scale = max(scale, (total - capped) / free) if free else scale
    return [max(1, int(min(cap, x * scale) + rng.random())) for x in raw]


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x, acc = rng.random(), 0.0
    for name, p in table:
        acc += p
        if x < acc:
            return name
    return table[-1][0]


def _with_pii(text: str, rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    """Add one or two PII sentences before or after the task and return the spans."""
    kinds = list(PII_MIX)
    weights = list(PII_MIX.values())
    spans: list[dict[str, Any]] = []
    for _ in range(2 if rng.random() < 0.25 else 1):
        kind = rng.choices(kinds, weights)[0]
        sentence, s, e, value = pii_sentence(kind, rng)
        if rng.random() < 0.5:  # before: shift existing spans
            shift = len(sentence) + 1
            spans = [dict(sp, start=sp["start"] + shift, end=sp["end"] + shift) for sp in spans]
            text = f"{sentence} {text}"
            spans.append({"start": s, "end": e, "type": kind, "value": value})
        else:
            base = len(text) + 1
            text = f"{text} {sentence}"
            spans.append({"start": base + s, "end": base + e, "type": kind, "value": value})
    spans.sort(key=lambda sp: sp["start"])
    return text, spans


def _family_table() -> tuple[tuple[str, float], ...]:
    return tuple(FAMILY_MIX.items())


Pool = dict[tuple[str, str], list[tuple[dict[str, Any], str]]]


def _make_pool(rng: random.Random, facts: FactTable, per_cell: int) -> Pool:
    """Pre-rendered (spec, text) per (family, style); user-based texts lack the use case."""
    pool: Pool = {}
    for family, fam in FAMILIES.items():
        for style in ("plain", "few_shot"):
            cell = []
            for _ in range(per_cell):
                spec = fam.sample_spec(rng, facts)
                cell.append((spec, render(fam, spec, style, rng, facts)))
            pool[(family, style)] = cell
    return pool


def _new_prompt(rng: random.Random, facts: FactTable, user_id: str, source: str, t: int,
                fav: str, use_case: int, pii_rate: float, pool: Pool | None = None) -> LogRow:
    family = fav if rng.random() < 0.5 else _pick(rng, _family_table())
    style = _pick(rng, _API_STYLES if source == "api" else _LABELER_STYLES)
    fam = FAMILIES[family]
    if pool is None:
        spec = fam.sample_spec(rng, facts)
        text = render(fam, spec, style, rng, facts, use_case)
    else:
        cell = pool[(family, "few_shot" if style == "few_shot" else "plain")]
        spec, text = cell[int(rng.random() * len(cell))]
        if style == "user_based":
            text = f"{USE_CASES[use_case]} {text}"
    spans: list[dict[str, Any]] = []
    if rng.random() < (pii_rate if source == "api" else pii_rate / 4):
        text, spans = _with_pii(text, rng)
    return LogRow(user_id, text, t, source, style, family, spec, spans)


def _resubmit(rng: random.Random, row: LogRow, near: bool) -> LogRow:
    text = row.text + rng.choice(_EDITS) if near else row.text
    return LogRow(row.user_id, text, row.t + rng.randint(20, 3600), row.source, row.style,
                  row.family, row.spec, [dict(s) for s in row.spans],
                  "near_duplicate" if near else "duplicate")


def build_log(rng: random.Random, facts: FactTable, cfg: LogConfig,
              labeler_ids: list[str]) -> list[LogRow]:
    """Well-formed rows, in timestamp order (malformed rows are added by the writer)."""
    extra = 1.0 + cfg.duplicate_rate + cfg.near_duplicate_rate
    n_labeler = int(cfg.n_rows * cfg.labeler_share / extra)
    n_api = int(cfg.n_rows / extra) - n_labeler
    n_users = max(3, round(n_api / cfg.prompts_per_user))
    counts = _heavy_tail_counts(rng, n_users, n_api, cfg.sigma)
    families = list(FAMILY_MIX)
    pool = _make_pool(rng, facts, cfg.pool_per_cell) if cfg.pool_per_cell else None
    rows: list[LogRow] = []
    for u, count in enumerate(counts):
        user_id = f"u{u:06d}"
        fav, use_case = rng.choice(families), rng.randrange(len(USE_CASES))
        t = T0 + rng.randrange(YEAR)
        gap = rng.choice((600, 3600, 86400))  # bursty, hourly or daily users
        for _ in range(count):
            t += int(rng.expovariate(1.0 / gap)) + 1
            rows.append(_new_prompt(rng, facts, user_id, "api", t, fav, use_case, cfg.pii_rate, pool))
    for _ in range(n_labeler):
        labeler = rng.choice(labeler_ids)
        rows.append(_new_prompt(rng, facts, f"labeler-{labeler}", "labeler", T0 + rng.randrange(YEAR),
                                rng.choice(families), rng.randrange(len(USE_CASES)), cfg.pii_rate))
    originals = len(rows)
    for i in range(originals):
        x = rng.random()
        if x < cfg.duplicate_rate:
            rows.append(_resubmit(rng, rows[i], near=False))
        elif x < cfg.duplicate_rate + cfg.near_duplicate_rate:
            rows.append(_resubmit(rng, rows[i], near=True))
    rows.sort(key=lambda r: (r.t, r.user_id))  # stable sort: ties keep generation order
    return rows
