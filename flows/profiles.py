"""Profiles: named sets of parameter overrides (``profiles/<name>.yaml``), each run in a workspace
of its own so that no tracked file changes.

``demo`` is params.yaml as shipped and runs in the repository itself. Any other profile runs in
``profiles/<name>/`` (git-ignored): a copy of the project's files (what git sees: tracked and
untracked, not ignored), whose params.yaml is the shipped one with the profile merged in
(comments kept). The copy shares the repository's DVC cache (the demo data and the demo's base
model, models/demo-base, are checked out from it; nothing is downloaded) and has its own outputs,
MLflow store and registry, so a tiny model never becomes the demo's champion. Re-running a
profile refreshes the copy; DVC then re-runs only what changed.

    python -m flows.profiles tiny        # make or refresh profiles/tiny/ and print its path
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

DEMO = "demo"


def _merge(base: Any, override: dict[str, Any], where: str = "") -> None:
    for key, value in override.items():
        if key not in base:
            raise KeyError(f"profile sets unknown parameter '{where}{key}' (not in params.yaml)")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value


def known_profiles(profiles: str | Path = "profiles") -> list[str]:
    return sorted([DEMO] + [p.stem for p in Path(profiles).glob("*.yaml")])


def apply_profile(name: str, params: str | Path = "params.yaml", profiles: str | Path = "profiles") -> None:
    """Merge ``profiles/<name>.yaml`` into the params file ``params`` in place (a workspace's copy)."""
    path = Path(profiles) / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"unknown profile '{name}': known profiles are {known_profiles(profiles)}")
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(Path(params).read_text())
    overrides = YAML(typ="safe").load(path.read_text()) or {}
    _merge(doc, overrides)
    with open(params, "w") as f:
        yaml.dump(doc, f)


def project_files(repo: Path) -> list[str]:
    """What git sees of the project: tracked and untracked files, not ignored ones."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, check=True,
                         capture_output=True).stdout.decode()
    return [rel for rel in out.split("\0") if rel and (repo / rel).is_file()]


def copy_project(repo: Path, dest: Path) -> None:
    """Copy (or refresh) the project's files into ``dest``; unchanged files are left alone."""
    for rel in project_files(repo):
        src, dst = repo / rel, dest / rel
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def profile_workspace(name: str, repo: str | Path = ".") -> Path:
    """The workspace where profile ``name`` runs: the repository for demo, else ``profiles/<name>/``."""
    repo = Path(repo).resolve()
    if name == DEMO:
        return repo
    overrides = repo / "profiles" / f"{name}.yaml"
    if not overrides.exists():
        raise SystemExit(f"unknown profile '{name}': known profiles are {known_profiles(repo / 'profiles')}")
    dest = repo / "profiles" / name
    dest.mkdir(parents=True, exist_ok=True)
    copy_project(repo, dest)
    apply_profile(name, dest / "params.yaml", repo / "profiles")
    # The copy is no git repository of its own; DVC shares the repository's cache (data, run cache).
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc" / "config.local").write_text(
        f"[core]\n    no_scm = true\n[cache]\n    dir = {repo / '.dvc' / 'cache'}\n"
    )
    # The demo data and the demo's base model (models/demo-base), from the shared cache.
    targets = [rel for rel in ("data.dvc", *sorted(str(p.relative_to(dest)) for p in dest.glob("models/*.dvc")))
               if (dest / rel).exists()]
    if targets:
        subprocess.run([sys.executable, "-m", "dvc", "pull", "--quiet", *targets], cwd=dest, check=True)
    return dest


if __name__ == "__main__":
    print(profile_workspace(sys.argv[1] if len(sys.argv) > 1 else "tiny"))
