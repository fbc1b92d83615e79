"""The plain prompt format (no chat template: the demo's own tokenizer) gives exactly the token
ids pinned here: the demo pipeline must not change by a single id unless on purpose.

The prompt-only paths still give the ids of commit c69b1a5 (before ``prompt_context``). Changed
on purpose since then, both for issue 11: over-long SFT examples keep BOS (the old cut dropped
it), see the cut tests at the end; and a response is tokenized with one leading space
(``instructgpt.text.lead_response``), so that its first word is the token the corpus spells it
with ("Ġpositive"), not fragments ("p", "os", "itive") a small model misspells."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from instructgpt.data import (
    IGNORE_INDEX,
    collate_pairs,
    collate_prompts,
    encode_prompt,
    encode_response,
    encode_sft,
    make_blocks,
)
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
        "32c9dfc4650cb30158f8e0907e4c0fe3e3e5287dc7abe6f8520c9cd37d30c86c")
    # the paths without a response: still the ids of c69b1a5
    prompt_only = {k: fp[k] for k in ("prompt", "prompt_cut", "collate_prompts", "blocks")}
    assert hashlib.sha256(json.dumps(prompt_only).encode()).hexdigest() == (
        "0e9cff0e6e93e2855f355f42a36abb1761bd10ebdce60631ed556f2e7ab4f8dc")


def test_plain_format_response_starts_with_the_in_text_spelling_of_its_first_word(tokenizer):
    """The response's first word is one token, the one it has inside text ("Ġcat"), not the
    fragments of a word starting a segment; decoding a sample gives the response back exactly."""
    from instructgpt.text import lead_response, strip_lead

    ids = encode_response(tokenizer, "cat dog")
    assert ids[:2] == _ids(tokenizer, " cat dog") and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.convert_ids_to_tokens(ids[:1]) == ["Ġcat"]
    assert _ids(tokenizer, "the cat")[-1:] == _ids(tokenizer, " cat")  # the spelling inside text
    for response in ("cat dog", "pie , soup and fish .", "1 . corn\n2 . soup"):
        r_ids = encode_response(tokenizer, response)[:-1]
        assert strip_lead(tokenizer, tokenizer.decode(r_ids, skip_special_tokens=True)) == response
    assert encode_response(tokenizer, "") == [tokenizer.eos_token_id]  # no lone space token
    assert lead_response(tokenizer, "") == ""
    # an SFT example's labels begin with that token, right after the prompt's newline
    ids, labels = encode_sft(tokenizer, "hi", "cat dog", 64)
    assert labels[len(encode_prompt(tokenizer, "hi")):] == ids[len(encode_prompt(tokenizer, "hi")):] == (
        encode_response(tokenizer, "cat dog"))
    # a chat template's text is its owner's: no lead
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    assert encode_response(tok, "cat dog") == _ids(tok, "cat dog") + [tok.eos_token_id]


def test_plain_fewshot_context_is_the_old_prefix(tokenizer):
    """Few-shot examples in the plain format: what tasks/evaluate.py built by hand before, each
    response with the lead a response has in the plain format."""
    shots = [("hi", "x"), ("list three foods .", "pie .")]
    old_prefix = "".join(format_prompt(p) + " " + r + "\n\n" for p, r in shots)
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
    # re-pinned when the demo data dropped the labelers' missing-full-stop habit, and again when
    # responses got their leading space (lead_response); prompts alone are unchanged by the latter
    assert h.hexdigest() == "f094f56f64d23d77d308874b1db7f3dd37d88552499b110371e729d3468ddc7e"


# -- over-long SFT examples ------------------------------------------------------------------------

LONG_PROMPT = "the cat sat on the mat"  # [BOS] + 14 tokens with the test tokenizer
LONG_RESPONSE = "cat dog red blue sun tree fish bird milk rain"  # 19 tokens + EOS


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_sft_cut_plain_format_keeps_bos_and_cuts_the_response_end_first(tokenizer):
    bos = tokenizer.bos_token_id
    P, R = encode_prompt(tokenizer, LONG_PROMPT), encode_response(tokenizer, LONG_RESPONSE)
    p = P[1:]
    assert P[0] == bos and (len(P), len(R)) == (15, 20)
    cases = {
        35: (P, R),  # fits: untouched
        30: (P, R[:15]),  # the response loses its last 5 tokens (EOS among them), the prompt none
        20: ([bos] + p[-9:], R[:10]),  # response down to max_len // 2, then the prompt's start goes
        21: ([bos] + p[-10:], R[:10]),  # odd: the response keeps max_len // 2, the prompt the rest
    }
    for max_len, (want_p, want_r) in cases.items():
        ids, labels = encode_sft(tokenizer, LONG_PROMPT, LONG_RESPONSE, max_len)
        assert ids == want_p + want_r, max_len
        assert labels == [IGNORE_INDEX] * len(want_p) + want_r, max_len
        assert len(ids) == min(max_len, 35) and ids.count(bos) == 1


def test_sft_cut_a_short_response_stays_whole(tokenizer):
    """A response shorter than max_len // 2 is never cut: the prompt gives up all the room."""
    bos = tokenizer.bos_token_id
    P, R = encode_prompt(tokenizer, LONG_PROMPT), encode_response(tokenizer, "cat cat")
    assert len(R) == 3
    ids, labels = encode_sft(tokenizer, LONG_PROMPT, "cat cat", 10)
    assert ids == [bos] + P[1:][-6:] + R
    assert labels == [IGNORE_INDEX] * 7 + R


def test_sft_cut_with_a_chat_template_keeps_bos_and_the_template_tokens(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}the dog ran\n{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}the cat ran\n{% endif %}")
    head, tail, body = _ids(tok, "the dog ran\n"), _ids(tok, "\nthe cat ran\n"), _ids(tok, LONG_PROMPT)
    P, R = encode_prompt(tok, LONG_PROMPT), encode_response(tok, LONG_RESPONSE)
    assert P == [tok.bos_token_id] + head + body + tail  # one BOS: the template wrote it
    frame = 1 + len(head) + len(tail)
    assert frame + 4 < len(P) and frame + 3 < len(R)
    max_len = 2 * (frame + 3) + 1  # odd: the response keeps max_len // 2 = frame + 3, the prompt frame + 4
    ids, labels = encode_sft(tok, LONG_PROMPT, LONG_RESPONSE, max_len)
    keep_r = frame + 3
    want_p = [tok.bos_token_id] + head + body[-4:] + tail  # the prompt text loses its first tokens
    assert ids == want_p + R[:keep_r] and len(ids) == max_len
    assert labels == [IGNORE_INDEX] * len(want_p) + R[:keep_r]
    # fits: the template's context and the whole response, as before
    assert encode_sft(tok, LONG_PROMPT, LONG_RESPONSE, len(P) + len(R)) == (P + R, [IGNORE_INDEX] * len(P) + R)
