"""The MLflow model registry: policy and reward model as pyfunc models, aliases `candidate` and
`champion`.

Every evaluated policy is registered as a new version of ``instructgpt-policy`` (alias
`candidate`); `champion` moves only when the candidate beats the current champion with the
held-out labelers (win rate above 50 % with its 95 % interval excluding 50 %), or when there is
no champion yet. The reward model that trained the policy is registered alongside
(``instructgpt-reward-model``) and follows the same aliases.

Both are MLflow models from code (tasks/serving/): the serving file, the library package
``instructgpt/`` and the model directory are logged together, so a registered model loads and
serves wherever its pip requirements are installed, without this project
(tests/pipeline/test_registry.py).

Loading and generating::

    import mlflow
    policy = mlflow.pyfunc.load_model("models:/instructgpt-policy@champion")
    policy.predict(["write a short story about a fox ."], params={"temperature": 0.7})
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd

from tasks.answers import VERSUS_CHAMPION, Sources

POLICY = "instructgpt-policy"
REWARD_MODEL = "instructgpt-reward-model"
# What a model needs where it is loaded; the serving code imports nothing else (tasks/serving/).
PIP_REQUIREMENTS = ["torch==2.13.0", "transformers>=5.20,<6", "tokenizers>=0.22,<1", "safetensors>=0.5,<1",
                    "tqdm>=4.66,<5", "pandas"]
SERVING = Path(__file__).resolve().parent / "serving"
LIBRARY = Path(__file__).resolve().parents[1] / "instructgpt"
# The policy's generation params and their defaults; pyfunc passes them to predict() complete.
GENERATION_PARAMS = {"temperature": 0.7, "max_new_tokens": 48, "seed": 0, "batch_size": 32}


def register_policy(model_dir: str) -> str:
    """Register a causal-LM directory as a new version of ``instructgpt-policy``; returns the version."""
    from mlflow.models import infer_signature

    example = ["write a short story about a fox ."]
    signature = infer_signature(example, ["a response"], params=GENERATION_PARAMS)
    return log_and_register(model_dir, "policy", POLICY, SERVING / "policy.py", signature, example)


def register_reward_model(model_dir: str) -> str:
    """Register a reward-model directory as a new version of ``instructgpt-reward-model``; returns the version."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({"prompt": ["list three colors ."], "response": ["red , blue , green ."]})
    signature = infer_signature(example, [0.0])
    return log_and_register(model_dir, "reward_model", REWARD_MODEL, SERVING / "reward_model.py", signature, example)


def log_and_register(model_dir: str, artifact_name: str, registered_name: str, code: Path, signature,
                     input_example) -> str:
    """Log ``model_dir`` in the active run as a model from code (``code`` sets the pyfunc, the
    library travels along), register it and tag it `candidate`; returns the version. MLflow
    checks that the model answers ``input_example`` and keeps it as the serving example."""
    info = mlflow.pyfunc.log_model(
        name=artifact_name,
        python_model=str(code),
        code_paths=[str(LIBRARY)],
        artifacts={"model": str(model_dir)},
        pip_requirements=PIP_REQUIREMENTS,
        signature=signature,
        input_example=input_example,
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


def champion_answers(cfg, prompts: list[str]) -> tuple[str, list[str]] | None:
    """(version, responses) of the registry's current champion policy, or None without one."""
    champion = champion_version(POLICY)
    if champion is None:
        return None
    old = mlflow.pyfunc.load_model(f"models:/{POLICY}@champion")
    # the same sampler settings as the candidate's responses (batch make-up changes samples)
    return champion, list(old.predict(prompts, params={"temperature": cfg.temperature, "seed": cfg.seed,
                                                       "max_new_tokens": cfg.max_new_tokens,
                                                       "batch_size": cfg.batch_size}))


def registry_decision(judge: str, verdict, champion: tuple[str, list[str]] | None,
                      src: Sources | None = None) -> dict:
    """Register policy and RM (alias `candidate`); move `champion` only on the judge's verdict
    (instructgpt.judging.decision)."""
    from instructgpt.judging.decision import champion_decision

    versus = verdict.win_rate(VERSUS_CHAMPION) if verdict is not None and champion is not None else None
    pending = 0
    if verdict is not None:
        pending = verdict.pending(VERSUS_CHAMPION) if champion is not None else verdict.pending()
    decided = champion_decision(judge, champion is not None, versus, pending)
    src = src or Sources()
    version = register_policy(src.models["ppo"])
    rm_version = register_reward_model(src.rm)
    if decided.move:
        promote(POLICY, version)
        promote(REWARD_MODEL, rm_version)
    previous = int(champion[0]) if champion is not None else None
    decision = {
        "judge": judge,
        "candidate_version": int(version),
        "reward_model_version": int(rm_version),
        "previous_champion_version": previous,
        "champion_moved": int(decided.move),
        "champion_version": int(version) if decided.move else previous,
        "rule": decided.rule,
        "reason": decided.reason,
    }
    if versus is not None and versus.n:
        decision.update(win_rate_vs_champion=versus.rate, win_rate_vs_champion_low=versus.low,
                        win_rate_vs_champion_high=versus.high, comparisons=versus.n)
    if champion is not None and verdict is not None:
        decision["pending_vs_champion"] = verdict.pending(VERSUS_CHAMPION)
    print(f"[evaluate] registry: {json.dumps(decision)}")
    return decision
