"""Rule 2: PII detection per type, drop and redact modes, no value leaks, pre-filter safety."""

from __future__ import annotations

import pytest

from instructgpt.ingest import IngestConfig, PiiConfig, PiiDetector, ingest
from tests.helpers import write_jsonl

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


def test_drop_mode_quarantines_without_the_value(tmp_path):
    items = [row(f"p{i}", uid=f"u{i}", text=t) for i, (_, t, _) in enumerate(POSITIVE)] + [row("clean", text=NEGATIVE[0])]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), IngestConfig(), progress=False)
    assert list(res.kept["prompt_id"]) == ["clean"]
    q = res.quarantine
    assert q["reason"].str.startswith("pii:").all()
    for _, _, value in POSITIVE:
        assert not q.astype(str).apply(lambda c: c.str.contains(value, regex=False)).any().any()
    assert sum(res.report["pii_by_type"].values()) >= len(POSITIVE)
    assert res.report["accounting_ok"]


def test_redact_mode_keeps_prompt_with_typed_placeholders(tmp_path):
    items = [row("p1", text="Email anna.berg@example.com or call (415) 555-2671, thanks")]
    cfg = IngestConfig()
    cfg.pii.mode = "redact"
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), cfg, progress=False)
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


# --- One view of the text for filter and gates (normalise.py), context rules (context.py) ---

REGIONS = ["US", "GB", "DE", "FR", "JP", "ES"]

# (text, PII value as written): full-width digits and forms, invisible characters, Unicode
# spaces, dashes and digits, in several languages and national formats.
ADVERSARIAL = [
    ("PHONE", "call me at （４１５） ５５５－２６７１ tonight", "（４１５） ５５５－２６７１"),
    ("PHONE", "call me at ４１５-５５５-２６７１", "４１５-５５５-２６７１"),
    ("PHONE", "ring me on ０２０ ７９４６ ０９５８ after work", "０２０ ７９４６ ０９５８"),  # UK
    ("PHONE", "Ruf mich an unter ０３０ １２３４５６７８, danke", "０３０ １２３４５６７８"),  # DE
    ("PHONE", "Appelle-moi au ０６ １２ ３４ ５６ ７８ ce soir", "０６ １２ ３４ ５６ ７８"),  # FR
    ("PHONE", "電話は ０３－１２３４－５６７８ です", "０３－１２３４－５６７８"),  # JP
    ("PHONE", "Llámame al ６１２ ３４５ ６７８ mañana", "６１２ ３４５ ６７８"),  # ES
    ("PHONE", "call 415\u200b-555-\u20602671 now", "415\u200b-555-\u20602671"),
    ("PHONE", "call ٤١٥-٥٥٥-٢٦٧١ now", "٤١٥-٥٥٥-٢٦٧١"),  # Arabic-Indic digits
    ("PHONE", "call 415\u2011555\u20112671 or 415\u00a0555\u00a02671", "415\u2011555\u20112671"),
    ("EMAIL", "mail anna\u200b.berg@exa\u00admple.com today", "anna\u200b.berg@exa\u00admple.com"),
    ("EMAIL", "schreib an ｊｕｌｉａ．ｓｃｈｍｉｄｔ＠ｍａｉｌ．ｄｅ bitte", "ｊｕｌｉａ．ｓｃｈｍｉｄｔ＠ｍａｉｌ．ｄｅ"),
    ("EMAIL", "écris à marie\ufeff.dubois@post.fr stp", "marie\ufeff.dubois@post.fr"),
    ("CREDIT_CARD", "charge ４５３９ １４８８ ０３４３ ６４６７ please", "４５３９ １４８８ ０３４３ ６４６７"),
    ("SSN", "my ssn is ５３６-２２-８８４１", "５３６-２２-８８４１"),
    ("IP_ADDRESS", "my server ip is １０.１.２.３", "１０.１.２.３"),
    ("IBAN", "Meine IBAN: ＤＥ８９ ３７０４ ００４４ ０５３２ ０１３０ ００", "ＤＥ８９ ３７０４ ００４４ ０５３２ ０１３０ ００"),
    ("IBAN", "virement sur FR76\u00a03000\u00a06000\u00a00112\u00a03456\u00a07890\u00a0189 merci",
     "FR76\u00a03000\u00a06000\u00a00112\u00a03456\u00a07890\u00a0189"),
    ("IBAN", "transferencia a ES91 2100 0418 4502 0005 1332, gracias", "ES91 2100 0418 4502 0005 1332"),
]

