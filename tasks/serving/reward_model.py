"""The reward model as an MLflow model from code: (prompt, response) rows in, r(x, y) out
(see __init__.py). Scores come from the library's ``instructgpt.scoring.score_pairs`` with the RM's
own tokenizer and prompt format (its chat template when it has one), bias included."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class RewardModelScorer(mlflow.pyfunc.PythonModel):
    """A reward-model directory (artifact ``model``: backbone, scalar head, bias, tokenizer) as a pyfunc."""

    def load_context(self, context) -> None:
        from instructgpt.scoring import load_reward_model

        self.model, self.tokenizer = load_reward_model(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[float]:
        from instructgpt.scoring import score_pairs

        pairs = list(zip(model_input["prompt"].astype(str), model_input["response"].astype(str)))
        return [float(x) for x in score_pairs(self.model, self.tokenizer, pairs)]


mlflow.models.set_model(RewardModelScorer())
