"""dvc.yaml declares what every stage really uses: the modules its command imports (statically,
here) and the files it opens (recorded while the e2e tests run the pipeline: tests/e2e)."""

from pathlib import Path

import yaml

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