# Rule 1: the user presents the number as theirs -> PII, whatever its checksum or range.
OWNED = [
    ("CREDIT_CARD", "my card number is 4111 1111 1111 1111", "4111 1111 1111 1111"),  # test number
    ("CREDIT_CARD", "my card number is 4111 1111 1111 1112", "4111 1111 1111 1112"),  # Luhn fails
    ("CREDIT_CARD", "Meine Kreditkartennummer ist 4242 4242 4242 4242.", "4242 4242 4242 4242"),
    ("CREDIT_CARD", "Mon numéro de carte : 5555 5555 5555 4444", "5555 5555 5555 4444"),
    ("CREDIT_CARD", "Mi tarjeta es la ５１０５ １０５１ ０５１０ ５１０５", "５１０５ １０５１ ０５１０ ５１０５"),
    ("SSN", "my SSN is 078-05-1120", "078-05-1120"),  # the published Woolworth number
    ("SSN", "my social security number is 123-45-6789", "123-45-6789"),
    ("SSN", "my ssn: 666-12-3456", "666-12-3456"),  # area never issued
    ("SSN", "my ssn is 078051120", "078051120"),
    ("SSN", "mon numéro de sécurité sociale est 078-05-1120", "078-05-1120"),
    ("SSN", "mi número de seguro social es 123-45-6789", "123-45-6789"),
]

# Rule 1 without ownership, and rule 2: look-alikes that are not PII.
LOOKALIKES = [
    "Use the test card 4242 4242 4242 4242 in the sandbox.",
    "Stripe documents 4111 1111 1111 1111 as its Visa test number.",
    "Die Testkarte 5555 5555 5555 4444 wird immer akzeptiert.",
    "The sample SSN 078-05-1120 was printed on wallet inserts.",
    "Update to version 10.0.19041.1 before the install.",
    "Windows version 10.0.1.1 shows the bug.",
    "the build 1.2.3.4 crashes on start",
    "release 2.0.1.7 is out, and v 1.2.3.4 too",
    "The OID 1.3.6.1.4.1.311 is Microsoft's private arc.",
    "see section 3.2.1.4 and chapter 2.1.1.3",
    "See §3.2.1.4 of the contract.",
    "Siehe Abschnitt 3.2.1.4 und Kapitel 4.1.2.2 der Norm.",
    "Voir la section 3.2.1.4 du manuel, version 12.4.0.1.",
    "Véase la sección 3.2.1.4; actualiza a la versión 1.2.3.4.",
    "the build 212.555.0187 fixed it",
    "The firmware, version １０.０.１.１, fixed the fan.",
]

# The same digits are PII after anything else.
IP_IN_CONTEXT = [
    ("my server ip is 10.1.2.3", "10.1.2.3"),
    ("Die IP meines Servers ist 10.1.2.3.", "10.1.2.3"),
    ("L'adresse IP de mon serveur est 10.1.2.3.", "10.1.2.3"),
    ("La IP de mi servidor es 10.1.2.3, gracias.", "10.1.2.3"),
    ("the request came from 1.2.3.4 at noon", "1.2.3.4"),
    ("call 212.555.0187 tomorrow", "212.555.0187"),
]


@pytest.fixture(scope="module")
def intl() -> PiiDetector:
    return PiiDetector(PiiConfig(phone_regions=REGIONS))


def _found(det: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(s.type, text[s.start : s.end]) for s in det.find(text)]


