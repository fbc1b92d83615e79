"""dvc.yaml declares what every stage really uses: the modules its command imports (statically,
here; the code deps are generated from them, tasks/deps.py) and the files it opens (recorded while
the e2e tests run the pipeline: tests/e2e)."""

from pathlib import Path

import yaml

from tasks.deps import code_deps, render
from tasks.lineage import covered, import_closure, undeclared_modules

REPO = Path(__file__).resolve().parents[2]


def test_every_imported_project_module_is_a_declared_dep():
    missing = {stage: files for stage, files in undeclared_modules(REPO).items() if files}
    assert not missing, f"dvc.yaml lacks deps (python -m tasks.lineage): {missing}"


def test_a_removed_dep_is_found(tmp_path):
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    spec["stages"]["sft"]["deps"].remove("instructgpt/text.py")
    spec["stages"]["rm"]["deps"].remove("tasks/rankings.py")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    missing = undeclared_modules(REPO, tmp_path / "dvc.yaml")
    assert missing["sft"] == ["instructgpt/text.py"]
    assert missing["rm"] == ["tasks/rankings.py"]
    assert not missing["ppo"]


def test_code_deps_are_the_generated_ones():
    text = (REPO / "dvc.yaml").read_text()
    assert render(text, REPO) == text, "dvc.yaml's code deps are out of date: python -m tasks.deps --write"


def _deps(text: str, stage: str) -> list[str]:
    return yaml.safe_load(text)["stages"][stage]["deps"]


def test_generated_code_deps_follow_the_imports():
    """A dep missing from dvc.yaml comes back; a package a stage mostly imports is declared whole,
    one it does not import (the world, the judges) is left out; a dep declared by hand (with a
    comment) stays as written and the generated ones leave out what it covers."""
    text = (REPO / "dvc.yaml").read_text()
    edited = text.replace("      - tasks/rankings.py\n", "", 1).replace("      - instructgpt/train/ppo\n", "", 1)
    assert edited != text and render(edited, REPO) == text
    ppo = _deps(text, "ppo")
    assert "instructgpt/train/ppo" in ppo and "instructgpt/train" not in ppo  # PPO's package, not SFT's loop
    assert "instructgpt/labeling" in _deps(text, "label") and "instructgpt/world/families" in _deps(text, "label")
    assert not any(d.startswith(("instructgpt/world", "instructgpt/judging")) for d in ppo)
    assert not any(d.startswith(("instructgpt/world", "instructgpt/train/ppo")) for d in _deps(text, "sft"))
    evaluate = _deps(text, "evaluate")
    assert "instructgpt" in evaluate and not any(d.startswith("instructgpt/") for d in evaluate)
    assert "      - instructgpt  # the registered models ship the whole library" in text


def test_code_deps_by_package():
    ingest = {p.relative_to(REPO) for p in (REPO / "instructgpt/ingest").glob("*.py")}
    assert code_deps(ingest, REPO) == ["instructgpt/ingest"]
    one = {Path("instructgpt/world/world.py"), Path("instructgpt/text.py")}
    assert code_deps(one, REPO) == ["instructgpt/text.py", "instructgpt/world/world.py"]
    train = {Path("instructgpt/train/__init__.py"), Path("instructgpt/train/loop.py"),
             Path("instructgpt/train/sft.py"), Path("instructgpt/train/common.py")}
    assert code_deps(train, REPO) == sorted(str(f) for f in train)  # half its own modules, but not its PPO package


def test_closure_follows_lazy_and_relative_imports_and_parent_packages():
    files = {str(f) for f in import_closure("tasks.ppo", REPO)}
    assert "instructgpt/train/ppo/__init__.py" in files  # imported inside a function body
    assert "instructgpt/train/ppo/update.py" in files  # a package's modules, through its __init__
    assert "instructgpt/train/__init__.py" in files  # importing a submodule runs its package
    assert not any(f.startswith(("flows/", "instructgpt/world")) for f in files)  # PPO reads no judge
    files = {str(f) for f in import_closure("tasks.evaluate", REPO)}
    assert "instructgpt/judging/simulated.py" in files  # imported lazily, when params select it
    assert "instructgpt/world/world.py" in files  # via the simulated judge and instructgpt/world/__init__.py


def test_covered():
    assert covered("instructgpt/world/families/base.py", ["instructgpt/world"])
    assert covered("./data/prompts.jsonl", ["data/prompts.jsonl"])
    assert not covered("instructgpt/world_x.py", ["instructgpt/world"])
    assert not covered("data/prompts.jsonl.bak", ["data/prompts.jsonl"])


def test_readme_stage_table_names_every_raw_input_a_stage_depends_on():
    """The README's stage table ("How it fits together") says what each stage reads: every raw
    input in its dvc.yaml deps (`${inputs.X}`), named by its params key, never a fixed data/ path
    (issue 22: the table said base reads `data/corpus.jsonl`, whatever inputs.corpus names)."""
    import re

    readme = (REPO / "README.md").read_text()
    section = readme.split("## How it fits together")[1].split("\n## ")[0]
    rows = {cells[0]: cells[1] for line in section.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(stages) <= set(rows)
    for name, stage in stages.items():
        raw = {m for dep in stage["deps"] for m in re.findall(r"\$\{(inputs\.\w+)\}", dep)}
        named = set(re.findall(r"inputs\.\w+", rows[name]))
        if name == "ppo_noptx" and rows[name] == "the same":
            named = set(re.findall(r"inputs\.\w+", rows["ppo"]))
        assert raw <= named, f"README stage table, {name}: reads {sorted(raw - named)} too (dvc.yaml deps)"
        assert "data/" not in rows[name], f"README stage table, {name}: name the input key, not a path"
