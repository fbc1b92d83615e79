"""The Great Expectations gate: failures are named, with examples, and the report is saved."""

import json

import great_expectations.expectations as gxe
import pandas as pd
import pytest

from tasks.gates import GateFailed, Table, run_gate


def test_passing_gate_saves_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = pd.DataFrame({"prompt_id": ["a", "b"], "text": ["hi", "there"]})
    result = run_gate("demo", [Table("prompts", df, [gxe.ExpectColumnValuesToBeUnique(column="prompt_id")])])
    assert result.success
    saved = json.loads(result.report_path.read_text())
    assert saved["success"] is True and saved["checks"][0]["expectation"] == "expect_column_values_to_be_unique"


def test_failing_gate_names_expectation_and_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demos = pd.DataFrame({"prompt_id": ["p1", "nope"], "prompt_known": [True, False]})
    lengths = pd.DataFrame({"response": ["ok", ""]})
    with pytest.raises(GateFailed) as err:
        run_gate("sft", [
            Table("demonstrations", demos, [gxe.ExpectColumnValuesToBeInSet(column="prompt_known", value_set=[True])]),
            Table("responses", lengths, [gxe.ExpectColumnValueLengthsToBeBetween(column="response", min_value=1)]),
        ])
    message = str(err.value)
    assert "expect_column_values_to_be_in_set on demonstrations.prompt_known" in message
    assert "[False]" in message
    assert "expect_column_value_lengths_to_be_between on responses.response" in message
    assert "reports/gates/sft.inputs.json" in message
    saved = json.loads((tmp_path / "reports/gates/sft.inputs.json").read_text())
    assert saved["success"] is False
    assert sum(not c["success"] for c in saved["checks"]) == 2
