"""params.yaml and dvc.yaml as the stages, the lineage check and the flow read them.

dvc.yaml is the single source of truth for what a stage reads and writes; its ``${section.key}``
templating is resolved from params.yaml here, as DVC does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from instructgpt.config import ConfigError, ParamsLoader, read_yaml


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole params.yaml as a dict."""
    return read_yaml(path) or {}


_VAR = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


def _interpolate(node: Any, params: dict[str, Any]) -> Any:
    """Resolve dvc.yaml's ``${section.key}`` templating from params.yaml, as DVC does."""
    if isinstance(node, str):
        def value(m: re.Match) -> str:
            v: Any = params
            for part in m.group(1).split("."):
                if not isinstance(v, dict) or part not in v:
                    raise ConfigError(f"dvc.yaml uses ${{{m.group(1)}}}, which params.yaml does not define")
                v = v[part]
            return str(v)

        return _VAR.sub(value, node)
    if isinstance(node, list):
        return [_interpolate(x, params) for x in node]
    if isinstance(node, dict):
        return {_interpolate(k, params): _interpolate(v, params) for k, v in node.items()}
    return node


def dvc_stages(dvc_file: str | Path = "dvc.yaml", params_file: str | Path = "params.yaml") -> dict[str, Any]:
    """dvc.yaml's stages with ``${...}`` resolved from params.yaml."""
    with open(dvc_file) as f:
        stages = yaml.load(f, Loader=ParamsLoader)["stages"]
    return _interpolate(stages, load_params(params_file))


def declared_outputs(stage: str, dvc_file: str | Path = "dvc.yaml") -> dict[str, list[str]]:
    """The stage's deps, outs, metrics and plots as declared in dvc.yaml (the single source of truth)."""
    spec = dvc_stages(dvc_file)[stage]

    def paths(key: str) -> list[str]:
        out = []
        for item in spec.get(key, []) or []:
            out.append(next(iter(item)) if isinstance(item, dict) else item)
        return out

    return {"outs": paths("outs"), "metrics": paths("metrics"), "plots": paths("plots"), "deps": paths("deps")}
