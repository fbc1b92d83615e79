"""The world's fact table: one value per (town, relation).

Open-QA answers are judged true or false against this table, the corpus states these facts
many times in several document kinds (so a small LM can learn them), and the cloze "public
NLP task" asks about them. The table is drawn from the seed, so two seeds are two worlds.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from instructgpt.world.vocab import RELATIONS, TOWNS

# Relation -> (question, answer sentence, corpus sentence). One surface form per relation and
# use keeps the facts learnable by a tiny model: the corpus and the prompts use the same words.
QUESTION: dict[str, str] = {
    "animal": "what animal lives in {town} ?",
    "food": "what do people eat in {town} ?",
    "color": "what color is the flag of {town} ?",
    "sport": "what sport do people play in {town} ?",
}
STATEMENT: dict[str, str] = {
    "animal": "the {value} lives in {town} .",
    "food": "people in {town} eat {value} .",
    "color": "the flag of {town} is {value} .",
    "sport": "people in {town} play {value} .",
}
# Cloze contexts end just before the value, in corpus wording (see nlp_task in corpus.py).
CLOZE: dict[str, str] = {
    "animal": "in {town} you can see the",
    "food": "people in {town} eat",
    "color": "the flag of {town} is",
    "sport": "people in {town} play",
}


@dataclass(frozen=True)
class FactTable:
    """Town -> relation -> value. Immutable; serialised as a plain nested dict."""

    table: dict[str, dict[str, str]]

    @classmethod
    def sample(cls, rng: random.Random) -> "FactTable":
        table = {town: {rel: rng.choice(values) for rel, values in RELATIONS.items()} for town in TOWNS}
        return cls(table)

    def value(self, town: str, relation: str) -> str:
        return self.table[town][relation]

    def statement(self, town: str, relation: str) -> str:
        return STATEMENT[relation].format(town=town, value=self.value(town, relation))

    def to_json(self) -> dict[str, dict[str, str]]:
        return {town: dict(sorted(rels.items())) for town, rels in sorted(self.table.items())}
