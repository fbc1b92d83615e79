"""Rule 2: find PII with Microsoft Presidio behind a cheap regex pre-filter.

Presidio runs fully offline here: the `no_op` NLP engine (Presidio >= 2.2.36x) loads no spaCy
model at all, which is all pattern recognizers need; context words are handled inside our own
recognizers instead of Presidio's lemma-based enhancer (that one needs a lemmatizer). Most
prompts hold no PII: a handful of compiled regexes (RE2 through pyarrow for whole columns)
picks the candidates, and only their candidate types are asked of Presidio.

Pre-filter, own recognizers and Presidio all see one view of each text, `detection_text`
(normalise.py: NFKC, invisible characters removed, digits and dashes folded to ASCII), and
`find` is `find_many` on one text: the ingest filter and every gate that calls this detector
judge the same characters the same way, so a gate cannot find what the filter let through.
Spans are mapped back to the original text (`SourceMap`): redaction replaces exactly the
original characters of the value (and any invisible ones inside it), the rest of the prompt
stays as the user wrote it.

Speed (1M-prompt log, ~10 % candidates): the candidates' recognizers are called directly, with
the engine's own score filter and `remove_duplicates` (`PiiDetector._analyze`; the engine's
per-call overhead was more than the recognizers' work), and from POOL_MIN_CANDIDATES
candidates on they are spread over a process pool of at most 2 forked workers, in contiguous
chunks whose results come back in order: the spans never depend on the number of workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from presidio_analyzer import AnalyzerEngine, ContextAwareEnhancer, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import IbanRecognizer

from instructgpt.ingest.config import PII_TYPES, PiiConfig
from instructgpt.ingest.normalise import SourceMap, detection_texts
from instructgpt.ingest.numbers import (
    EuropeanPhoneRecognizer,
    LuhnCardRecognizer,
    NanpPhoneRecognizer,
    OwnedSsnRecognizer,
    RegionPhoneRecognizer,
)
from instructgpt.ingest.recognizers import (
    PREFILTER,
    FastIpRecognizer,
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
    "IBAN_CODE": "IBAN",
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

    POOL_MIN_CANDIDATES = 5_000
    """`find_many` uses a process pool only from this many candidates on (starting the
    workers, forked with the built analyzer, costs ~0.1 s; a candidate ~0.2 ms)."""

    def __init__(self, cfg: PiiConfig | None = None, workers: int | None = None) -> None:
        """`workers`: processes for the Presidio pass of `find_many` (None: the environment
        variable INSTRUCTGPT_PII_WORKERS if set, else one per CPU, at most 2, and only for
        >= POOL_MIN_CANDIDATES candidates; 1: in-process; n > 1: a pool of n whatever the
        input size). Results do not depend on it."""
        self.cfg = cfg or PiiConfig()
        self.workers = workers
        self.types = [t for t in PII_TYPES if t in self.cfg.types]
        # One alternation for whole-column screening; RE2 via pyarrow runs it without the GIL.
        self._any_pattern = "|".join(f"(?:{PREFILTER[t]})" for t in dict.fromkeys(self.types))
        self._analyzer: AnalyzerEngine | None = None
        self._by_types: dict[tuple[str, ...], tuple[list[EntityRecognizer], list[str]]] = {}
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
        arr = pa.array(detection_texts(list(texts)), type=pa.large_string())
        if not self.cfg.prefilter or not self.types:
            return np.full(len(arr), bool(self.types))
        return pc.match_substring_regex(arr, self._any_pattern).to_numpy(zero_copy_only=False)

    def find(self, text: str) -> list[PiiSpan]:
        """Non-overlapping PII spans in `text`, sorted by start: `find_many([text])[0]`, so that
        a single text is judged exactly as in a column."""
        return self.find_many([text])[0]

    def find_many(self, texts, progress: bool = False) -> list[list[PiiSpan]]:
        """`find` over a column. Every text is looked at in its detection view (normalise.py:
        NFKC, no invisible characters; ASCII texts as they are); the pre-filter runs vectorised
        (RE2) over all views, per type over the candidates, and Presidio sees only candidates
        and their candidate types. Spans are offsets into the original texts."""
        texts = list(texts)
        out: list[list[PiiSpan]] = [[] for _ in texts]
        if not self.types:
            return out
        views = detection_texts(texts)
        idx, types_of = self._screen(views)
        self.n_screened += len(idx)
        idx_list = idx.tolist()
        workers = self._n_workers(len(idx_list))
        if workers > 1:
            jobs = [(views[i], tuple(types)) for i, types in zip(idx_list, types_of)]
            for i, spans in zip(idx_list, self._analyze_pool(jobs, workers, progress)):
                out[i] = spans
        else:
            it = zip(idx_list, types_of)
            if progress:
                from instructgpt.progress import progress as bar

                it = bar(it, total=len(idx), desc="ingest: PII (Presidio)", unit="prompt", leave=False)
            for i, types in it:
                out[i] = self._analyze(views[i], types)
        if views is not texts:
            for i in idx_list:
                if out[i] and views[i] is not texts[i]:
                    out[i] = _to_source(texts[i], out[i])
        return out

    def candidate_types(self, view: str) -> list[str]:
        """The types the pre-filter would ask Presidio about for this detection view."""
        if not self.types:
            return []
        idx, types_of = self._screen([view])
        return types_of[0] if len(idx) else []

    def _screen(self, views: list[str]) -> tuple[np.ndarray, list[list[str]]]:
        """(indices of the candidates, their candidate types)."""
        if not self.cfg.prefilter:
            return np.arange(len(views)), [self.types] * len(views)
        arr = pa.array(views, type=pa.large_string())
        idx = np.flatnonzero(pc.match_substring_regex(arr, self._any_pattern).to_numpy(zero_copy_only=False))
        cand = arr.take(pa.array(idx))
        by_type = {  # (n_candidates,) bool per type
            t: pc.match_substring_regex(cand, PREFILTER[t]).to_numpy(zero_copy_only=False)
            for t in self.types
        }
        return idx, [[t for t in self.types if by_type[t][j]] for j in range(len(idx))]

    def _n_workers(self, n_candidates: int) -> int:
        if self.workers is not None:
            return max(1, self.workers)
        env = os.environ.get("INSTRUCTGPT_PII_WORKERS", "").strip()
        if env:  # operator override, e.g. 1 where forking is unwelcome
            return max(1, int(env))
        if n_candidates < self.POOL_MIN_CANDIDATES:
            return 1
        return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))

    def _analyze_pool(self, jobs: list[tuple[str, tuple[str, ...]]], workers: int, progress: bool):
        """Spans per job, in job order: contiguous chunks go to `workers` processes (fork
        where available: the workers inherit the built analyzer)."""
        import multiprocessing as mp

        self.analyzer  # build before forking, so that the children inherit it  # noqa: B018
        n_chunks = max(workers * 8, 1)
        size = max(1, -(-len(jobs) // n_chunks))
        chunks = [jobs[k : k + size] for k in range(0, len(jobs), size)]
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else None)
        global _WORKER_DETECTOR
        _WORKER_DETECTOR = self
        try:
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(self.cfg,)) as pool:
                results = pool.map(_analyze_chunk, chunks)
                if progress:
                    from instructgpt.progress import progress as bar

                    results = bar(results, total=len(chunks), desc="ingest: PII (Presidio)",
                                  unit="chunk", leave=False)
                out = []
                for part in results:
                    out.extend(part)
                return out
        finally:
            _WORKER_DETECTOR = None

    def _analyze(self, text: str, types) -> list[PiiSpan]:
        """What `AnalyzerEngine.analyze(text, "en", entities, score_threshold=...)` returns,
        without its per-call overhead (recognizer look-up, an empty spaCy Doc, the no-op
        context pass, decision-process bookkeeping: ~0.2 ms a call, more than the
        recognizers themselves): the same recognizers run on the same text, then the same
        score filter and `remove_duplicates`. tests/ingest checks both agree."""
        if not types:
            return []
        key = tuple(types)
        sel = self._by_types.get(key)
        if sel is None:
            entities = [_TO_PRESIDIO[t] for t in types]
            recognizers = self.analyzer.registry.get_recognizers(language="en", entities=entities)
            for r in recognizers:
                if not r.is_loaded:
                    r.load()
                    r.is_loaded = True
            sel = self._by_types[key] = (recognizers, entities)
        recognizers, entities = sel
        thr = self.cfg.score_threshold
        results = []
        for r in recognizers:
            found = r.analyze(text=text, entities=entities, nlp_artifacts=None)
            if found:
                results.extend(x for x in found if x.score >= thr)
        if not results:
            return []
        results = EntityRecognizer.remove_duplicates(results)
        return _resolve_overlaps(
            [PiiSpan(_FROM_PRESIDIO[r.entity_type], r.start, r.end, r.score) for r in results]
        )

    def _analyze_presidio(self, text: str, types) -> list[PiiSpan]:
        """`_analyze` through `AnalyzerEngine.analyze` itself (reference for the tests)."""
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


_WORKER_DETECTOR: PiiDetector | None = None


def _init_worker(cfg: PiiConfig) -> None:
    """Pool initializer: a forked worker already holds the parent's detector; a spawned one
    builds its own from the config."""
    global _WORKER_DETECTOR
    if _WORKER_DETECTOR is None:
        _WORKER_DETECTOR = PiiDetector(cfg, workers=1)


def _analyze_chunk(chunk: list[tuple[str, tuple[str, ...]]]) -> list[list[PiiSpan]]:
    det = _WORKER_DETECTOR
    return [det._analyze(text, types) for text, types in chunk]


def redact(text: str, spans: list[PiiSpan]) -> str:
    """Replace each span by a typed placeholder such as <EMAIL> (spans must not overlap)."""
    parts, last = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        parts.append(text[last : s.start])
        parts.append(f"<{s.type}>")
        last = s.end
    parts.append(text[last:])
    return "".join(parts)


def _to_source(text: str, spans: list[PiiSpan]) -> list[PiiSpan]:
    """Spans found in the detection view of `text`, as offsets into `text` itself. A span
    that grew to whole segments may now touch its neighbour: touching spans are merged."""
    source = SourceMap(text)
    out: list[PiiSpan] = []
    for s in spans:
        start, end = source.source(s.start, s.end)
        if out and start < out[-1].end:
            prev = out.pop()
            best = prev if prev.score >= s.score else s
            out.append(PiiSpan(best.type, prev.start, max(prev.end, end), best.score))
        else:
            out.append(PiiSpan(s.type, start, end, s.score))
    return out


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
        "PHONE": [NanpPhoneRecognizer, EuropeanPhoneRecognizer]
        + ([lambda: RegionPhoneRecognizer(supported_regions=tuple(phone_regions))] if phone_regions else []),
        "CREDIT_CARD": [LuhnCardRecognizer],
        "SSN": [OwnedSsnRecognizer],
        "IP_ADDRESS": [FastIpRecognizer],
        "STREET_ADDRESS": [StreetAddressRecognizer],
        "PERSON": [PersonRecognizer],
        "IBAN": [IbanRecognizer],
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
