"""The one place that defines how a prompt becomes the model's context.

Every path (SFT and RM encoding in ``instructgpt.data``, sampling, PPO rollouts, the evaluation's
few-shot prompts, the MLflow serving model) builds the context through ``prompt_context``, so
that a model sees exactly the same text before its response everywhere. The response follows the
returned string directly and ends with the tokenizer's EOS token.

Two formats, chosen by the model's tokenizer:

- **chat template** — the tokenizer has a ``chat_template`` (most instruction-tuned Hugging Face
  models, and any team model that ships one): the context is
  ``tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
  add_generation_prompt=True)``, i.e. the model owner's own format, generation prompt included.
  Few-shot examples become earlier user/assistant turns.
- **plain** — no template (the demo's tokenizer, base models): ``format_prompt(prompt)``, the
  prompt and one newline; few-shot examples are ``format_prompt(p) + " " + response + "\\n\\n"``
  each.

In the plain format a response is tokenized with one leading space (``response_lead``): a
byte-level BPE tokenizer (GPT-2's kind, the demo's) spells a word inside text as one token
("Ġpositive") but a word that starts a segment as fragments it rarely saw ("p", "os", "itive"),
which a small model then misspells ("pitive"). ``lead_response`` adds the space before
tokenizing, ``strip_lead`` takes it off a decoded response. A chat template's text is left as
its owner wrote it (no lead).

BOS is not added here: ``instructgpt.data`` prepends it unless the chat template already wrote
it (``template_wrote_bos``), so a context never starts with two.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_prompt", "has_chat_template", "lead_response", "prompt_context", "response_lead", "strip_lead",
           "template_wrote_bos"]


def format_prompt(text: str) -> str:
    """The plain format: the prompt and one newline (the context of a model without a template).

    Trailing whitespace is dropped so that prompts that differ only in trailing blanks give the
    same context; nothing else is added (no "Answer:" marker), because the world's prompts
    never carry a response format of their own and the corpus never shows this format.
    """
    return text.rstrip() + "\n"


def has_chat_template(tokenizer: Any) -> bool:
    """True when ``tokenizer`` carries a chat template (then prompts are formatted with it)."""
    return bool(getattr(tokenizer, "chat_template", None)) if tokenizer is not None else False


def prompt_context(tokenizer: Any, text: str, shots: Sequence[tuple[str, str]] = ()) -> str:
    """The context the model sees before its response to ``text``.

    ``tokenizer`` decides the format (module docstring): its chat template when it has one,
    else the plain format (``tokenizer=None`` also means plain). ``shots`` are (prompt, response)
    examples shown first, oldest first (the evaluation's few-shot baseline)."""
    if not has_chat_template(tokenizer):
        return "".join(format_prompt(p) + lead_response(tokenizer, r) + "\n\n" for p, r in shots) + format_prompt(text)
    messages: list[dict[str, str]] = []
    for p, r in shots:
        messages += [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def response_lead(tokenizer: Any) -> str:
    """What a response's text starts with when it is tokenized: one space in the plain format
    (module docstring), nothing with a chat template."""
    return "" if has_chat_template(tokenizer) else " "


def lead_response(tokenizer: Any, response: str) -> str:
    """The text tokenized as ``response``: ``response_lead`` before it (an empty response stays empty)."""
    return response_lead(tokenizer) + response if response else response


def strip_lead(tokenizer: Any, text: str) -> str:
    """A decoded response without the lead its first token carries (``lead_response`` undone)."""
    lead = response_lead(tokenizer)
    return text[len(lead):] if lead and text.startswith(lead) else text


def template_wrote_bos(tokenizer: Any, context: str) -> bool:
    """True when a chat-template context already starts with the tokenizer's BOS token (many
    templates write ``{{ bos_token }}`` themselves): then no second BOS may be prepended."""
    bos = getattr(tokenizer, "bos_token", None)
    return has_chat_template(tokenizer) and bool(bos) and context.startswith(bos)
