"""Rule 2: PII detection per type, drop and redact modes, no value leaks, pre-filter safety."""

from __future__ import annotations

import pytest

from instructgpt.ingest import IngestConfig, PiiConfig, PiiDetector, ingest
from .conftest import row

POSITIVE = [
    ("EMAIL", "Send the draft to anna.berg@example.com before noon", "anna.berg@example.com"),
    ("PHONE", "You can reach me on (415) 555-2671 after six", "(415) 555-2671"),
    ("PHONE", "call 212-555-0187 tomorrow", "212-555-0187"),
    ("CREDIT_CARD", "charge card 4539 1488 0343 6467 please", "4539 1488 0343 6467"),
    ("SSN", "my SSN is 536-22-8841 for the form", "536-22-8841"),
    ("IP_ADDRESS", "the server at 10.20.30.40 is down", "10.20.30.40"),
    ("STREET_ADDRESS", "Ship it to 742 Evergreen Terrace, Springfield, OR 97403 today",
     "742 Evergreen Terrace, Springfield, OR 97403"),
    ("PERSON", "Hi, my name is Marta Kowalski and I need help", "Marta Kowalski"),
    ("PERSON", "Please contact Jonas Berger at the front desk", "Jonas Berger"),
    ("PERSON", "Write a note to thank Jennifer Walsh for the flowers", "Jennifer Walsh"),
]

NEGATIVE = [
    "Write a poem about the sea in the style of a sonnet.",
    "Hello World in Python, please.",
    "Translate to French: the cat sleeps on the mat.",
    "List 5 ways to save money in 2023.",
    "What is 3.14 times 2? Show 3 steps.",
    "Card 4111 1111 1111 1112 fails the checksum.",
    "The meeting is at 10:30 on Monday.",
    "Summarise chapter 12 of the book for me.",
]


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector(PiiConfig())


@pytest.mark.parametrize("kind, text, value", POSITIVE)
def test_detects_each_type(detector, kind, text, value):
    spans = detector.find(text)
    found = [(s.type, text[s.start : s.end]) for s in spans]
    assert (kind, value) in found, found


@pytest.mark.parametrize("text", NEGATIVE)
def test_pii_free_prompts_not_flagged(detector, text):
    assert detector.find(text) == []


def test_prefilter_never_changes_the_answer():
    on = PiiDetector(PiiConfig(prefilter=True))
    off = PiiDetector(PiiConfig(prefilter=False))
    texts = [t for _, t, _ in POSITIVE] + NEGATIVE
    assert on.find_many(texts) == off.find_many(texts)
    # ...and it screens out the PII-free prompts.
    assert on.candidates(NEGATIVE).sum() <= 4


def test_drop_mode_quarantines_without_the_value(write_jsonl):
    items = [row(f"p{i}", uid=f"u{i}", text=t) for i, (_, t, _) in enumerate(POSITIVE)] + [row("clean", text=NEGATIVE[0])]
    res = ingest(write_jsonl(items), IngestConfig(), progress=False)
    assert list(res.kept["prompt_id"]) == ["clean"]
    q = res.quarantine
    assert q["reason"].str.startswith("pii:").all()
    for _, _, value in POSITIVE:
        assert not q.astype(str).apply(lambda c: c.str.contains(value, regex=False)).any().any()
    assert sum(res.report["pii_by_type"].values()) >= len(POSITIVE)
    assert res.report["accounting_ok"]


def test_redact_mode_keeps_prompt_with_typed_placeholders(write_jsonl):
    items = [row("p1", text="Email anna.berg@example.com or call (415) 555-2671, thanks")]
    cfg = IngestConfig()
    cfg.pii.mode = "redact"
    res = ingest(write_jsonl(items), cfg, progress=False)
    assert res.kept["text"].tolist() == ["Email <EMAIL> or call <PHONE>, thanks"]
    assert res.report["pii_by_type"]["EMAIL"] == 1 and res.report["pii_by_type"]["PHONE"] == 1
    # Gate check: nothing left to find.
    assert PiiDetector(cfg.pii).find(res.kept["text"][0]) == []


def test_only_configured_types(detector):
    email_only = PiiDetector(PiiConfig(types=["EMAIL"]))
    text = "anna.berg@example.com, (415) 555-2671"
    assert [s.type for s in email_only.find(text)] == ["EMAIL"]


MIXED = [t for _, t, _ in POSITIVE] + NEGATIVE + [
    "ping ::ffff:10.0.0.1 and fe80::1%eth0 or 2001:db8::8a2e:370:7334, also 192.168.1.300",
    "Dear Olivia, my SSN is 536-22-8841, card 4111-1111-1111-1111, ip 8.8.8.8; thanks, tom",
    "my name is zara quimby, call me at +1 415 555 2671 or write to zq@mail.example.org",
    "Meet James Smith at 12 N. Oak Street, Apt 4, Portland, OR 97201 at 10:30",
    "hello bob: server 10.0.0.1:8080, regards, Ana",
]


def test_direct_analyze_matches_analyzer_engine(detector):
    """`_analyze` skips AnalyzerEngine.analyze's overhead but must return the same spans."""
    for text in MIXED:
        for types in (detector.types, detector.candidate_types(text)):
            assert detector._analyze(text, types) == detector._analyze_presidio(text, types), text


def test_fast_ip_recognizer_matches_presidio():
    from presidio_analyzer.predefined_recognizers import IpRecognizer

    from instructgpt.ingest.recognizers import FastIpRecognizer

    fast, stock = FastIpRecognizer(), IpRecognizer()
    key = lambda rs: sorted((r.start, r.end, r.score) for r in rs)  # noqa: E731
    for text in MIXED + ["10.0.0.1", "::", "::1", "a::b 1.2.3.4", "1.2.3.4/24 and 300.1.1.1"]:
        assert key(fast.analyze(text, ["IP_ADDRESS"])) == key(stock.analyze(text, ["IP_ADDRESS"])), text


def test_process_pool_gives_the_same_spans_in_order():
    texts = MIXED * 3
    inproc = PiiDetector(PiiConfig(), workers=1).find_many(texts)
    pooled = PiiDetector(PiiConfig(), workers=2).find_many(texts)
    assert pooled == inproc
    assert any(inproc) and not all(inproc)


def test_pool_only_for_many_candidates(monkeypatch):
    monkeypatch.delenv("INSTRUCTGPT_PII_WORKERS", raising=False)
    det = PiiDetector(PiiConfig())
    assert det._n_workers(10) == 1
    assert PiiDetector(PiiConfig(), workers=1)._n_workers(10**6) == 1
    assert PiiDetector(PiiConfig(), workers=2)._n_workers(1) == 2
    monkeypatch.setenv("INSTRUCTGPT_PII_WORKERS", "1")
    assert PiiDetector(PiiConfig())._n_workers(10**6) == 1