@pytest.mark.parametrize("kind, text, value", ADVERSARIAL)
def test_adversarial_unicode_is_found_with_its_original_span(intl, kind, text, value):
    assert (kind, value) in _found(intl, text)


def test_full_width_nanp_phone_found_without_phone_regions(detector):
    text, value = ADVERSARIAL[0][1:]
    assert ("PHONE", value) in _found(detector, text)
    # The bug of the issue: the column path (RE2 pre-filter, ASCII \d) missed what find saw.
    assert detector.find_many([text]) == [detector.find(text)]


@pytest.mark.parametrize("kind, text, value", OWNED)
def test_owned_numbers_are_pii_whatever_their_checksum(detector, kind, text, value):
    assert (kind, value) in _found(detector, text)


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_are_not_pii(detector, intl, text):
    assert detector.find(text) == [], _found(detector, text)
    if "-" not in text:  # python-phonenumbers reads 078-05-1120 as a valid number somewhere
        assert intl.find(text) == [], _found(intl, text)


@pytest.mark.parametrize("text, value", IP_IN_CONTEXT)
def test_dotted_numbers_in_pii_context_stay_pii(detector, text, value):
    assert value in [v for _, v in _found(detector, text)]


def test_detection_text_undoes_every_adversarial_rendering():
    import random

    from instructgpt.ingest.normalise import detection_text
    from instructgpt.world.pii import ADVERSARIAL as RENDERINGS
    from instructgpt.world.pii import PII_TYPES as WORLD_TYPES
    from instructgpt.world.pii import _value, adversarial

    rng = random.Random(0)
    for kind in WORLD_TYPES:
        for _ in range(50):
            value = _value(kind, rng)
            for render in RENDERINGS.values():
                assert detection_text(render(value, rng)) == value
            assert detection_text(adversarial(value, rng)) == value
            assert detection_text(detection_text(adversarial(value, rng))) == value


def test_source_map_covers_the_whole_value():
    from instructgpt.ingest.normalise import SourceMap

    text = "ｶﾞ e\u0301 call \u200b（４１５）\u00a0５５５－２６７１\u200b ok"
    m = SourceMap(text)
    start = m.view.index("(415)")
    s, e = m.source(start, start + len("(415) 555-2671"))
    assert text[s:e] == "（４１５）\u00a0５５５－２６７１"
    assert SourceMap("plain ascii").source(2, 5) == (2, 5)


def test_redact_keeps_the_original_text_around_the_value(tmp_path):
    text = "Ｈｉ！ mail anna\u200b.berg@example.com or call （４１５） ５５５－２６７１, merci ☺"
    cfg = IngestConfig()
    cfg.pii.mode = "redact"
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", [row("p1", text=text)]), cfg, progress=False)
    assert res.kept["text"].tolist() == ["Ｈｉ！ mail <EMAIL> or call <PHONE>, merci ☺"]


ADVERSARIAL_LOG = (
    [t for _, t, _ in ADVERSARIAL + OWNED]
    + LOOKALIKES
    + [t for t, _ in IP_IN_CONTEXT]
    + [t for _, t, _ in POSITIVE]
    + NEGATIVE
    + ["Ｗｒｉｔｅ ａ ｈａｉｋｕ ａｂｏｕｔ ｔｈｅ ｍｏｏｎ.", "Schreibe ein Gedicht über das Meer.",
       "Écris un poème sur la mer, s’il te plaît.", "Escribe un poema sobre el mar.",
       "\u200bzero\u200bwidth\u200b text without pii", "日本語で海についての詩を書いてください。"]
)


