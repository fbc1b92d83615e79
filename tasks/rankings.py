"""The rankings suite shared by the label stage (its outputs) and the rm stage (its inputs)."""

from __future__ import annotations

import great_expectations.expectations as gxe
import pandas as pd

from instructgpt.preferences import is_permutation
from tasks.gates import Table


def ranking_tables(rows: list[dict], k_min: int, k_max: int) -> list[Table]:
    """Every ranking a permutation of K distinct outputs, K in range, labeler ids present."""
    frame = pd.DataFrame(
        {
            "prompt_id": [r["prompt_id"] for r in rows],
            "labeler_id": [r["labeler_id"] for r in rows],
            "k": [len(r["responses"]) for r in rows],
            "is_permutation": [is_permutation(r["ranking"], len(r["responses"])) for r in rows],
            "distinct_outputs": [len(set(r["responses"])) == len(r["responses"]) for r in rows],
        }
    )
    return [
        Table("rankings", frame, [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="labeler_id"),
            gxe.ExpectColumnValuesToBeBetween(column="k", min_value=k_min, max_value=k_max),
            gxe.ExpectColumnValuesToBeInSet(column="is_permutation", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="distinct_outputs", value_set=[True]),
        ])
    ]
