"""Phone, card and SSN recognizers: numbers by format, with the context rules of context.py.

- `NanpPhoneRecognizer`, `EuropeanPhoneRecognizer`: North-American and European numbering
  formats by pattern (wider than Presidio's, which accepts only numbers valid in the plan);
  `RegionPhoneRecognizer`: Presidio's own, with the same context rules;
- `LuhnCardRecognizer`: card numbers, and numbers the user says are their card;
- `OwnedSsnRecognizer`: SSNs, and numbers the user says are theirs (ownership wins over
  checksum and test-number lists; versions, sections and OIDs are not phones).

Like every recognizer of `instructgpt.ingest.recognizers`, they see the detection view of the
text (normalise.py), never the raw text.
"""

from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, PhoneRecognizer, UsSsnRecognizer

from instructgpt.ingest.context import TEST_CARDS, asserted_ownership, technical_number


class NanpPhoneRecognizer(PatternRecognizer):
    """North-American phone numbers by format: (415) 555-2671, 415-555-2671, +1 415 555 2671.
    Presidio's PhoneRecognizer (python-phonenumbers) accepts only numbers valid in the
    numbering plan, so it misses mistyped or made-up numbers that are still someone's PII."""

    PATTERNS = [
        Pattern(
            "nanp",
            r"(?<![\d-])(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])",
            0.5,
        )
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PHONE_NUMBER",
            patterns=self.PATTERNS,
            supported_language="en",
            name="NanpPhoneRecognizer",
        )

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        return _not_technical(text, super().analyze(text, entities, nlp_artifacts, regex_flags))


# European phone numbers by format (EuropeanPhoneRecognizer). A separator between digit groups:
# a space, or one of - . / with optional spaces around it.
_EU_SEP = r"(?:[ \t]?[-./][ \t]?|[ \t])"
# Country codes of Europe: 30-34, 36, 39, 40, 41, 43-49, 350-359, 370-389, 420-423.
_EU_CC = r"(?:3[0-469]|35\d|3[78]\d|4[01]|42[0-3]|4[3-9])"
_EU_EXT = r"(?:[ \t]*,?[ \t]*(?i:ext\.?|extension|x|poste|durchwahl|dw\.?|int\.?|interno)[ \t]*\d{1,5})"
_EU_INTERNATIONAL = (  # +33 6 12 34 56 78, 0044 20 7946 0958, +49 (0)89 12345678
    r"(?<![\w+])(?P<number>(?P<prefix>\+|00)[ \t]?(?P<cc>" + _EU_CC + r")(?P<trunk>[ \t]?\(0\))?"
    r"(?:" + _EU_SEP + r"?\(?\d{1,4}\)?)(?:" + _EU_SEP + r"\d{1,8}){0,5})"
    r"(?P<ext>" + _EU_EXT + r"|-\d{1,4})?(?![\d])"
)
_EU_TRUNK = (  # a national number after the trunk 0: 06 12 34 56 78, 030 1234567, (030) 123 456 78
    r"(?<![\w+.,/-]|\d[ \t])(?P<number>\(?0\d{1,4}\)?(?:" + _EU_SEP + r"\d{2,8}){1,4})"
    r"(?P<ext>" + _EU_EXT + r"|-\d{1,4})?(?![\d:])"
)
_EU_NO_TRUNK = (  # Spain, Poland, Italian mobiles: 612 34 56 78, 512-345-678, 91 123 45 67, 347 1234567
    r"(?<![\w+.,/-]|\d[ \t])(?P<number>[3-9]\d{2}(?:(?P<s>[ -])\d{3}(?P=s)\d{3}|[ ]\d{2}[ ]\d{2}[ ]\d{2}|[ ]\d{6,7})"
    r"|[1-9]\d[ ]\d{3}[ ]\d{2}[ ]\d{2})(?P<ext>)(?![\d.,:])"
)
_DATE = regex.compile(r"(?<!\d)\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d{2}(?!\d)")
_SSN_SHAPE = regex.compile(r"\d{3}-\d{2}-\d{4}")
# Words that say a number is a phone number, in the languages of the formats above.
_PHONE_WORDS = regex.compile(
    r"(?i:\b(?:phone|telephone|tel|call|ring|mobile|cell|number|whatsapp|sms|text me|fax"
    r"|tel[ée]fono|m[óo]vil|ll[áa]mame|llama|n[úu]mero|cellulare|chiamami|chiama|telefono|numero"
    r"|telefon|numer|kom[óo]rka|zadzwo[ńn]|dzwo[ńn]|nummer|handy|ruf|anrufen|bel|bellen|mobiel"
    r"|telefoon|appelle|appeler|portable|t[ée]l[ée]phone|num[ée]ro|gsm|mobil|mobilnummer)\b)"
)


