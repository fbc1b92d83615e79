"""The plain prompt format (no chat template: the demo's own tokenizer) gives exactly the token
ids it gave before chat templates existed: the demo pipeline must not change by a single id.

The pinned hashes were computed with the code of commit c69b1a5 (before ``prompt_context``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from instructgpt.data import collate_pairs, collate_prompts, encode_prompt, encode_sft, make_blocks
from instructgpt.text import format_prompt, prompt_context

REPO = Path(__file__).resolve().parents[2]

PROMPTS = [
    "repeat the word cat 2 times",
    "hi",
    "list three foods .  \n",
    "answer each question .\ninput : what animal lives in stoneport ?\noutput : the wolf lives in stoneport .\n"
    "input : what animal lives in oakville ?\noutput :",
    "this is for my travel blog . what animal lives in ashford ?",
    "write a short story about a fox . " * 12,
]
RESPONSES = ["cat cat", "x", "pie , soup and fish .", "the deer lives in oakville .", "the wolf .", "once a fox " * 10]


def fingerprint(tok) -> dict:
    """Every encoding path of the library on PROMPTS/RESPONSES, cut and uncut."""
    out = {}
    out["prompt"] = [encode_prompt(tok, p) for p in PROMPTS]
    out["prompt_cut"] = [encode_prompt(tok, p, max_len=12) for p in PROMPTS]
    out["sft"] = [encode_sft(tok, p, r, 256) for p, r in zip(PROMPTS, RESPONSES)]
    out["sft_cut"] = [encode_sft(tok, p, r, 20) for p, r in zip(PROMPTS, RESPONSES)]
    b = collate_prompts(tok, PROMPTS, 16)
    out["collate_prompts"] = [b.input_ids.tolist(), b.attention_mask.tolist(), b.position_ids.tolist()]
    b = collate_pairs(tok, list(zip(PROMPTS, RESPONSES)), 40)
    out["collate_pairs"] = [b.input_ids.tolist(), b.attention_mask.tolist(), b.labels.tolist()]
    out["blocks"] = make_blocks(tok, [p + "\n" + r for p, r in zip(PROMPTS, RESPONSES)], 8).tolist()
    shots = list(zip(PROMPTS[:2], RESPONSES[:2]))
    out["fewshot"] = [encode_prompt(tok, p, shots=shots) for p in PROMPTS]
    return out


def test_plain_format_token_ids_are_pinned(tokenizer):
    assert not getattr(tokenizer, "chat_template", None)
    fp = fingerprint(tokenizer)
    assert fp["prompt"][1] == [1, 75, 76, 202]  # [BOS] "hi" "\n"
    assert hashlib.sha256(json.dumps(fp).encode()).hexdigest() == (
        "a96468553b002974271d8388256e62bf29207302cbf9bf99da81fd0f1482c6cb")


def test_plain_fewshot_context_is_the_old_prefix(tokenizer):
    """Few-shot examples in the plain format: what tasks/evaluate.py built by hand before."""
    shots = [("hi", "x"), ("list three foods .", "pie .")]
    old_prefix = "".join(format_prompt(p) + r + "\n\n" for p, r in shots)
    for p in PROMPTS:
        assert prompt_context(tokenizer, p, shots) == format_prompt(old_prefix + p)
        assert encode_prompt(tokenizer, p, shots=shots) == encode_prompt(tokenizer, old_prefix + p)


@pytest.mark.skipif(not (REPO / "data/corpus.jsonl").exists(), reason="demo data not pulled (dvc pull data.dvc)")
def test_demo_tokenizer_on_demo_data_is_pinned():
    """The demo's own tokenizer (trained as the base stage does) on 1500 demo prompts and their
    demonstrations: prompt, SFT and RM encodings unchanged."""
    import pandas as pd

    from instructgpt.tokenizer import train_tokenizer
    from tasks.inputs import split_corpus

    docs = pd.read_json(REPO / "data/corpus.jsonl", lines=True, dtype=False)
    tok = train_tokenizer(split_corpus(docs, 0.05)[0], 2048)
    prompts = []
    with open(REPO / "data/prompts.jsonl", "rb") as f:
        for raw in f:
            try:
                r = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue
            if isinstance(r, dict) and isinstance(r.get("text"), str) and isinstance(r.get("prompt_id"), str):
                prompts.append(r)
            if len(prompts) >= 1500:
                break
    demos: dict[str, str] = {}
    for line in (REPO / "data/demonstrations.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        demos.setdefault(d["prompt_id"], d["response"])
    pairs = [(p["text"], demos[p["prompt_id"]]) for p in prompts if p["prompt_id"] in demos]
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps(encode_prompt(tok, p["text"], 128)).encode())
    for p, r in pairs:
        h.update(json.dumps(encode_sft(tok, p, r, 256)).encode())
    b = collate_pairs(tok, pairs[:64], 256)
    h.update(json.dumps([b.input_ids.tolist(), b.labels.tolist()]).encode())
    assert h.hexdigest() == "db4d3f3c3f645cc313829cfd7e6d840e892b94a44d23bf372f8cd6eaef0bcf30"
