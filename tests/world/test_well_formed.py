"""The gold "well-formed" judgement: words of the world's vocabulary and a proper ending."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from instructgpt.world import FAMILIES, load_world


def _first(world, family: str) -> str:
    return next(pid for pid in world.prompt_ids() if world.family(pid) == family)


def test_vocabulary_is_every_token_of_the_corpus(tiny_dir: Path, tiny_world) -> None:
    listed = json.loads((tiny_dir / "world" / "vocabulary.json").read_text(encoding="utf-8"))
    tokens = set()
    for line in (tiny_dir / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        tokens.update(json.loads(line)["text"].split())
    assert listed == sorted(tokens) and tiny_world.vocabulary == frozenset(listed)
    assert {".", ",", "?", "the", "fox", "oakville"} <= tiny_world.vocabulary


def test_every_gold_demonstration_is_well_formed(tiny_world) -> None:
    seen = set()
    for pid in tiny_world.prompt_ids():
        for variant in range(3):
            gold = tiny_world.gold(pid, variant)
            assert tiny_world.judge(pid, gold).well_formed, (pid, variant, gold)
            seen.add((tiny_world.family(pid), variant))
    assert seen == {(f, v) for f in FAMILIES for v in range(3)}  # every family and variant was checked


def test_every_demonstration_of_the_data_is_well_formed(tiny_dir: Path, tiny_world) -> None:
    """Labelers differ in wording, never in form: SFT learns only well-formed answers."""
    for line in (tiny_dir / "demonstrations.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        assert tiny_world.judge(d["prompt_id"], d["response"]).well_formed, d


@pytest.mark.parametrize("family,response", [
    ("open_qa", "porosforolf ."),  # not a word of the world
    ("harmful", "hhgativeputch yesterday because it is not help with that ."),
    ("open_qa", "the fox lives in oakville"),  # cut before its ending
    ("open_qa", "the fox lives in oakville."),  # "oakville." is no token of the world
    ("open_qa", "the fox lives in oakville , ."),  # the full stop ends no word
    ("open_qa", ""), ("open_qa", "  \n "), ("open_qa", " . "),  # empty, blank, punctuation only
    ("brainstorming", "1 . fox\n2 ."),  # a numbered list cut before its item
    ("brainstorming", "1 . fox\n2"),
    ("brainstorming", "1 . fox\n3 . owl"),  # numbers out of order: not the list form
    ("classification", "positive ,"),
    ("classification", "it is positive"),
])
def test_ill_formed(tiny_world, family: str, response: str) -> None:
    assert not tiny_world.judge(_first(tiny_world, family), response).well_formed


@pytest.mark.parametrize("family,response", [
    ("open_qa", "the wolf lives in oakville ."),  # wrong, yet well-formed: form only
    ("open_qa", "what animal lives in oakville ?"),  # a question is a finished sentence
    ("classification", "negative"),  # a bare label, as one gold wording answers
    ("brainstorming", "1 . fox\n2 . owl"),
    ("harmful", "you are a stupid loser ."),  # toxic, yet well-formed
])
def test_well_formed(tiny_world, family: str, response: str) -> None:
    assert tiny_world.judge(_first(tiny_world, family), response).well_formed


def test_judging_is_deterministic(tiny_dir: Path, tiny_world) -> None:
    """The same (prompt, response) gets the same judgement from a freshly loaded world, asked in
    the opposite order, and from the same world asked again: no state carried between calls."""
    pairs = [(pid, r) for pid in tiny_world.prompt_ids()[:200] for r in tiny_world.candidates(pid, 4, seed=1)]
    first = [tiny_world.judge(pid, r) for pid, r in pairs]
    again = load_world(tiny_dir)
    reloaded = [again.judge(pid, r) for pid, r in reversed(pairs)][::-1]
    repeated = [tiny_world.judge(pid, r) for pid, r in pairs]
    assert len({(j.helpful, j.well_formed) for j in first}) > 1  # judgements that differ, so equality says something
    assert first == reloaded
    assert first == repeated


def test_a_world_without_vocabulary_says_to_regenerate(tiny_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "data"
    shutil.copytree(tiny_dir, old)
    (old / "world" / "vocabulary.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"regenerate it with python -m instructgpt.world.generate --out "):
        load_world(old)
