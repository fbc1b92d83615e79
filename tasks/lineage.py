"""What a stage really depends on, to check dvc.yaml against: the project modules its command
imports (static import closure, lazy imports inside functions included) and the files it opens
while running (recorded with an audit hook when ``INSTRUCTGPT_AUDIT_OPENS`` names a folder).

    python -m tasks.lineage          # lists, per stage, the modules dvc.yaml does not declare
"""

from __future__ import annotations

import ast
import atexit
import os
import sys
from pathlib import Path

from tasks.params import dvc_stages

PACKAGES = ("instructgpt", "tasks", "flows")
AUDIT_ENV = "INSTRUCTGPT_AUDIT_OPENS"


def module_file(module: str, root: Path) -> Path | None:
    """The source file of project module ``module`` under ``root`` (None when it is not one)."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an import statement anywhere in ``tree`` names, parents included."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                parts = module.split(".")
                parent = parts if is_package else parts[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))  # importing a.b runs a/__init__
    return out


def import_closure(module: str, root: Path) -> set[Path]:
    """Source files (relative to ``root``) of the project modules ``module`` imports, transitively."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is None:
            continue
        files.add(path.relative_to(root))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        todo.extend(_imported(tree, name, path.name == "__init__.py") - seen)
    return files


def covered(path: str | Path, deps: list[str]) -> bool:
    """True when ``path`` is one of ``deps`` or lies inside a declared directory."""
    p = Path(os.path.normpath(path))
    for dep in deps:
        d = Path(os.path.normpath(dep))
        if p == d or d in p.parents:
            return True
    return False


def stage_module(cmd: str) -> str:
    """`python -m tasks.ppo --no-ptx` -> 'tasks.ppo'; `python -m tasks.launch ppo --no-ptx` -> 'tasks.ppo'."""
    words = cmd.split()
    module = words[words.index("-m") + 1]
    return f"tasks.{words[words.index('-m') + 2]}" if module == "tasks.launch" else module


def stage_modules(cmd: str) -> list[str]:
    """The modules a stage command runs: the stage's, and the launcher's when it goes through it."""
    words = cmd.split()
    launcher = words[words.index("-m") + 1]
    return [stage_module(cmd), launcher] if launcher == "tasks.launch" else [stage_module(cmd)]


def undeclared_modules(root: Path = Path("."), dvc_file: Path | None = None) -> dict[str, list[str]]:
    """Per stage, the project source files its command imports that dvc.yaml does not declare."""
    out = {}
    for name, spec in dvc_stages(dvc_file or root / "dvc.yaml", root / "params.yaml").items():
        deps = [next(iter(d)) if isinstance(d, dict) else d for d in spec.get("deps", [])]
        closure = set().union(*(import_closure(m, root) for m in stage_modules(spec["cmd"])))
        out[name] = sorted(str(f) for f in closure if not covered(f, deps))
    return out


def record_opens(stage: str) -> None:
    """When ``INSTRUCTGPT_AUDIT_OPENS`` names a folder, write every file this stage process opens
    for reading inside the working directory to ``<folder>/<stage>.<pid>.txt`` at exit (lineage tests)."""
    folder = os.environ.get(AUDIT_ENV)
    if not folder:
        return
    cwd = Path.cwd()
    opened: set[str] = set()

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, os.PathLike)):
            return
        mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            return
        try:
            rel = Path(os.path.abspath(args[0])).relative_to(cwd)
        except ValueError:  # outside the workspace: libraries, temp files
            return
        opened.add(str(rel))

    def dump() -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{stage}.{os.getpid()}.txt").write_text("".join(f"{p}\n" for p in sorted(opened)))

    sys.addaudithook(hook)
    atexit.register(dump)


if __name__ == "__main__":
    missing = undeclared_modules()
    for stage, files in missing.items():
        print(f"{stage}: {', '.join(files) if files else 'complete'}")
    raise SystemExit(1 if any(missing.values()) else 0)
