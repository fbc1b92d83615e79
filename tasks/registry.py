"""The MLflow model registry: policy and reward model as pyfunc models, aliases `candidate` and
`champion`.

Every evaluated policy is registered as a new version of ``instructgpt-policy`` (alias
`candidate`); `champion` moves only when the candidate beats the current champion with the
held-out labelers (win rate above 50 % with its 95 % interval excluding 50 %), or when there is
no champion yet. The reward model that trained the policy is registered alongside
(``instructgpt-reward-model``) and follows the same aliases.

Loading and generating::

    import mlflow
    policy = mlflow.pyfunc.load_model("models:/instructgpt-policy@champion")
    policy.predict(["write a short story about a fox ."], params={"temperature": 0.7})
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

POLICY = "instructgpt-policy"
REWARD_MODEL = "instructgpt-reward-model"
PIP_REQUIREMENTS = ["torch==2.13.0", "transformers>=5.20,<6", "tokenizers>=0.22,<1", "pandas"]


def _prompts(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        col = "prompt" if "prompt" in model_input else model_input.columns[0]
        return model_input[col].astype(str).tolist()
    if isinstance(model_input, str):
        return [model_input]
    return [str(x) for x in model_input]


class CausalLMPolicy(mlflow.pyfunc.PythonModel):
    """A Hugging Face causal-LM directory as a pyfunc: prompts in, sampled responses out."""

    def load_context(self, context) -> None:
        from instructgpt.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm(context.artifacts["model"])

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> list[str]:
        from instructgpt.generation import sample

        p = {**GENERATION_PARAMS, **(params or {})}
        out = sample(self.model, self.tokenizer, _prompts(model_input), max_new_tokens=int(p["max_new_tokens"]),
                     temperature=float(p["temperature"]), batch_size=int(p["batch_size"]), seed=int(p["seed"]))
        return [s.response for s in out]


class RewardModelScorer(mlflow.pyfunc.PythonModel):
    """The reward model as a pyfunc: a frame of (prompt, response) in, r(x, y) out."""

    def load_context(self, context) -> None:
        from instructgpt.models import RewardModel, load_tokenizer

        self.model = RewardModel.from_pretrained(context.artifacts["model"])
        self.tokenizer = load_tokenizer(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[float]:
        from instructgpt.train.reward import score_pairs

        pairs = list(zip(model_input["prompt"].astype(str), model_input["response"].astype(str)))
        return [float(x) for x in score_pairs(self.model, self.tokenizer, pairs)]


GENERATION_PARAMS = {"temperature": 0.7, "max_new_tokens": 48, "seed": 0, "batch_size": 32}


def signature(python_model):
    """Input/output schema; for the policy also the generation params predict() accepts."""
    from mlflow.models import infer_signature

    if isinstance(python_model, CausalLMPolicy):
        return infer_signature(["a prompt"], ["a response"], params=GENERATION_PARAMS)
    return infer_signature(pd.DataFrame({"prompt": ["a prompt"], "response": ["a response"]}), [0.0])


def log_and_register(model_dir: str, artifact_name: str, registered_name: str, python_model) -> str:
    """Log ``model_dir`` as a pyfunc in the active run, register it, tag it `candidate`; returns the version."""
    info = mlflow.pyfunc.log_model(
        name=artifact_name,
        python_model=python_model,
        artifacts={"model": model_dir},
        pip_requirements=PIP_REQUIREMENTS,
        signature=signature(python_model),
    )
    version = mlflow.register_model(info.model_uri, registered_name).version
    mlflow.MlflowClient().set_registered_model_alias(registered_name, "candidate", version)
    return str(version)


def champion_version(name: str) -> str | None:
    """The version behind alias `champion`, or None when there is no champion yet."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version)
    except MlflowException:
        return None


def promote(name: str, version: str) -> None:
    """Move alias `champion` to ``version``."""
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
