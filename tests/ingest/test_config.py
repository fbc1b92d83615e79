"""IngestConfig from params: nested sections merged over the defaults, errors that say what to change."""

from __future__ import annotations

import pytest

from instructgpt.config import ConfigError, from_dict
from instructgpt.ingest import IngestConfig, PiiConfig, SplitConfig


def test_from_params_nested():
    cfg = from_dict(
        IngestConfig,
        {"dedup_prefix_chars": 32, "limit_rows": 100, "pii": {"mode": "redact"},
         "split": {"train": 0.9, "valid": 0.05, "test": 0.05}},
        "ingest",
    )
    # each given value lands in its (nested) field; a key left out, at any depth, keeps the
    # config's own default (a half-given nested section is merged, not replaced)
    assert cfg == IngestConfig(dedup_prefix_chars=32, limit_rows=100, pii=PiiConfig(mode="redact"),
                               split=SplitConfig(train=0.9, valid=0.05, test=0.05))


@pytest.mark.parametrize(
    "params, words",
    [
        ({"pii": {"mode": "mask"}}, "ingest.pii.mode"),
        ({"pii": {"types": ["EMAIL", "DNA"]}}, "DNA"),
        ({"split": {"train": 0.8, "valid": 0.3, "test": 0.1}}, "sum to 1"),
        ({"datasets": {"sft": 0.0, "rm": 0.0, "ppo": 1.0}}, "labeler"),
        ({"max_prompts_per_user": 0}, "max_prompts_per_user"),
        ({"dedup_prefix_chars": "long"}, "expected int"),
        ({"unknown": 1}, "unknown key"),
    ],
)
def test_bad_params_say_what_to_change(params, words):
    with pytest.raises(ConfigError, match=words):
        from_dict(IngestConfig, params, "ingest")
