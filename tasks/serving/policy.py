"""The policy as an MLflow model from code: prompts in, sampled responses out (see __init__.py).

Responses are sampled by the library's ``sample``, so a registered policy formats prompts
(``instructgpt.text.prompt_context``: the model's chat template when its tokenizer has one, else
the plain format) and samples exactly as the pipeline's evaluation does.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class CausalLMPolicy(mlflow.pyfunc.PythonModel):
    """A Hugging Face causal-LM directory (artifact ``model``) as a pyfunc."""

    def load_context(self, context) -> None:
        from instructgpt.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[str]:
        """Prompts: the frame's column ``prompt``, else its first column (pyfunc turns a list of
        strings into a one-column frame). ``params``: temperature, max_new_tokens, seed,
        batch_size; pyfunc fills in the ones a caller leaves out with the defaults logged in the
        signature (tasks/registry.py)."""
        from instructgpt.generation import sample

        prompts = model_input["prompt" if "prompt" in model_input else model_input.columns[0]].astype(str).tolist()
        p = params or {}
        out = sample(self.model, self.tokenizer, prompts, max_new_tokens=int(p["max_new_tokens"]),
                     temperature=float(p["temperature"]), batch_size=int(p["batch_size"]), seed=int(p["seed"]))
        return [s.response for s in out]


mlflow.models.set_model(CausalLMPolicy())