class EuropeanPhoneRecognizer(EntityRecognizer):
    """European phone numbers by format, whatever the configured `phone_regions`: a European
    country code (+ or 00) and digit groups (+33 6 12 34 56 78, 0044 20 7946 0958, +49 (0)89
    12345678), a national number after the trunk 0 (06 12 34 56 78, 030 1234567, 020 7946 0958,
    070-123 45 67), each with an optional extension ("ext. 12", "x 345", "-89"), and the
    formats without a trunk 0 (Spain, Poland, Italian mobiles: 612 34 56 78, 512-345-678).

    Why by format: python-phonenumbers (RegionPhoneRecognizer) is one slow pass per region and
    only for the regions listed. What keeps plain numbers out: digit counts (6-12 after the
    country code, 9-12 with the trunk 0), no date inside (05.06.2023 14.30), no SSN shape, the
    look-alike rule for dotted numbers, and for the formats without a trunk 0, which amounts
    and counts also take (612 345 678 units), a phone word in the 40 characters before."""

    NO_TRUNK_WINDOW = 40

    def __init__(self) -> None:
        super().__init__(supported_entities=["PHONE_NUMBER"], supported_language="en",
                         name="EuropeanPhoneRecognizer")
        self._patterns = [(regex.compile(_EU_INTERNATIONAL), (6, 12), 0.6, False),
                          (regex.compile(_EU_TRUNK), (9, 12), 0.5, False),
                          (regex.compile(_EU_NO_TRUNK), (9, 10), 0.5, True)]

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        found = []
        for pattern, (low, high), score, needs_word in self._patterns:
            for m in pattern.finditer(text):
                number, parts = m.group("number"), m.groupdict()
                # the national significant number: without 00, the country code and a "(0)"
                digits = len(_digits(number)) - len(_digits((parts.get("prefix") or "") + (parts.get("cc") or "")
                                                            + (parts.get("trunk") or "")))
                if not low <= digits <= high or _DATE.search(number) or _SSN_SHAPE.fullmatch(number):
                    continue
                if needs_word and not _PHONE_WORDS.search(text[max(0, m.start() - self.NO_TRUNK_WINDOW) : m.start()]):
                    continue
                found.append(RecognizerResult("PHONE_NUMBER", m.start(), m.end(), score))
        return EntityRecognizer.remove_duplicates(_not_technical(text, found)) if found else found


class RegionPhoneRecognizer(PhoneRecognizer):
    """Presidio's python-phonenumbers recognizer (`phone_regions`) with the look-alike rule."""

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        return _not_technical(text, super().analyze(text, entities, nlp_artifacts))


def _not_technical(text: str, found: list[RecognizerResult]) -> list[RecognizerResult]:
    """Drop dot-separated phone matches that read as versions, sections or OIDs."""
    return [
        r for r in found
        if not ("." in text[r.start : r.end] and technical_number(text, r.start, r.end))
    ]


class LuhnCardRecognizer(CreditCardRecognizer):
    """Any 13-19 digit number (optionally grouped by spaces or dashes) that passes the Luhn
    checksum. Presidio's pattern accepts only some issuer prefixes (e.g. not 56xx-59xx)."""

    PATTERNS = [Pattern("luhn 13-19 digits", r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])", 0.3)]

    def __init__(self) -> None:
        super().__init__(patterns=self.PATTERNS, name="LuhnCardRecognizer")
        self._number = regex.compile(self.PATTERNS[0].regex)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        found = [
            r for r in super().analyze(text, entities, nlp_artifacts, regex_flags)
            if _digits(text[r.start : r.end]) not in TEST_CARDS or asserted_ownership(text, r.start, "CREDIT_CARD")
        ]
        return _add_owned(text, found, self._number, "CREDIT_CARD", self)


class OwnedSsnRecognizer(UsSsnRecognizer):
    """Presidio's US SSN recognizer, plus any SSN-shaped number (3-2-4 or 9 digits) the user
    presents as their own, whatever its range (context.py, rule 1)."""

    OWNED_PATTERN = r"\b(?:\d{3}([- .]?)\d{2}\1\d{4})\b"

    def __init__(self) -> None:
        super().__init__(name="OwnedSsnRecognizer")
        self._number = regex.compile(self.OWNED_PATTERN)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return _add_owned(text, found, self._number, "US_SSN", self)


OWNED_SCORE = 0.85
"""Score of a number kept only because the user says it is theirs (above any threshold a
pattern alone reaches for SSNs, below a checksum-validated card's 1.0)."""


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _add_owned(text, found, number, entity, recognizer) -> list[RecognizerResult]:
    """`found` plus the matches of `number` after an ownership phrase that `found` lacks."""
    have = {(r.start, r.end) for r in found if r.score >= OWNED_SCORE}
    kind = "CREDIT_CARD" if entity == "CREDIT_CARD" else "SSN"
    extra = [
        RecognizerResult(
            entity, m.start(), m.end(), OWNED_SCORE,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
            },
        )
        for m in number.finditer(text)
        if (m.start(), m.end()) not in have and asserted_ownership(text, m.start(), kind)
    ]
    return EntityRecognizer.remove_duplicates(found + extra) if extra else found
