"""Rules 3-6 as pure functions on DataFrames: dedup, per-user cap, split, datasets.

Each takes the rows that survived the previous rules (columns of the schema plus `line` and
the parsed timestamp `ts`) and returns a boolean mask or a label column; no I/O.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from instructgpt.ingest.config import DatasetConfig, SplitConfig

SPLITS = ("train", "valid", "test")
DATASETS = ("sft", "rm", "ppo")


# RE2 pattern: any whitespace character (str.isspace, the set of Python's \s) but the space,
# or two spaces in a row.
_NOT_SINGLE_SPACE = (
    "[" + "".join(f"\\x{{{c:x}}}" for c in range(0x110000) if chr(c).isspace() and c != 0x20) + "]|  "
)


def normalise(text: pd.Series) -> pd.Series:
    """Text as compared by dedup: NFKC, casefolded, whitespace runs collapsed, stripped.
    ASCII texts (nearly all) take a vectorised path: NFKC leaves ASCII as it is and casefold
    is lower-casing there; the others go through Python's NFKC and casefold."""
    arr = pa.array(text.to_numpy(dtype=object), type=pa.large_string())
    is_ascii = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    if is_ascii.all():
        folded = pc.ascii_lower(arr)
    else:
        out = np.asarray(pc.ascii_lower(arr).to_pylist(), dtype=object)
        other = np.flatnonzero(~is_ascii)
        out[other] = (
            pd.Series(arr.take(pa.array(other)).to_pylist(), dtype="str")
            .str.normalize("NFKC").str.casefold().to_numpy(dtype=object)
        )
        folded = pa.array(out, type=pa.large_string())
    # Collapse whitespace runs (Python's \\s, as pandas applies it) only in texts where some run
    # is not a single space already (about a third): replacing " " by " " changes nothing.
    runs = pc.match_substring_regex(folded, _NOT_SINGLE_SPACE)
    if pc.any(runs).as_py():
        sub = pd.Series(pc.filter(folded, runs), dtype="str").str.replace(r"\s+", " ", regex=True)
        folded = pc.replace_with_mask(folded, runs, pa.array(sub.to_numpy(dtype=object), type=pa.large_string()))
    return pd.Series(folded, index=text.index, dtype="str").str.strip()


def duplicate_groups(norm: list[str], prefix_chars: int, min_chars: int) -> np.ndarray:
    """Group id per text. Sorting the normalised texts puts every prompt right after the
    prompts it extends, so one linear scan over the sorted order finds the groups: a text
    joins the current group when it starts with the group's first text cut to N chars, that
    first text having at least N chars (a common prefix of >= N chars) or at least
    `min_chars` (the whole shorter prompt is a prefix of the longer: a short prompt
    resubmitted with an edit at its end), or being equal to it. O(n log n) for the sort."""
    order = pc.sort_indices(pa.array(norm, type=pa.large_string())).to_numpy()  # (n,) byte order
    group = np.empty(len(norm), dtype=np.int64)
    g, head = -1, None
    for i in order.tolist():
        t = norm[i]
        if head is None or not (t.startswith(head) and (len(head) >= min_chars or t == head)):
            g += 1
            head = t[:prefix_chars]
        group[i] = g
    return group


def find_duplicates(rows: pd.DataFrame, prefix_chars: int, min_chars: int,
                    labels: np.ndarray | None = None) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    """Paper 3.2: prompts with a long common prefix are duplicates (`duplicate_groups`); keep
    one per group. The kept one is the row with the most labels (`labels`: per row, how many
    kinds of label people gave it, a demonstration and a human ranking; none when None), then
    the earliest by (timestamp, line). Labels first because a demonstration or a ranking is
    written for one prompt id: keeping an earlier unlabeled copy would throw it away, while any
    copy of the text serves as well as a prompt.
    Returns (mask of rows to drop, prompt_id of the kept row each dropped row duplicates, mask of
    kept rows that won over an earlier copy because of their labels)."""
    group = duplicate_groups(normalise(rows["text"]).tolist(), prefix_chars, min_chars)
    ts = rows["ts"].dt.tz_convert(None).to_numpy()
    line = rows["line"].to_numpy()
    n_labels = np.zeros(len(rows), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    order = np.lexsort((line, ts, -n_labels, group))  # (n,) by group, most labels, then ts, line
    g_sorted = group[order]
    same_as_prev = np.zeros(len(order), dtype=bool)
    same_as_prev[1:] = g_sorted[1:] == g_sorted[:-1]
    # Index (in sorted order) of the first row of each run of equal keys.
    run_start = np.maximum.accumulate(np.where(same_as_prev, 0, np.arange(len(order))))
    drop = np.zeros(len(order), dtype=bool)
    drop[order] = same_as_prev
    pids = rows["prompt_id"].to_numpy()
    kept_pid = np.empty(len(order), dtype=object)
    kept_pid[order] = pids[order[run_start]]
    # A kept row won by its labels when some copy in its group comes before it in time.
    earliest = np.lexsort((line, ts, group))  # (n,) by group, then ts, line
    first_of_group = np.ones(len(earliest), dtype=bool)
    first_of_group[1:] = group[earliest][1:] != group[earliest][:-1]
    is_earliest = np.zeros(len(earliest), dtype=bool)
    is_earliest[earliest] = first_of_group
    return drop, pd.Series(kept_pid, index=rows.index), ~drop & ~is_earliest


def cap_per_user(rows: pd.DataFrame, max_per_user: int) -> np.ndarray:
    """Paper 3.2: at most N prompts per user; keep each user's earliest by (timestamp,
    prompt_id), a deterministic choice that does not depend on the input order.
    Returns the mask of rows to drop."""
    ordered = rows.sort_values(["user_id", "ts", "prompt_id"], kind="stable")
    rank = ordered.groupby("user_id", sort=False).cumcount()  # 0-based rank within user
    drop = pd.Series(False, index=rows.index)
    drop[ordered.index] = (rank >= max_per_user).to_numpy()
    return drop.to_numpy()


def unit_hash(values: pd.Series, salt: str) -> np.ndarray:
    """Stable hash of each string to [0, 1): blake2b(salt + value), first 8 bytes / 2**64.
    Same value -> same number on every machine and every run, whatever else is in the data."""
    inverse, uniq = pd.factorize(values)
    salt_b = salt.encode()
    h = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(salt_b + u.encode(), digest_size=8).digest(), "big")
            for u in uniq
        ),
        dtype=np.uint64,
        count=len(uniq),
    )
    return (h >> np.uint64(11)).astype(np.float64)[inverse] / float(2**53)  # 53 bits: exact in f64


