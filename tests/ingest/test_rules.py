"""Rules 3-7: dedup by long common prefix, per-user cap, split by user, datasets, accounting."""

from __future__ import annotations

import pandas as pd

from instructgpt.ingest import IngestConfig, ingest
from instructgpt.ingest.config import DatasetConfig, SplitConfig
from instructgpt.ingest.rules import assign_dataset, assign_split
from tests.helpers import write_jsonl

from .conftest import row

PREFIX = "Summarise the following report for a busy manager in five bullet points: "  # 73 chars


def _cfg(**kw) -> IngestConfig:
    return IngestConfig(dedup_prefix_chars=64, **kw)


def test_differ_only_after_prefix_are_merged_keeping_earliest(tmp_path):
    assert len(PREFIX) >= 64
    items = [
        row("late", text=PREFIX + "sales went up", ts="2022-03-01T00:00:00Z"),
        row("early", uid="u2", text=PREFIX.upper() + "  costs went down", ts="2022-02-01T00:00:00Z"),
    ]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), _cfg(), progress=False)
    assert list(res.kept["prompt_id"]) == ["early"]  # earliest timestamp, not first line
    q = res.quarantine.iloc[0]
    assert (q["line"], q["reason"], q["prompt_id"]) == (1, "duplicate", "late")
    assert res.report["deduplicated"] == 1


def test_differ_before_prefix_are_kept(tmp_path):
    a = "A" + PREFIX[1:] + "sales went up"
    b = "B" + PREFIX[1:] + "sales went up"  # differs at char 0, identical after
    c = PREFIX[:60] + "XXXX" + "sales went up"  # differs at char 60 < 64
    items = [row("a", text=a), row("b", text=b), row("c", text=PREFIX + "z"), row("d", text=c)]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), _cfg(), progress=False)
    assert sorted(res.kept["prompt_id"]) == ["a", "b", "c", "d"]


def test_short_prompts_are_duplicates_only_when_equal(tmp_path):
    items = [row("a", text="Tell me a joke."), row("b", text="tell  me a JOKE."), row("c", text="Tell me a joke!"),
             row("d", text="Tell me a joke. please")]  # "tell me a joke." has 15 < 16 chars
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), _cfg(), progress=False)
    assert sorted(res.kept["prompt_id"]) == ["a", "c", "d"]


def test_short_prompt_resubmitted_with_edit_is_duplicate(tmp_path):
    items = [row("a", text="List three foods ."), row("b", text="list three foods . please", ts="2022-01-02T00:00:00Z"),
             row("c", text="List three foods you like .")]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), _cfg(), progress=False)
    assert sorted(res.kept["prompt_id"]) == ["a", "c"]


def test_user_with_500_prompts_keeps_exactly_200_earliest(tmp_path):
    items = [
        row(f"p{i:03d}", uid="heavy", text=f"Prompt {i:03d}: name an animal", ts=f"2022-01-01T00:{i // 60:02d}:{i % 60:02d}Z")
        for i in reversed(range(500))  # file order is the reverse of time order
    ] + [row("other", uid="light", text="Another user's prompt")]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), _cfg(), progress=False)
    heavy = res.kept[res.kept["user_id"] == "heavy"]
    assert len(heavy) == 200
    assert set(heavy["prompt_id"]) == {f"p{i:03d}" for i in range(200)}
    assert res.report["capped"] == 300
    assert (res.quarantine["reason"] == "user_cap").sum() == 300
    assert "other" in set(res.kept["prompt_id"])


def test_new_user_added_later_moves_no_existing_user():
    users = pd.Series([f"user-{i}" for i in range(2000)])
    before = assign_split(users, SplitConfig())
    more = pd.concat([users, pd.Series([f"new-{i}" for i in range(500)])], ignore_index=True)
    after = assign_split(more, SplitConfig())
    assert (after[: len(users)].to_numpy() == before.to_numpy()).all()
    shares = before.value_counts(normalize=True)
    assert abs(shares["train"] - 0.8) < 0.04 and abs(shares["valid"] - 0.1) < 0.03


