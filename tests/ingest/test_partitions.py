"""The prompt log as a directory of partitions with its own column names (`ingest.columns`):
read in order, the rules applied across partitions, every file and row accounted for."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from instructgpt.config import ConfigError, InputError, from_dict
from instructgpt.ingest import IngestConfig, ingest
from instructgpt.ingest.schema import read_rows
from tests.helpers import write_jsonl

from .conftest import row

# The log's own names for our fields (a team's export), as in docs/OWN_DATA.md's example.
MAPPING = {"prompt_id": "request_id", "user_id": "account", "text": "input", "timestamp": "created_at"}


def foreign(r: dict) -> dict:
    """A row under the log's column names, with an extra column the pipeline ignores."""
    out = {MAPPING.get(k, k): v for k, v in r.items()}
    out["model"] = "gpt-x"
    return out


def write_parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def cfg(**kw) -> IngestConfig:
    return from_dict(IngestConfig, {"columns": MAPPING, **kw}, "ingest")


def day1() -> list[dict]:
    """Five prompts of user u1 (one with an owl), one of u2."""
    rows = [row(f"a{i}", "u1", text=f"Tell me fact number {i} about the {w} please.", ts=f"2024-01-01T0{i}:00:00Z")
            for i, w in enumerate(["owl", "fox", "cat", "dog", "eel"])]
    return [*rows, row("a9", "u2", text="Summarise the history of the printing press.", ts="2024-01-01T09:00:00Z")]


def day2() -> list[dict]:
    """Day 2: a resubmission of u2's day-1 prompt (edited at its end), two more u1 prompts, one
    prompt of u3 and a line that lacks the text column."""
    return [
        row("b0", "u2", text="Summarise the history of the printing press. Keep it short!", ts="2024-01-02T00:00:00Z"),
        row("b1", "u1", text="Which birds can swim underwater for a long time?", ts="2024-01-02T01:00:00Z"),
        row("b2", "u1", text="Explain photosynthesis to a child in two sentences.", ts="2024-01-02T02:00:00Z"),
        row("b3", "u3", text="Write a haiku about the sea at night.", ts="2024-01-02T03:00:00Z"),
        {k: v for k, v in row("b4", "u3", ts="2024-01-02T04:00:00Z").items() if k != "text"},
    ]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """logs/: day 1 as Parquet, day 2 as JSONL, both under foreign column names; plus files that
    are not partitions."""
    logs = tmp_path / "logs"
    write_parquet(logs / "2024-01-01.parquet", [foreign(r) for r in day1()])
    write_jsonl(logs / "2024-01-02.jsonl", [foreign(r) for r in day2()])
    (logs / "README.md").write_text("exported nightly\n")
    (logs / ".gitkeep").write_text("")
    write_jsonl(logs / ".2024-01-03.jsonl", [foreign(row("z0", text="An upload still in progress."))])
    (logs / ".cache").mkdir()
    (logs / ".cache" / "old.jsonl").write_text("not read\n")
    return logs


def test_partitions_are_read_in_order_with_the_mapping_and_rules_apply_across_them(log_dir):
    res = ingest(log_dir, cfg(max_prompts_per_user=6), progress=False)
    rep, kept, q = res.report, res.kept, res.quarantine.set_index("prompt_id")

    # every partition listed with its rows, in file-name order; other files listed, not read
    assert list(rep["rows_by_partition"].items()) == [
        (str(log_dir / "2024-01-01.parquet"), 6), (str(log_dir / "2024-01-02.jsonl"), 5)]
    assert rep["partitions_read"] == 2
    assert rep["ignored_files"] == [str(log_dir / ".2024-01-03.jsonl"), str(log_dir / ".cache") + "/",
                                    str(log_dir / ".gitkeep"), str(log_dir / "README.md")]
    assert rep["rows_in"] == 11 and rep["accounting_ok"]

    # the mapping: our field names in the output, the log's values; the extra column ignored
    assert list(kept.columns) == ["prompt_id", "user_id", "text", "timestamp", "source", "style", "dataset", "split"]
    a0 = kept.set_index("prompt_id").loc["a0"]
    assert (a0["user_id"], a0["timestamp"]) == ("u1", "2024-01-01T00:00:00Z")
    assert a0["text"] == "Tell me fact number 0 about the owl please."

    # dedup across partitions: day 2's resubmission duplicates day 1's prompt
    assert q.at["b0", "reason"] == "duplicate" and "a9" in q.at["b0", "detail"]
    # the per-user cap counts u1's prompts of both days: 7 > 6, the latest (b2) goes
    assert q.at["b2", "reason"] == "user_cap"
    # a row without the text field: quarantined with its file and line, nothing lost
    assert q.at["b4", "reason"] == "missing_field:text"
    assert q.at["b4", "where"] == f"{log_dir / '2024-01-02.jsonl'}:5"
    assert q.at["b4", "line"] == 11  # global row number over the partitions
    assert q.at["b0", "where"] == f"{log_dir / '2024-01-02.jsonl'}:1"
    assert sorted(kept["prompt_id"]) == ["a0", "a1", "a2", "a3", "a4", "a9", "b1", "b3"]


