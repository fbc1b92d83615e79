"""Ask the model: `python -m flows.generate "write a short story about a fox ."`

By default the registered champion (`models:/instructgpt-policy@champion` in the local MLflow
store) answers; `--model` takes a registry URI (`models:/instructgpt-policy/3`,
`models:/instructgpt-policy@candidate`) or a local model directory (`outputs/ppo/model`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tasks  # noqa: F401  (offline environment variables)
from tasks import tracking


def answer(prompts: list[str], model: str, temperature: float, max_new_tokens: int, seed: int) -> list[str]:
    params = {"temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed}
    if Path(model).is_dir():
        from instructgpt.generation import sample
        from instructgpt.models import load_causal_lm

        m, tok = load_causal_lm(model)
        return [s.response for s in sample(m, tok, prompts, max_new_tokens, temperature, 16, seed)]
    import mlflow

    tracking.setup()
    return mlflow.pyfunc.load_model(model).predict(prompts, params=params)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="+", help="one or more prompts")
    parser.add_argument("--model", default="models:/instructgpt-policy@champion",
                        help="registry URI or local model directory (default: the champion)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        responses = answer(args.prompt, args.model, args.temperature, args.max_new_tokens, args.seed)
    except Exception as exc:  # noqa: BLE001 - say what went wrong, without a stack trace
        print(f"cannot answer with {args.model}: {exc}\n(has `make run` registered a champion yet?)", file=sys.stderr)
        return 1
    for prompt, response in zip(args.prompt, responses):
        print(f"> {prompt}\n{response}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
