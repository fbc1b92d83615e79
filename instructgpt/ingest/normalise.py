"""The one view of a text that PII detection sees, for the ingest filter and every gate alike.

`detection_text(text)`: invisible characters removed (every format character, category Cf:
zero-width space/joiners U+200B..U+200D, word joiner U+2060, BOM U+FEFF, soft hyphen U+00AD,
bidi controls; plus the combining grapheme joiner, variation selectors and Hangul fillers),
every decimal digit folded to its ASCII digit and every dash to '-', then NFKC (full-width
forms, ideographic and no-break spaces, circled and superscript digits become ASCII). Without
it a phone written in full-width digits or an email with a zero-width space inside passed the
filter (RE2's \\d is ASCII-only) while the gate's Python regex (\\d is Unicode) flagged it.

ASCII texts are returned as they are, with no work beyond `str.isascii()` (O(1) in CPython):
nearly every prompt is ASCII, so the 1M-row stage pays for normalisation only on the rest.

`SourceMap(text)` maps spans found in the view back to the original text, so that redaction
replaces the original characters and the user's text is otherwise kept as written. The view is
cut into segments that normalise on their own (a character with its combining marks); a span
covers whole segments, so it can only grow, never miss a character of the value.

Why map back rather than keep the normalised text: the filter should change nothing but the
PII it removes (a French prompt keeps its typographic apostrophes, a Japanese one its
full-width punctuation); and the gate, which normalises again, sees exactly the view the
filter redacted.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Invisible in rendered text but not category Cf: a span of PII may hide any of them.
_EXTRA_INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180E, 0x180F, 0x3164, 0xFFA0]
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
)


class _FoldTable(dict):
    """`str.translate` table filled on first sight of each character: invisible -> removed,
    decimal digit -> ASCII digit, dash -> '-', anything else -> itself (stored too: a
    LookupError per character would cost more than the whole translation)."""

    def __missing__(self, code: int):
        ch = chr(code)
        cat = unicodedata.category(ch)
        if cat == "Cf" or code in _EXTRA_INVISIBLE:
            value = None
        elif cat == "Nd":
            value = str(unicodedata.decimal(ch))
        elif cat == "Pd" or code == 0x2212:  # dashes and the minus sign
            value = "-"
        else:
            value = code
        self[code] = value
        return value


_FOLD = _FoldTable()


def _fold(text: str) -> str:
    # NFKC can yield a dash or digit that is not ASCII (U+2011 -> U+2010), hence fold twice.
    return unicodedata.normalize("NFKC", text.translate(_FOLD)).translate(_FOLD)


def detection_text(text: str) -> str:
    """What every PII detector looks at (see the module docstring). Idempotent."""
    return text if text.isascii() else _fold(text)


class SourceMap:
    """`view` = detection_text(text), and `source(start, end)`: the span of `text` whose
    characters became view[start:end] (covering whole segments)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.view = detection_text(text)
        self._starts: list[int] | None = None
        self._ends: list[int] | None = None
        if self.view != text:
            self._starts, self._ends = _segment_map(text, self.view)

    def source(self, start: int, end: int) -> tuple[int, int]:
        """Original (start, end) of view[start:end]; the identity when the view is the text."""
        if self._starts is None or end <= start:
            return start, end
        return self._starts[start], self._ends[end - 1]


def _segment_map(text: str, view: str) -> tuple[list[int], list[int]]:
    """Per view character, the (start, end) in `text` of the segment it came from. Segments
    start at each character that is not a combining mark, and a segment whose view does not
    simply follow its predecessor's (a composition across them, e.g. half-width katakana +
    sound mark) is merged into it. Should the views still not add up to the whole view, the
    whole text is one segment (a span then redacts everything: never less than the value)."""
    groups: list[tuple[int, int, str]] = []  # (start, end, view of text[start:end])
    seg_start = 0
    for i in range(1, len(text) + 1):
        if i < len(text) and not _starts_segment(text[i]):
            continue
        piece = _fold_cached(text[seg_start:i])
        if groups:
            g_start, _, g_view = groups[-1]
            joined = _fold_cached(text[g_start:i])
            if joined != g_view + piece:
                groups[-1] = (g_start, i, joined)
                seg_start = i
                continue
        groups.append((seg_start, i, piece))
        seg_start = i
    starts: list[int] = []
    ends: list[int] = []
    for g_start, g_end, g_view in groups:
        starts.extend([g_start] * len(g_view))
        ends.extend([g_end] * len(g_view))
    if "".join(g[2] for g in groups) != view:
        return [0] * len(view), [len(text)] * len(view)
    return starts, ends


def _starts_segment(ch: str) -> bool:
    return unicodedata.combining(ch) == 0 and unicodedata.category(ch) not in ("Mn", "Mc", "Me")


@lru_cache(maxsize=4096)
def _fold_cached(segment: str) -> str:
    return detection_text(segment)


def detection_texts(texts: list[str]) -> list[str]:
    """`detection_text` over a column; returns `texts` itself when every text is ASCII."""
    views = texts
    for i, text in enumerate(texts):
        if not text.isascii():
            if views is texts:
                views = list(texts)
            views[i] = _fold(text)
    return views