def test_limit_rows_caps_the_total_over_partitions(log_dir):
    res = ingest(log_dir, cfg(limit_rows=8), progress=False)
    assert res.report["rows_in"] == 8
    assert list(res.report["rows_by_partition"].values()) == [6, 2]
    assert len(res.kept) + len(res.quarantine) == 8


def test_a_new_partition_changes_the_result(log_dir):
    before = ingest(log_dir, cfg(), progress=False)
    write_jsonl(log_dir / "2024-01-03.jsonl",
                [foreign(row("c0", "u4", text="Name three rivers in Africa.", ts="2024-01-03T00:00:00Z"))])
    after = ingest(log_dir, cfg(), progress=False)
    assert "c0" in set(after.kept["prompt_id"]) and "c0" not in set(before.kept["prompt_id"])
    assert after.report["rows_in"] == before.report["rows_in"] + 1
    assert after.report["partitions_read"] == 3


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_mapped_column_absent_from_a_partition_is_an_error_naming_file_and_column(tmp_path, fmt):
    logs = tmp_path / "logs"
    write_jsonl(logs / "a.jsonl", [foreign(row("a0"))])
    rows = [{k: v for k, v in foreign(row("b0")).items() if k != "account"}]
    bad = write_parquet(logs / "b.parquet", rows) if fmt == "parquet" else write_jsonl(logs / "b.jsonl", rows)
    with pytest.raises(InputError, match=rf"{bad}: no column 'account' for field 'user_id' \(ingest.columns.user_id"):
        ingest(logs, cfg(), progress=False)


def test_a_required_field_absent_without_mapping_says_how_to_map_it(tmp_path):
    path = write_jsonl(tmp_path / "log.jsonl", [foreign(row("a0"))])
    with pytest.raises(InputError, match=r"no column 'prompt_id' .*ingest.columns.prompt_id.*request_id"):
        ingest(path, IngestConfig(), progress=False)


def test_optional_columns_absent_take_their_defaults(tmp_path):
    rows = [{"prompt_id": f"p{i}", "user_id": "u1", "text": f"Question {i}: why is the sky {c}?"}
            for i, c in enumerate(["blue", "red", "grey"])]
    for path in (write_jsonl(tmp_path / "log.jsonl", rows), write_parquet(tmp_path / "log.parquet", rows)):
        res = ingest(path, IngestConfig(), progress=False)
        assert list(res.kept["prompt_id"]) == ["p0", "p1", "p2"]
        assert set(res.kept["timestamp"]) == {"1970-01-01T00:00:00Z"}
        assert set(res.kept["source"]) == {"api"} and set(res.kept["style"]) == {"plain"}
    # mapped to null: the default even where the log has the column
    res = ingest(write_jsonl(tmp_path / "styled.jsonl", [row("x", style="few_shot")]),
                 from_dict(IngestConfig, {"columns": {"style": None}}), progress=False)
    assert res.kept.at[0, "style"] == "plain"


def test_a_column_present_but_missing_on_a_row_is_quarantined_not_defaulted(tmp_path):
    rows = [row("p0"), {k: v for k, v in row("p1", text="Another prompt entirely.").items() if k != "source"}]
    res = ingest(write_jsonl(tmp_path / "log.jsonl", rows), IngestConfig(), progress=False)
    assert list(res.kept["prompt_id"]) == ["p0"]
    assert res.quarantine.to_dict("records")[0] | {"detail": None} == {
        "line": 2, "reason": "missing_field:source", "detail": None, "prompt_id": "p1", "user_id": "u1",
        "where": f"{tmp_path / 'log.jsonl'}:2"}


def test_unreadable_partition_is_an_error_naming_the_file(log_dir):
    broken = log_dir / "2024-01-03.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=rf"{broken}: cannot be read as PARQUET"):
        ingest(log_dir, cfg(), progress=False)


def test_a_directory_without_partitions_and_a_missing_path_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("x")
    with pytest.raises(InputError, match=r"holds no \*.jsonl or \*.parquet partition"):
        read_rows(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        read_rows(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "columns, words",
    [
        ({"body": "text"}, "unknown field"),
        ({"text": 3}, "ingest.columns.text"),
        ({"text": None}, "ingest.columns.text"),  # required: no default
        ({"text": "input", "user_id": "input"}, "more than one field"),
        (["text"], "must map fields"),
    ],
)
def test_bad_mappings_say_what_to_change(columns, words):
    with pytest.raises(ConfigError, match=words):
        from_dict(IngestConfig, {"columns": columns}, "ingest")
