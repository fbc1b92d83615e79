"""dvc.yaml's code deps, generated from what each stage's command imports.

    python -m tasks.deps           # exit 1 and a diff when dvc.yaml's code deps are not the generated ones
    python -m tasks.deps --write   # rewrite them (after adding, moving or splitting a module)

A stage's code deps are the project modules its command imports, transitively (the static
closure of ``tasks.lineage``), declared by package where the stage imports at least half of a
package's own modules and of each of its subpackages' (``instructgpt/ingest``,
``instructgpt/train/ppo``, ...) and file by file otherwise, so that a package a stage does not
use (the simulated world, the judges, the PPO trainer) stays out of its deps. The top-level packages ``instructgpt`` and ``tasks`` are never declared whole: they hold
every stage's code. A code dep written with a comment is declared by hand, for a reason the
imports do not show (evaluate ships the whole library with the registered models): it is kept as
written, and the generated deps leave out what it covers. Data deps (``${inputs.*}``, outputs
of other stages) are not touched.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

import yaml

from instructgpt.config import ParamsLoader
from tasks.lineage import PACKAGES, covered, import_closure, stage_modules

_STAGE = re.compile(r"^  (\w+):\s*$")
_ITEM = re.compile(r"^      - (\S+)(\s+#.*)?$")


def _is_code(path: str) -> bool:
    return path.split("/")[0] in PACKAGES


def subpackages(root: Path) -> list[Path]:
    """Every package below the top-level ones (relative to ``root``), outermost first."""
    found = {p.parent.relative_to(root) for top in PACKAGES for p in (root / top).rglob("__init__.py")
             if "__pycache__" not in p.parts}
    return sorted((d for d in found if len(d.parts) > 1), key=lambda d: (len(d.parts), str(d)))


def _modules(package: Path, root: Path) -> set[Path]:
    return {p.relative_to(root) for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts}


def mostly_used(package: Path, files: set[Path], root: Path) -> bool:
    """``files`` hold at least half of ``package``'s own modules, and the same holds for each of
    its subpackages (so that ``instructgpt/train`` is not declared whole for a stage that uses its
    PPO package and a few of its other modules)."""
    own = {p.relative_to(root) for p in (root / package).glob("*.py")}
    subs = [d.relative_to(root) for d in sorted((root / package).iterdir()) if (d / "__init__.py").is_file()]
    return 2 * len(own & files) >= len(own) and all(mostly_used(s, files, root) for s in subs)


def code_deps(files: set[Path], root: Path) -> list[str]:
    """``files`` (project modules) as deps: a package whole where they hold most of it
    (`mostly_used`), else file by file."""
    left = set(files)
    deps = []
    for package in subpackages(root):
        modules = _modules(package, root)
        if left & modules and mostly_used(package, files, root):
            deps.append(str(package))
            left -= modules
    return sorted(deps + [str(f) for f in left])


def render(text: str, root: Path = Path(".")) -> str:
    """dvc.yaml ``text`` with every stage's code deps generated (see the module docstring)."""
    specs = yaml.load(text, Loader=ParamsLoader)["stages"]  # only the commands are read: no templating there
    lines = text.split("\n")
    out: list[str] = []
    stage, in_deps, block = None, False, []  # block: the code dep lines of the current deps list

    def flush() -> None:
        if not block:
            return
        pinned = {m.group(1): line for line in block if (m := _ITEM.match(line)) and m.group(2)}
        closure = set().union(*(import_closure(m, root) for m in stage_modules(specs[stage]["cmd"])))
        generated = code_deps({f for f in closure if not covered(f, list(pinned))}, root)
        out.extend(pinned.get(d, f"      - {d}") for d in sorted(set(generated) | set(pinned)))
        block.clear()

    for line in lines:
        if m := _STAGE.match(line):
            stage = m.group(1)
        item = _ITEM.match(line)
        if line.startswith("    ") and not line.startswith("      "):
            flush()
            in_deps = line.strip() == "deps:"
        if in_deps and item and _is_code(item.group(1)):
            block.append(line)
            continue
        if in_deps and block and item:
            raise ValueError(f"dvc.yaml, stage {stage}: list the code deps after the data deps ({line.strip()})")
        out.append(line)
    flush()
    return "\n".join(out)


def main(argv: list[str]) -> int:
    dvc_file = Path("dvc.yaml")
    text = dvc_file.read_text()
    new = render(text)
    if "--write" in argv:
        if new != text:
            dvc_file.write_text(new)
            print("dvc.yaml: code deps rewritten")
        return 0
    if new != text:
        sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), "dvc.yaml",
                                                   "dvc.yaml (generated code deps)"))
        print("dvc.yaml's code deps are not what the stages import: python -m tasks.deps --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