def test_no_user_in_two_splits(tmp_path):
    items = [row(f"p{i}", uid=f"u{i % 37}", text=f"Prompt {i} about item {i * 7}") for i in range(600)]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), _cfg(), progress=False)
    assert (res.kept.groupby("user_id")["split"].nunique() == 1).all()
    assert set(res.kept["split"]) <= {"train", "valid", "test"}


def test_datasets_labeler_prompts_never_in_ppo_and_shares_hold():
    n = 20000
    rows = pd.DataFrame(
        {"prompt_id": [f"p{i}" for i in range(n)], "source": ["labeler" if i % 4 == 0 else "api" for i in range(n)]}
    )
    cfg = DatasetConfig()
    ds, q = assign_dataset(rows, cfg)
    assert not ((rows["source"] == "labeler") & (ds == "ppo")).any()
    shares = ds.value_counts(normalize=True)
    for name in ("sft", "rm", "ppo"):
        assert abs(shares[name] - getattr(cfg, name)) < 0.015, shares
    assert abs(q - 0.4 / 0.75) < 1e-9


def test_accounting_identity_and_report_counts(tmp_path):
    items = [
        row("ok1", text="Explain photosynthesis simply."),
        row("pii", text="My email is jane.roe@example.org, reply soon"),
        row("dup", uid="u9", text="explain   photosynthesis simply.", ts="2022-05-01T00:00:00Z"),
        b"oops\n",
        row("ok2", source="labeler", style="few_shot", text="Q: 2+2? A: 4\nQ: 3+3? A:"),
    ]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), _cfg(), progress=False)
    r = res.report
    assert r["rows_in"] == 5 and r["kept"] == 2 and r["removed"] == 3
    assert r["quarantined_by_reason"] == {"duplicate": 1, "invalid_json": 1, "pii:EMAIL": 1}
    assert r["pii_by_type"]["EMAIL"] == 1
    assert sum(v for d in r["kept_by_dataset_split"].values() for v in d.values()) == 2
    assert r["accounting_ok"]
    assert set(r["timings_s"]) == {"schema", "pii", "dedup", "cap", "split_datasets"}


def test_normalise_matches_the_plain_pandas_definition():
    """`normalise` takes vectorised short cuts (ASCII, single spaces); it must give what the
    plain definition gives, including Unicode whitespace and case folding."""
    from instructgpt.ingest.rules import normalise

    texts = [
        "Write  a\tpoem\n\nabout   the sea ", "plain text only", "  ＡＢＣ\u00a0x  ", "Straße\u2028 ß ",
        "\u3000hi\tthere\r\n", "ﬁne Ǆ", "İstanbul", "x\u1680y ", "\u2029a b\u2029", "", " ", "A\u2003B",
        "Éclair  CAFÉ", "x\x1cy", "tab\tonly",
    ]
    s = pd.Series(texts * 2, dtype="str", index=range(100, 100 + 2 * len(texts)))
    ref = s.str.normalize("NFKC").str.casefold().str.replace(r"\s+", " ", regex=True).str.strip()
    got = normalise(s)
    assert got.tolist() == ref.tolist()
    assert got.index.equals(s.index)
    ascii_only = pd.Series(["A  b", "c d", "E\tF"], dtype="str")
    assert normalise(ascii_only).tolist() == ["a b", "c d", "e f"]


def test_fast_jsonl_reader_keeps_the_per_row_checks(tmp_path):
    """The reader's fast path (all six fields strings) must leave the odd rows to the checks."""
    items = [
        row("p1"),
        {**row("p2"), "extra": 1},
        {k: v for k, v in row("p3").items() if k != "style"},
        {**row("p4"), "text": 5},
        [1, 2],
        b"\n",
        row("p5"),
    ]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), IngestConfig(), progress=False)
    assert sorted(res.kept["prompt_id"]) == ["p1", "p2", "p5"]
    reasons = dict(zip(res.quarantine["line"], res.quarantine["reason"]))
    assert reasons == {3: "missing_field:style", 4: "wrong_type:text", 5: "not_an_object", 6: "empty_line"}