def assign_split(user_id: pd.Series, cfg: SplitConfig) -> pd.Series:
    """Paper 3.2: split by user id. A user's split depends only on its id and the salt, so
    adding data never moves an existing user."""
    u = unit_hash(user_id, cfg.salt)
    idx = np.searchsorted(np.cumsum([cfg.train, cfg.valid]), u, side="right")  # 0/1/2
    return pd.Series(np.asarray(SPLITS, dtype=object)[idx], index=user_id.index)


def assign_dataset(rows: pd.DataFrame, cfg: DatasetConfig) -> tuple[pd.Series, float]:
    """Paper 3.2: SFT and RM take API and labeler prompts, PPO API prompts only. An API prompt
    goes to PPO when its hash falls below q = ppo * n / n_api (so that PPO's overall share is
    `ppo`); every other prompt goes to SFT or RM in the ratio sft : rm by a second hash (to RM
    when sft + rm is 0, which `DatasetConfig` allows only with assign: labels).
    Returns (dataset per row, q)."""
    is_api = (rows["source"] == "api").to_numpy()
    n, n_api = len(rows), int(is_api.sum())
    q = min(1.0, cfg.ppo * n / n_api) if n_api else 0.0
    u_ppo = unit_hash(rows["prompt_id"], cfg.salt + "/ppo")
    u_sft = unit_hash(rows["prompt_id"], cfg.salt + "/sft")
    to_ppo = is_api & (u_ppo < q)
    sft_of_rest = cfg.sft / (cfg.sft + cfg.rm) if cfg.sft + cfg.rm > 0 else 0.0
    to_sft = u_sft < sft_of_rest
    ds = np.where(to_ppo, "ppo", np.where(to_sft, "sft", "rm")).astype(object)
    return pd.Series(ds, index=rows.index), q


ASSIGN_REASONS = ("share", "demonstration", "demonstration_and_ranking", "ranking", "labeler_prompt_to_rm")
"""Why a prompt is in its dataset (the ingest report counts each): by the shares; it has a
demonstration (-> SFT); a demonstration and a human ranking (-> SFT); a ranking only (-> RM); a
labeler-written prompt without labels when the shares send everything to PPO (-> RM)."""


def assign_by_labels(rows: pd.DataFrame, cfg: DatasetConfig, demonstrated: set[str],
                     ranked: set[str]) -> tuple[pd.Series, pd.Series, float]:
    """`assign: labels`: a prompt with a demonstration goes to SFT, one with a human ranking
    (and no demonstration) to RM, the rest by `assign_dataset` on the shares.
    Returns (dataset per row, reason per row (ASSIGN_REASONS), q of the rest)."""
    pid = rows["prompt_id"]
    has_demo = pid.isin(demonstrated).to_numpy()
    has_rank = pid.isin(ranked).to_numpy()
    rest = ~(has_demo | has_rank)
    ds = np.where(has_demo, "sft", "rm").astype(object)
    reason = np.where(has_demo, np.where(has_rank, "demonstration_and_ranking", "demonstration"),
                      "ranking").astype(object)
    q = 0.0
    if rest.any():
        shared, q = assign_dataset(rows[rest], cfg)
        ds[rest] = shared.to_numpy()
        forced = (shared == "rm").to_numpy() & (cfg.sft + cfg.rm <= 0)
        reason[rest] = np.where(forced, "labeler_prompt_to_rm", "share")
    return pd.Series(ds, index=rows.index), pd.Series(reason, index=rows.index), q
