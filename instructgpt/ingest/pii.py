"""Rule 2: find PII with Microsoft Presidio behind a cheap regex pre-filter.

Presidio runs fully offline here: the `no_op` NLP engine (Presidio >= 2.2.36x) loads no spaCy
model at all, which is all pattern recognizers need; context words are handled inside our own
recognizers instead of Presidio's lemma-based enhancer (that one needs a lemmatizer). Most
prompts hold no PII: a handful of compiled regexes (RE2 through pyarrow for whole columns)
picks the candidates, and only their candidate types are asked of Presidio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from presidio_analyzer import AnalyzerEngine, ContextAwareEnhancer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import IpRecognizer, PhoneRecognizer, UsSsnRecognizer

from instructgpt.ingest.config import PII_TYPES, PiiConfig
from instructgpt.ingest.recognizers import (
    PREFILTER,
    LuhnCardRecognizer,
    NanpPhoneRecognizer,
    OfflineEmailRecognizer,
    PersonRecognizer,
    StreetAddressRecognizer,
)

# Presidio entity name -> our type name (the simulated world's names).
_FROM_PRESIDIO = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "STREET_ADDRESS": "STREET_ADDRESS",
    "PERSON": "PERSON",
}
_TO_PRESIDIO = {v: k for k, v in _FROM_PRESIDIO.items()}


@dataclass(frozen=True)
class PiiSpan:
    """One detected PII value: text[start:end] is of `type` (one of PII_TYPES)."""

    type: str
    start: int
    end: int
    score: float = 1.0


class PiiDetector:
    """`find(text)` -> non-overlapping PII spans, sorted by start; `find_many(texts)` for columns."""

    def __init__(self, cfg: PiiConfig | None = None) -> None:
        self.cfg = cfg or PiiConfig()
        self.types = [t for t in PII_TYPES if t in self.cfg.types]
        self._prefilter = {t: re.compile(PREFILTER[t]) for t in self.types}
        # One alternation for whole-column screening; RE2 via pyarrow runs it without the GIL.
        self._any_pattern = "|".join(f"(?:{PREFILTER[t]})" for t in dict.fromkeys(self.types))
        self._analyzer: AnalyzerEngine | None = None
        self.n_screened = 0
        """Texts that `find_many` sent past the pre-filter (for the report)."""

    @property
    def analyzer(self) -> AnalyzerEngine:
        """Built at first use: about a second, and only when some prompt needs it."""
        if self._analyzer is None:
            self._analyzer = _build_analyzer(self.types, self.cfg.phone_regions)
        return self._analyzer

    def candidates(self, texts) -> np.ndarray:
        """Boolean mask: which texts the pre-filter sends to Presidio (all when it is off)."""
        arr = pa.array(list(texts), type=pa.large_string())
        if not self.cfg.prefilter or not self.types:
            return np.full(len(arr), bool(self.types))
        return pc.match_substring_regex(arr, self._any_pattern).to_numpy(zero_copy_only=False)

    def find(self, text: str) -> list[PiiSpan]:
        """Non-overlapping PII spans in `text`, sorted by start."""
        if self.cfg.prefilter:
            types = [t for t, rx in self._prefilter.items() if rx.search(text)]
        else:
            types = self.types
        return self._analyze(text, types)

    def find_many(self, texts, progress: bool = False) -> list[list[PiiSpan]]:
        """`find` over a column: the pre-filter runs vectorised (RE2) over all of it, per type
        over the candidates, and Presidio sees only candidates and their candidate types."""
        texts = list(texts)
        out: list[list[PiiSpan]] = [[] for _ in texts]
        if not self.types:
            return out
        arr = pa.array(texts, type=pa.large_string())
        if self.cfg.prefilter:
            idx = np.flatnonzero(pc.match_substring_regex(arr, self._any_pattern).to_numpy(zero_copy_only=False))
            cand = arr.take(pa.array(idx))
            by_type = {  # (n_candidates,) bool per type
                t: pc.match_substring_regex(cand, PREFILTER[t]).to_numpy(zero_copy_only=False)
                for t in self.types
            }
            types_of = [[t for t in self.types if by_type[t][j]] for j in range(len(idx))]
        else:
            idx = np.arange(len(texts))
            types_of = [self.types] * len(texts)
        self.n_screened += len(idx)
        it = zip(idx.tolist(), types_of)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, total=len(idx), desc="ingest: PII (Presidio)", unit="prompt", leave=False)
        for i, types in it:
            out[i] = self._analyze(texts[i], types)
        return out

    def _analyze(self, text: str, types: list[str]) -> list[PiiSpan]:
        if not types:
            return []
        results = self.analyzer.analyze(
            text=text,
            language="en",
            entities=[_TO_PRESIDIO[t] for t in types],
            score_threshold=self.cfg.score_threshold,
        )
        return _resolve_overlaps(
            [PiiSpan(_FROM_PRESIDIO[r.entity_type], r.start, r.end, r.score) for r in results]
        )


def redact(text: str, spans: list[PiiSpan]) -> str:
    """Replace each span by a typed placeholder such as <EMAIL> (spans must not overlap)."""
    parts, last = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        parts.append(text[last : s.start])
        parts.append(f"<{s.type}>")
        last = s.end
    parts.append(text[last:])
    return "".join(parts)


def _resolve_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Keep the best of overlapping spans (higher score, then longer), sorted by start."""
    kept: list[PiiSpan] = []
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)


class _NoContextEnhancer(ContextAwareEnhancer):
    """Our recognizers carry their context in their patterns, and the no_op engine has no
    lemmas for Presidio's enhancer to use: skip it (it deep-copies every result)."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):  # noqa: D102
        return raw_results


def _build_analyzer(types: list[str], phone_regions: list[str]) -> AnalyzerEngine:
    makers = {
        "EMAIL": [OfflineEmailRecognizer],
        "PHONE": [NanpPhoneRecognizer]
        + ([lambda: PhoneRecognizer(supported_regions=tuple(phone_regions))] if phone_regions else []),
        "CREDIT_CARD": [LuhnCardRecognizer],
        "SSN": [UsSsnRecognizer],
        "IP_ADDRESS": [IpRecognizer],
        "STREET_ADDRESS": [StreetAddressRecognizer],
        "PERSON": [PersonRecognizer],
    }
    registry = RecognizerRegistry(supported_languages=["en"])
    for t in types:
        for make in makers[t]:
            registry.add_recognizer(make())
    nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    nlp_engine.load()
    return AnalyzerEngine(
        nlp_engine=nlp_engine,
        registry=registry,
        supported_languages=["en"],
        context_aware_enhancer=_NoContextEnhancer(),
    )
