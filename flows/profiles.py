"""Profiles: named sets of parameter overrides (``profiles/<name>.yaml``) merged into params.yaml.

DVC reads params.yaml only, so switching profile rewrites it (comments kept, via ruamel.yaml);
`git diff params.yaml` shows what changed and `git checkout params.yaml` returns to the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML


def _merge(base: Any, override: dict[str, Any], where: str = "") -> None:
    for key, value in override.items():
        if key not in base:
            raise KeyError(f"profile sets unknown parameter '{where}{key}' (not in params.yaml)")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value


def apply_profile(name: str, params: str | Path = "params.yaml", profiles: str | Path = "profiles") -> None:
    """Merge ``profiles/<name>.yaml`` into ``params`` in place; 'demo' means params as shipped."""
    path = Path(profiles) / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in Path(profiles).glob("*.yaml"))
        raise SystemExit(f"unknown profile '{name}': known profiles are {known}")
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(Path(params).read_text())
    overrides = YAML(typ="safe").load(path.read_text()) or {}
    _merge(doc, overrides)
    with open(params, "w") as f:
        yaml.dump(doc, f)
    print(f"applied profile '{name}' to {params}")


if __name__ == "__main__":
    import sys

    apply_profile(sys.argv[1] if len(sys.argv) > 1 else "tiny")