@pytest.mark.parametrize("mode", ["drop", "redact"])
def test_gate_finds_nothing_the_filter_let_through(tmp_path, monkeypatch, mode):
    """Property of the issue: on an adversarial log, whatever the ingest stage's output gate
    would flag, the filter already removed -- zero findings, and the gate passes. (The log
    holds no duplicates; in redact mode prompts that differ only in their PII merge.)"""
    from tasks.gates import run_gate
    from tasks.ingest import gate_tables

    items = [row(f"p{i:03d}", uid=f"u{i % 7}", text=t) for i, t in enumerate(ADVERSARIAL_LOG)]
    cfg = IngestConfig()
    cfg.pii.mode = mode
    cfg.pii.phone_regions = REGIONS
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", items), cfg, progress=False)
    gate_detector = PiiDetector(cfg.pii)
    assert [s for s in gate_detector.find_many(res.kept["text"]) if s] == []
    assert [t for t in res.kept["text"] if gate_detector.find(t)] == []
    n_pii = len(ADVERSARIAL) + len(OWNED)
    pii_ids = {it["prompt_id"] for it in items[:n_pii]}
    pii_ids |= {it["prompt_id"] for it in items if it["text"] in {t for t, _ in IP_IN_CONTEXT}}
    pii_ids |= {it["prompt_id"] for it in items if it["text"] in {t for _, t, _ in POSITIVE}}
    clean_ids = {it["prompt_id"] for it in items if it["text"] in NEGATIVE or
                 (it["text"] in LOOKALIKES and "-" not in it["text"])} | {it["prompt_id"] for it in items[-6:]}
    kept_ids = set(res.kept["prompt_id"])
    assert clean_ids <= kept_ids  # look-alikes and clean prompts stay (with their original text)
    if mode == "drop":  # every PII prompt went
        assert not pii_ids & kept_ids
        assert set(res.kept["text"]) >= {it["text"] for it in items if it["prompt_id"] in clean_ids}
    else:  # every PII prompt kept with its values redacted, or merged by dedup once redacted
        q = res.quarantine
        assert pii_ids <= kept_ids | set(q.loc[q["reason"] == "duplicate", "prompt_id"])
        redacted = dict(zip(res.kept["prompt_id"], res.kept["text"]))
        for it, (_, _, value) in zip(items, ADVERSARIAL + OWNED):
            if it["prompt_id"] in redacted:
                assert value not in redacted[it["prompt_id"]] and "<" in redacted[it["prompt_id"]]
    monkeypatch.chdir(tmp_path)
    gate = run_gate("ingest", gate_tables(res.kept, res.report, cfg.max_prompts_per_user, gate_detector),
                    part="outputs")
    assert gate.success


# European numbering formats (issue 22), found with the default config (no phone_regions): a
# country code and digit groups, national numbers after the trunk 0, extensions, and the formats
# without a trunk 0 after a phone word.
EUROPEAN_PHONES = {
    "FR": [("Appelle-moi au +33 6 12 34 56 78 ce soir", "+33 6 12 34 56 78"),
           ("mon portable : 06 12 34 56 78", "06 12 34 56 78"),
           ("rappelez le 01.42.68.53.00 demain", "01.42.68.53.00"),
           ("depuis l'étranger : 0033 1 42 68 53 00", "0033 1 42 68 53 00")],
    "DE": [("Ruf mich an: +49 30 1234567", "+49 30 1234567"),
           ("Telefon 030 1234567, danke", "030 1234567"),
           ("Büro (030) 123 456 78", "(030) 123 456 78"),
           ("Handy 0151 23456789", "0151 23456789"),
           ("Durchwahl 030/1234567-89", "030/1234567-89"),
           ("erreichbar unter +49 (0)89 12345678", "+49 (0)89 12345678")],
    "GB": [("ring 0044 20 7946 0958 tonight", "0044 20 7946 0958"),
           ("call 020 7946 0958 please", "020 7946 0958"),
           ("my mobile is 07700 900123", "07700 900123"),
           ("office +44 20 7946 0958 ext. 12", "+44 20 7946 0958 ext. 12"),
           ("desk: +44 (0)20 7946 0958 x 345", "+44 (0)20 7946 0958 x 345")],
    "IT": [("chiamami al +39 347 123 4567", "+39 347 123 4567"),
           ("ufficio 06 1234 5678", "06 1234 5678"),
           ("il mio cellulare è 347 1234567", "347 1234567"),
           ("numero fisso 02 12345678", "02 12345678")],
    "ES": [("Llámame al +34 612 345 678", "+34 612 345 678"),
           ("mi móvil es 612 34 56 78", "612 34 56 78"),
           ("teléfono 91 123 45 67", "91 123 45 67")],
    "NL": [("bel me op +31 6 12345678", "+31 6 12345678"),
           ("mijn nummer is 06-12345678", "06-12345678"),
           ("kantoor 020-123 4567", "020-123 4567")],
    "CH": [("ruf an: +41 79 123 45 67", "+41 79 123 45 67"),
           ("Tel. 044 668 18 00", "044 668 18 00")],
    "BE": [("bel +32 470 12 34 56", "+32 470 12 34 56"),
           ("mon numéro: 02 123 45 67", "02 123 45 67"),
           ("gsm 0470 12 34 56", "0470 12 34 56")],
    "PL": [("zadzwoń +48 512 345 678", "+48 512 345 678"),
           ("mój numer to 512-345-678", "512-345-678"),
           ("telefon 22 123 45 67", "22 123 45 67")],
    "SE": [("ring mig på +46 70 123 45 67", "+46 70 123 45 67"),
           ("mitt nummer är 070-123 45 67", "070-123 45 67"),
           ("kontor 08-123 456 78", "08-123 456 78")],
    "AT": [("Handy +43 664 1234567", "+43 664 1234567")],
    "IE": [("text me on +353 87 123 4567", "+353 87 123 4567")],
    "PT": [("liga para +351 912 345 678", "+351 912 345 678")],
}

