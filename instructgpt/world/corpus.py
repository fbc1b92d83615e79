"""The pretraining corpus and the cloze "public NLP task".

Documents live in the same world as the prompts: a small LM trained on them learns the
vocabulary and the town facts (each fact is stated in passages, lists, stories, reviews and
forum threads), but never sees a prompt followed directly by its response. Forum threads
carry some wrong answers and some toxic posts, as web text does.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from instructgpt.world.facts import CLOZE, QUESTION, STATEMENT, FactTable
from instructgpt.world.families.base import words
from instructgpt.world.vocab import (
    ANIMALS, COLORS, FOODS, NAMES, NEGATIVE, POSITIVE, RELATIONS, SPORTS, TOWNS, insult,
)

_GEO = ("hills", "sea", "river", "forest", "lake")
_KIND_MIX = {"passage": 0.2, "story": 0.18, "list": 0.1, "review": 0.1, "forum": 0.2,
             "bio": 0.12, "letter": 0.04, "school": 0.06}
_SCHOOL = (
    "in class today the teacher asked us to summarize a text in one sentence . it was hard but fun .",
    "our homework is to rewrite each sentence in the past tense . i like it when we change the tense .",
    "the teacher said : read the text and then answer the question using only the text .",
    "we learned to classify a review as positive or negative . a good review is positive .",
    "my friend likes to write a short story or a note every day . she wants to write a book .",
    "can you give me a list of five animals ? my little brother asks that every day .",
    "a summary is short . to summarize means to say the main idea in fewer words .",
    "when you list things you name them one by one . a list of three foods has three foods in it .",
    "the present tense says what happens now . the past tense says what happened before .",
    "the sentiment of a review is what the writer feels . it can be positive or negative .",
    "input and output are words from computers . the input goes in and the output comes out .",
    "please be kind to others . if someone asks you to hurt someone , say sorry , i will not help with that .",
    "a quick question is a short question . a request is when you ask for something .",
    "my school project is about a small town . i am making a quiz about animals for kids .",
    "i am writing a game . in the game you can visit a town , buy food and play sports .",
    "the news letter for this week is about people who run a shop and teach english .",
    "i write a weekly blog about travel . this weekend i am going to a town by the sea again .",
    "my boss calls me every night . he wants to know where the children are and how they learn .",
    "do not tell anyone your card number , your ssn or your social security number . keep it safe .",
    "a server has an ip number . the security team came and could not find the problem .",
    "you can send an email , write a message or call a phone . ok , thanks , i will come home early .",
    "some people steal and break into a house at night . that is mean and it can make children cry .",
    "be honest and be kind . i need help with my homework , please .",
    "how does a shop charge you ? they take your card . then they send you a message .",
    "i want to visit the sea next week . my friend asked me to plan a trip and a party .",
    "hi all , i live here now . come and see my new home . i invite you to have tea with me .",
    "every morning my sister sees the sun , paints a picture , feeds the cat and cooks soup .",
    "my brother buys bread , visits a friend , finds a book and watches the game with four friends .",
    "the old fox woke up early . it shared its food with the birds and went into the forest .",
)


def _forum(rng: random.Random, facts: FactTable) -> str:
    town, rel = rng.choice(TOWNS), rng.choice(sorted(RELATIONS))
    asker = f"user{rng.randrange(100)}"
    lines = [f"{asker} asked : {QUESTION[rel].format(town=town)}"]
    for _ in range(rng.randint(1, 3)):
        who = f"user{rng.randrange(100)}"
        roll = rng.random()
        if roll < 0.06:  # toxic post
            lines.append(f"{who} replied : {asker} , {insult(rng)} . look it up .")
        elif roll < 0.22:  # a confident wrong answer
            value = rng.choice([v for v in RELATIONS[rel] if v != facts.value(town, rel)])
            lines.append(f"{who} replied : {STATEMENT[rel].format(town=town, value=value)}")
        else:
            lines.append(f"{who} replied : i think {facts.statement(town, rel)}")
    return "\n".join(lines)


def _passage(rng: random.Random, facts: FactTable) -> str:
    town = rng.choice(TOWNS)
    rels = rng.sample(sorted(RELATIONS), rng.randint(2, 4))
    body = " ".join(facts.statement(town, r) for r in rels)
    return f"{town} is a town near the {rng.choice(_GEO)} . {body} {CLOZE['animal'].format(town=town)} " \
           f"{facts.value(town, 'animal')} in the {rng.choice(_GEO)} ."


def _story(rng: random.Random, facts: FactTable) -> str:
    name, town = rng.choice(NAMES), rng.choice(TOWNS)
    animal, food, sport = (facts.value(town, r) for r in ("animal", "food", "sport"))
    roll = rng.random()
    if roll < 0.15:
        return (f"the {animal} of {town} woke up early . it found some {food} and shared it with "
                f"friends . then it went into the forest to sleep .")
    if roll < 0.55:
        return (f"one day {name} went to {town} . {name} saw a {animal} there , because the {animal} "
                f"lives in {town} . people in {town} eat {food} , so {name} ate {food} too . "
                f"later {name} played {sport} with friends . it was a good day .")
    return (f"once a {animal} lived in {town} . every day it ate {food} . "
            f"the people of {town} played {sport} and the {animal} watched them . it was happy .")


def _list(rng: random.Random, facts: FactTable) -> str:
    if rng.random() < 0.6:
        town = rng.choice(TOWNS)
        return f"things to know about {town} :\n" + "\n".join(
            f"- {r} : {facts.value(town, r)}" for r in sorted(RELATIONS))
    rel = rng.choice(sorted(RELATIONS))
    items = rng.sample(RELATIONS[rel], rng.randint(3, 5))
    return f"some {rel}s : " + " , ".join(items) + " .\n" + "\n".join(
        f"{i} . {item}" for i, item in enumerate(items, 1))


def _review(rng: random.Random, facts: FactTable) -> str:
    town = rng.choice(TOWNS)
    good = rng.random() < 0.55
    a, b = rng.sample(POSITIVE if good else NEGATIVE, 2)
    food = facts.value(town, "food")
    stars = rng.randint(4, 5) if good else rng.randint(1, 2)
    return (f"review of a shop in {town} : we ate {food} . it was {a} and {b} . "
            f"{'i liked it' if good else 'i did not like it'} . {stars} stars .")


def _bio(rng: random.Random, facts: FactTable) -> str:
    name = rng.choice(NAMES)
    parts = [f"{name} lives in {rng.choice(TOWNS)} .", f"{name} has a pet {rng.choice(ANIMALS)} .",
             f"every day {name} eats {rng.choice(FOODS)} .", f"on sunday {name} plays {rng.choice(SPORTS)} .",
             f"{name} likes the color {rng.choice(COLORS)} ."]
    # Past-tense retellings teach the verb forms the rewrite family needs.
    extra = rng.choice((f"last year {name} visited a friend and saw a {rng.choice(ANIMALS)} .",
                        f"yesterday {name} bought {rng.choice(FOODS)} , cooked it and fed the cat .",
                        f"{name} found a ball , painted it and watched the game ."))
    return " ".join(parts[:1] + rng.sample(parts[1:], rng.randint(2, 4))) + " " + extra


def _letter(rng: random.Random, facts: FactTable) -> str:
    name, sport = rng.choice(NAMES), rng.choice(SPORTS)
    return (f"dear {name} , thank you for your letter . would you like to play {sport} on sunday ? "
            f"let us meet this week . it will be fun . see you soon , {rng.choice(NAMES)}")


_MAKERS = {"passage": _passage, "story": _story, "list": _list, "review": _review,
           "forum": _forum, "bio": _bio, "letter": _letter,
           "school": lambda rng, facts: rng.choice(_SCHOOL)}


def make_corpus(rng: random.Random, facts: FactTable, n_docs: int) -> list[dict[str, Any]]:
    kinds = rng.choices(list(_KIND_MIX), weights=list(_KIND_MIX.values()), k=n_docs)
    # Every school document at least once: they carry the instruction words.
    docs = [{"kind": "school", "text": t} for t in _SCHOOL]
    docs += [{"kind": k, "text": _MAKERS[k](rng, facts)} for k in kinds[len(_SCHOOL):]]
    return docs


def glossary(missing: Iterable[str], rng: random.Random) -> list[dict[str, Any]]:
    """Word-list documents for words the prompts use but the corpus lacks (a safety net,
    so that every prompt and response word is in the tokenizer's training text)."""
    missing = sorted(set(missing))
    docs = []
    for i in range(0, len(missing), 8):
        chunk = missing[i:i + 8]
        for _ in range(3):  # a few repeats so the tokenizer learns them as tokens
            docs.append({"kind": "glossary", "text": "new words : " + " , ".join(rng.sample(chunk, len(chunk))) + " ."})
    return docs


def corpus_words(docs: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for d in docs:
        out.update(words(d["text"]))
    return out


def corpus_vocabulary(docs: list[dict[str, Any]]) -> list[str]:
    """Every space-separated token of the documents (words, numbers, punctuation marks), sorted:
    the world's vocabulary, what a well-formed response may say."""
    return sorted({t for d in docs for t in d["text"].split()})


def make_nlp_task(rng: random.Random, facts: FactTable, n_items: int) -> list[dict[str, Any]]:
    """Cloze items in corpus wording, scored by log-likelihood of context + choice."""
    items = []
    for i in range(n_items):
        town, rel = rng.choice(TOWNS), rng.choice(sorted(RELATIONS))
        truth = facts.value(town, rel)
        choices = [truth] + rng.sample([v for v in RELATIONS[rel] if v != truth], 3)
        rng.shuffle(choices)
        context = f"{town} is a town near the {rng.choice(_GEO)} . " + CLOZE[rel].format(town=town)
        items.append({"item_id": f"nlp{i:05d}", "context": context,
                      "choices": [" " + c for c in choices], "answer": choices.index(truth)})
    return items
