"""Rule 1: every malformed row kind is quarantined with its reason and line; none vanish."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from instructgpt.ingest import IngestConfig, ingest
from tests.helpers import write_jsonl

from .conftest import row


def _bad(field: str, value) -> dict:
    r = row(f"bad-{field}-{value!r}"[:40])
    if value is ...:
        del r[field]
    else:
        r[field] = value
    return r


CASES = [
    (b"{not json\n", "invalid_json"),
    (b'{"prompt_id": "x", "text": "caf\xe9"}\n', "invalid_utf8"),
    (b"[1, 2, 3]\n", "not_an_object"),
    (b"   \n", "empty_line"),
    (_bad("user_id", ...), "missing_field:user_id"),
    (_bad("timestamp", None), "missing_field:timestamp"),
    (_bad("text", 42), "wrong_type:text"),
    (_bad("source", ["api"]), "wrong_type:source"),
    (_bad("text", "   \n "), "empty_text"),
    (_bad("user_id", ""), "empty_field:user_id"),
    (_bad("text", "hello\x00world"), "control_chars"),
    (_bad("prompt_id", "p\x1b[31m"), "control_chars"),
    (_bad("text", "x" * 101), "too_long"),
    (_bad("timestamp", "yesterday"), "invalid_timestamp"),
    (_bad("source", "web"), "invalid_value:source"),
    (_bad("style", "haiku"), "invalid_value:style"),
]


def test_every_malformed_kind_is_quarantined_with_reason_and_line(tmp_path):
    good = [row("g1"), row("g2", text="Tabs\tand\nnewlines are fine in text.")]
    items = [good[0], *[c[0] for c in CASES], good[1], row("g1", text="same id again")]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), IngestConfig(max_text_chars=100), progress=False)

    q = res.quarantine.set_index("line")
    for i, (_, reason) in enumerate(CASES):
        assert q.at[i + 2, "reason"] == reason, (i + 2, q.loc[i + 2].to_dict())
    last = len(items)
    assert q.at[last, "reason"] == "duplicate_id"
    assert list(res.kept["prompt_id"]) == ["g1", "g2"]
    assert res.report["rows_in"] == len(items)
    assert len(res.kept) + len(res.quarantine) == len(items)
    assert res.report["accounting_ok"]
    json.dumps(res.report)  # serialisable
    # Details never quote the row's text.
    assert not q["detail"].str.contains("caf|hello|xxxx").any()


def test_limit_rows_reads_only_first_lines(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl",
                       [row(f"p{i}", text=f"Prompt number {i} is about {'abcdefghij'[i]} things") for i in range(10)])
    res = ingest(path, IngestConfig(limit_rows=4), progress=False)
    assert res.report["rows_in"] == 4
    assert len(res.kept) + len(res.quarantine) == 4


def test_parquet_input_same_rules(tmp_path):
    rows = [row("a", text="First prompt about owls"), row("b", text=""), row("c", text="Third prompt about swans")]
    path = tmp_path / "prompts.parquet"
    pd.DataFrame(rows).to_parquet(path)
    res = ingest(path, IngestConfig(), progress=False)
    assert list(res.kept["prompt_id"]) == ["a", "c"]
    assert res.quarantine.to_dict("records")[0]["line"] == 2
    assert res.quarantine.to_dict("records")[0]["reason"] == "empty_text"


@pytest.mark.parametrize("mode", ["drop", "redact"])
def test_empty_input(tmp_path, mode):
    cfg = IngestConfig()
    cfg.pii.mode = mode
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", []), cfg, progress=False)
    assert res.report["rows_in"] == 0 and res.report["accounting_ok"]
    assert list(res.kept.columns) == ["prompt_id", "user_id", "text", "timestamp", "source", "style", "dataset", "split"]
    assert list(res.quarantine.columns) == ["line", "reason", "detail", "prompt_id", "user_id", "where"]