# Numbers in prompts that are no phone number: years, amounts, counts, dates and times, versions.
PLAIN_NUMBERS = [
    "The population grew from 1 250 000 to 1 310 000 between 2019 and 2023.",
    "It costs 1.299.000 EUR, or 1 299 000 euros in total.",
    "The 2024 budget is 1 234 567 890 EUR.",
    "Upgrade from version 0.12.34 to 0.13.1 today.",
    "Wir treffen uns am 05.06.2023 um 14.30 Uhr.",
    "Rendez-vous le 05/06/2023 à 14:30, salle 0.12.",
    "between 10:30 and 12:45 on 01/02/2023",
    "The invoice 2023-0456-789 is due next week.",
    "Order 0012345 shipped on 2023-05-06.",
    "ISBN 978-3-16-148410-0 is the book.",
    "Take 0.5 mg twice a day with 250 ml of water.",
    "The coordinates are 48.8566, 2.3522 in Paris 75008.",
    "Python 3.11.4 and numpy 1.26.0 on build 0.9.12.3",
    "Sales: +12 % in Q1 2024, +8 % in Q2 2024.",
    "The years 1989 1990 1991 and 2001 2002 2003 were listed.",
    "Prices: 612 345 678 units sold, revenue 512 345 678 dollars.",
]


@pytest.mark.parametrize("country", sorted(EUROPEAN_PHONES))
def test_european_phone_formats_per_country(detector, country):
    for text, value in EUROPEAN_PHONES[country]:
        assert ("PHONE", value) in _found(detector, text), (text, _found(detector, text))
        assert detector.find_many([text]) == [detector.find(text)]  # the pre-filter lets it through


def test_european_phone_redacted_with_its_extension(tmp_path):
    cfg = IngestConfig()
    cfg.pii.mode = "redact"
    rows = [row("p1", text="office +44 20 7946 0958 ext. 12, or 030/1234567-89")]
    res = ingest(write_jsonl(tmp_path / "prompts.jsonl", rows), cfg, progress=False)
    assert res.kept["text"].tolist() == ["office <PHONE>, or <PHONE>"]


@pytest.mark.parametrize("text", PLAIN_NUMBERS + NEGATIVE + LOOKALIKES)
def test_plain_numbers_are_no_phone(detector, text):
    assert [s for s in detector.find(text) if s.type == "PHONE"] == [], _found(detector, text)
