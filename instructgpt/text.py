"""The one place that defines how a prompt becomes the model's context.

Every stage (SFT, label, PPO, evaluation) must build the context through `format_prompt`, so
that the model sees exactly the same bytes before its response everywhere. The response
follows the returned string directly and ends with the tokenizer's EOS token.
"""
from __future__ import annotations

__all__ = ["format_prompt"]


def format_prompt(text: str) -> str:
    """Return the context the model sees before its response: the prompt and one newline.

    Trailing whitespace is dropped so that prompts that differ only in trailing blanks give the
    same context; nothing else is added (no "Answer:" marker), because the world's prompts
    never carry a response format of their own and the corpus never shows this format.
    """
    return text.rstrip() + "\n"
