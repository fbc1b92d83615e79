"""Determinism, file formats, malformed rows, PII gold, corpus properties."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from instructgpt.text import format_prompt
from instructgpt.world.describe import classify_line, describe
from instructgpt.world.families import words
from instructgpt.world.generate import generate
from instructgpt.world.pii import PII_TYPES, luhn_valid

FILES = ("prompts.jsonl", "demonstrations.jsonl", "corpus.jsonl", "nlp_task.jsonl",
         "world/world.json", "world/specs.jsonl", "world/pii_spans.jsonl", "world/labelers.json",
         "world/facts.json", "world/vocabulary.json")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_same_seed_same_bytes(tmp_path: Path, tiny_dir: Path) -> None:
    generate(tmp_path / "again", "tiny", seed=0)
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (tiny_dir / name).read_bytes(), name
    generate(tmp_path / "other", "tiny", seed=1)
    assert (tmp_path / "other" / "prompts.jsonl").read_bytes() != (tiny_dir / "prompts.jsonl").read_bytes()


def test_scale_is_deterministic_and_sized(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate(tmp_path / name, seed=3, scale=3000)
    a, b = (tmp_path / n / "prompts.jsonl" for n in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    n = len(a.read_bytes().splitlines())
    assert 2700 <= n <= 3300
    assert (tmp_path / "a" / "world" / "pii_spans.jsonl").exists()


def test_log_rows_and_malformations(tiny_dir: Path) -> None:
    raw = (tiny_dir / "prompts.jsonl").read_bytes()
    assert b"\r\n" not in raw and raw.endswith(b"\n")
    defects = Counter()
    for line in raw.split(b"\n")[:-1]:
        defect, row = classify_line(line)
        if defect:
            defects[defect] += 1
        else:
            assert list(row) == ["prompt_id", "user_id", "text", "timestamp", "source", "style"]
            assert row["source"] in ("api", "labeler") and row["style"] in ("plain", "few_shot", "user_based")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["timestamp"])
    for kind in ("not_json", "invalid_utf8", "wrong_type_user_id", "wrong_type_text", "missing_user_id",
                 "empty_text", "control_chars", "too_long"):
        assert defects[kind] >= 1, (kind, defects)


def test_pii_spans_are_exact(tiny_dir: Path) -> None:
    texts = {r["prompt_id"]: r["text"] for r in _jsonl(tiny_dir / "world" / "specs.jsonl")}
    seen = Counter()
    for rec in _jsonl(tiny_dir / "world" / "pii_spans.jsonl"):
        text = texts[rec["prompt_id"]]
        for s in rec["spans"]:
            assert text[s["start"]:s["end"]] == s["value"]
            assert s["type"] in PII_TYPES
            seen[s["type"]] += 1
            if s["type"] == "CREDIT_CARD":
                assert luhn_valid(s["value"])
    assert len(seen) >= 5, seen


def test_demonstration_for_every_well_formed_prompt(tiny_dir: Path) -> None:
    specs = _jsonl(tiny_dir / "world" / "specs.jsonl")
    demos = _jsonl(tiny_dir / "demonstrations.jsonl")
    assert [d["prompt_id"] for d in demos] == [s["prompt_id"] for s in specs]
    assert all(d["response"] and d["labeler_id"].startswith("t") for d in demos)
    assert len({d["labeler_id"] for d in demos}) > 5


def test_corpus_never_shows_the_sft_format(tiny_dir: Path) -> None:
    corpus = [d["text"] for d in _jsonl(tiny_dir / "corpus.jsonl")]
    blob = "\n\n".join(corpus)
    demos = {d["prompt_id"]: d["response"] for d in _jsonl(tiny_dir / "demonstrations.jsonl")}
    for s in _jsonl(tiny_dir / "world" / "specs.jsonl"):
        assert format_prompt(s["text"]) + demos[s["prompt_id"]] not in blob
    assert "output :" not in blob and "input :" not in blob
    docs = _jsonl(tiny_dir / "corpus.jsonl")
    # Forum threads repeat question wording, but a reply always comes as "userN replied :".
    for d in docs:
        if d["kind"] == "forum":
            assert all(re.match(r"user\d+ (asked|replied) : ", line) for line in d["text"].split("\n"))
    kinds = Counter(d["kind"] for d in docs)
    assert {"story", "list", "review", "passage", "forum"} <= set(kinds)


def test_every_prompt_and_response_word_is_in_the_corpus(demo_dir: Path) -> None:
    corpus_words = set()
    for d in _jsonl(demo_dir / "corpus.jsonl"):
        corpus_words.update(words(d["text"]))
    pii = {r["prompt_id"]: r["spans"] for r in _jsonl(demo_dir / "world" / "pii_spans.jsonl")}
    used = set()
    for s in _jsonl(demo_dir / "world" / "specs.jsonl"):
        text = s["text"]
        for sp in reversed(pii.get(s["prompt_id"], [])):
            text = text[:sp["start"]] + text[sp["end"]:]
        used.update(words(text))
    for d in _jsonl(demo_dir / "demonstrations.jsonl"):
        used.update(words(d["response"]))
    assert used <= corpus_words, sorted(used - corpus_words)[:20]
    glossary = sum(d["kind"] == "glossary" for d in _jsonl(demo_dir / "corpus.jsonl"))
    assert glossary <= 30  # the safety net stays small: real documents carry the words


def test_facts_are_repeated_in_the_corpus(demo_dir: Path) -> None:
    facts = json.loads((demo_dir / "world" / "facts.json").read_text())
    blob = (demo_dir / "corpus.jsonl").read_text()
    for town, rels in facts.items():
        assert blob.count(f"people in {town} eat {rels['food']}") >= 10


def test_demo_profile_shape(demo_dir: Path) -> None:
    stats = describe(demo_dir)
    assert 15000 <= stats["rows"] <= 25000
    assert stats["users"] >= 1000
    assert stats["prompts_per_user"]["users_over_200"] >= 3
    assert 0.15 <= stats["source"]["labeler"] / stats["well_formed"] <= 0.20
    assert stats["exact_duplicate_rate"] > 0 and stats["near_duplicate_rate"] > 0
    assert set(stats["pii_rate"]) == {"any", *PII_TYPES}
    corpus = (demo_dir / "corpus.jsonl").read_bytes().count(b"\n")
    assert 10000 <= corpus <= 20000
    assert (demo_dir / "nlp_task.jsonl").read_bytes().count(b"\n") == 500


def test_nlp_task_format(tiny_dir: Path) -> None:
    for item in _jsonl(tiny_dir / "nlp_task.jsonl"):
        assert list(item) == ["item_id", "context", "choices", "answer"]
        assert 0 <= item["answer"] < len(item["choices"]) and len(set(item["choices"])) == len(item["choices"])
