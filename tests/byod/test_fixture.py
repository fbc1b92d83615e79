"""The outside data set fixture: reproducible from its seeded generator, independent of the
simulated world, and shaped like what a team hands in."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from .conftest import BYOD, load_script

GENERATED = ["log/2026-11-01.parquet", "log/2026-11-02.jsonl", "later/2026-11-03.jsonl", "demonstrations.jsonl",
             "rankings/rankings.jsonl", "corpus.jsonl", "nlp_task.jsonl"]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _log() -> list[dict]:
    return pq.read_table(BYOD / "log/2026-11-01.parquet").to_pylist() + _jsonl(BYOD / "log/2026-11-02.jsonl")


def test_generator_reproduces_the_committed_files(tmp_path):
    """Same seed, same files: JSONL byte for byte; Parquet the same table (byte for byte too when
    this pyarrow wrote the committed file: the file header names the writer's version)."""
    load_script("make_data").generate(tmp_path)
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert made == sorted(GENERATED)
    for name in GENERATED:
        new, old = tmp_path / name, BYOD / name
        if name.endswith(".parquet"):
            assert pq.read_table(new).equals(pq.read_table(old)), name
            if pq.ParquetFile(new).metadata.created_by == pq.ParquetFile(old).metadata.created_by:
                assert new.read_bytes() == old.read_bytes(), name
        else:
            assert new.read_bytes() == old.read_bytes(), f"{name} differs: run python tests/fixtures/byod/make_data.py"


def test_fixture_scripts_never_import_the_project():
    """Neither the generator nor the model builder may use instructgpt (its world least of all):
    statically, and in a fresh interpreter that runs the generator."""
    for script in ("make_data.py", "make_model.py"):
        tree = ast.parse((BYOD / script).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in ("instructgpt", "tasks", "flows")], script
    code = ("import sys, tempfile, importlib.util, pathlib\n"
            f"spec = importlib.util.spec_from_file_location('m', {str(BYOD / 'make_data.py')!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "m.generate(pathlib.Path(tempfile.mkdtemp()))\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('instructgpt', 'tasks')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_log_has_its_own_fields_partitions_and_something_to_filter():
    log, later = _log(), _jsonl(BYOD / "later/2026-11-03.jsonl")
    assert all(set(r) == {"request_id", "account", "input", "created_at", "channel"} for r in log + later)
    assert 350 <= len(log) <= 450 and 40 <= len(later) <= 80
    per_user = Counter(r["account"] for r in log)
    assert 35 <= len(per_user) <= 45 and max(per_user.values()) < 200
    assert {r["channel"] for r in log} == {"api", "labeler"}
    assert len({r["request_id"] for r in log + later}) == len(log) + len(later)
    assert any("@" in r["input"] for r in log) and any("555-0134" in r["input"] for r in log)
    assert any(r["input"] == "" for r in log)
    # the intended near-duplicates: a long ticket resent with another ending (same first 128 chars)
    heads = Counter(" ".join(r["input"].lower().split())[:128] for r in log if len(r["input"]) >= 128)
    assert sum(n - 1 for n in heads.values()) == 6
    assert {r["created_at"][:10] for r in later} == {"2026-11-03"}
    assert set(later_ids := {r["request_id"] for r in later}).isdisjoint({r["request_id"] for r in log})
    assert later_ids


def test_labels_refer_to_logged_prompts_and_rank_better_answers_higher():
    log_ids = {r["request_id"] for r in _log()}
    demos, ranks = _jsonl(BYOD / "demonstrations.jsonl"), _jsonl(BYOD / "rankings/rankings.jsonl")
    assert len(demos) == 120 and {d["labeler_id"][:5] for d in demos} == {"demo-"}
    ranked = {r["prompt_id"] for r in ranks}
    assert len(ranked) == 120 and {r["labeler_id"][:5] for r in ranks} == {"rank-"}
    assert {d["prompt_id"] for d in demos} <= log_ids and ranked <= log_ids
    assert ranked.isdisjoint(d["prompt_id"] for d in demos)
    twice = [pid for pid, n in Counter(r["prompt_id"] for r in ranks).items() if n == 2]
    assert len(twice) == 15
    for pid in twice:
        a, b = [r for r in ranks if r["prompt_id"] == pid]
        assert a["labeler_id"] != b["labeler_id"] and a["responses"] == b["responses"]
    refusals = {"I'm not sure.", "That is not possible.", "I cannot help with that."}
    last_is_refusal = 0
    for r in ranks:
        k = len(r["responses"])
        assert 2 <= k <= 5 and len(set(r["responses"])) == k and sorted(r["ranking"]) == list(range(k))
        last_is_refusal += r["responses"][r["ranking"][-1]] in refusals
    # systematically better first: a refusal, when shown, is nearly always ranked last
    shown = sum(any(x in refusals for x in r["responses"]) for r in ranks)
    assert last_is_refusal >= 0.8 * shown > 0


def test_corpus_task_and_size():
    corpus, items = _jsonl(BYOD / "corpus.jsonl"), _jsonl(BYOD / "nlp_task.jsonl")
    assert 200 <= len(corpus) <= 500 and len({d["doc_id"] for d in corpus}) == len(corpus)
    assert 30 <= len(items) <= 60
    assert all(0 <= it["answer"] < len(it["choices"]) and it["context"] for it in items)
    size = sum((BYOD / name).stat().st_size for name in GENERATED)
    assert size < 300_000
