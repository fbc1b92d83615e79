"""The docs hold together: the README's links lead somewhere, and the results tags name real commits."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# what `make results-tags` tags: results/<what>-<commit>, the commit being the name's last part
RESULTS_TAG = re.compile(r"results/[a-z0-9-]*-([0-9a-f]{7,})")


def test_every_local_link_of_the_readme_and_the_docs_leads_to_a_file():
    pages = [REPO / "README.md", REPO / "bench" / "README.md", *(REPO / "docs").glob("*.md")]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def _git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def test_each_results_tag_names_a_commit_of_the_history():
    commits = sorted(set(RESULTS_TAG.findall((REPO / "docs" / "RESULTS.md").read_text())))
    assert commits, "docs/RESULTS.md lists no results/<what>-<commit> tag"
    shallow = _git("rev-parse", "--is-shallow-repository")
    if shallow.returncode != 0:
        pytest.skip("not a git checkout")
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone lacks the older commits")
    missing = [c for c in commits if _git("cat-file", "-e", f"{c}^{{commit}}").returncode != 0]
    assert not missing
