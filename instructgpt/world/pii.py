"""Personally identifiable information that API users paste into prompts.

Each generator returns the value; `pii_sentence` wraps it in a sentence and reports the
value's character span, which the log writer shifts to prompt offsets. The spans go to
`world/pii_spans.jsonl` (gold for tests and benchmarks only; the pipeline never reads it).
"""
from __future__ import annotations

import random

PII_TYPES: tuple[str, ...] = (
    "EMAIL", "PHONE", "CREDIT_CARD", "SSN", "IP_ADDRESS", "STREET_ADDRESS", "PERSON",
)
# Frequency of each type among PII mentions (names and emails are what people paste most).
PII_MIX: dict[str, float] = {
    "PERSON": 0.26, "EMAIL": 0.2, "PHONE": 0.16, "STREET_ADDRESS": 0.12, "CREDIT_CARD": 0.08,
    "SSN": 0.06, "IP_ADDRESS": 0.12,
}
FIRST: tuple[str, ...] = (
    "anna", "tom", "maria", "james", "sofia", "david", "laura", "peter", "olga", "kevin",
    "sarah", "ahmed", "julia", "marco", "elena", "brian", "chloe", "daniel", "fatima", "lucas",
)
SURNAMES: tuple[str, ...] = (
    "smith", "jones", "garcia", "miller", "nguyen", "kowalski", "okafor", "schmidt", "rossi",
    "tanaka", "patel", "murphy", "larsen", "novak", "silva", "cohen", "dubois", "ivanova",
)
_DOMAINS = ("mail.com", "post.net", "inbox.org", "webmail.co", "example.com")
_STREETS = ("oak", "pine", "mill", "river", "church", "high", "main", "park", "lake", "elm")
_SUFFIX = ("street", "road", "lane", "avenue", "drive")
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "PERSON": ("my name is {v} .", "this is for my friend {v} .", "please send it to {v} .",
               "my boss {v} asked me to do this ."),
    "EMAIL": ("my email is {v} .", "write to me at {v} .", "send the answer to {v} ."),
    "PHONE": ("call me at {v} .", "my phone number is {v} .", "text me on {v} ."),
    "CREDIT_CARD": ("my card number is {v} .", "charge it to card {v} ."),
    "SSN": ("my ssn is {v} .", "my social security number is {v} ."),
    "IP_ADDRESS": ("my server ip is {v} .", "the request came from {v} ."),
    "STREET_ADDRESS": ("i live at {v} .", "send it to {v} .", "our shop is at {v} ."),
}


def luhn_digit(digits: str) -> str:
    """Check digit that makes `digits + check` pass the Luhn test (valid card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = "".join(ch for ch in number if ch.isdigit())
    return len(digits) > 1 and luhn_digit(digits[:-1]) == digits[-1]


def _value(kind: str, rng: random.Random) -> str:
    r = rng.randrange
    if kind == "PERSON":
        return f"{rng.choice(FIRST)} {rng.choice(SURNAMES)}"
    if kind == "EMAIL":
        sep = rng.choice((".", "_", ""))
        return f"{rng.choice(FIRST)}{sep}{rng.choice(SURNAMES)}{r(100)}@{rng.choice(_DOMAINS)}"
    if kind == "PHONE":
        a, b, c = r(200, 999), r(100, 999), r(10000)
        return rng.choice((f"{a}-{b}-{c:04d}", f"({a}) {b}-{c:04d}", f"+1 {a} {b} {c:04d}"))
    if kind == "CREDIT_CARD":
        body = rng.choice("45") + "".join(str(r(10)) for _ in range(14))
        num = body + luhn_digit(body)
        sep = rng.choice((" ", "-", ""))
        return sep.join(num[i:i + 4] for i in range(0, 16, 4))
    if kind == "SSN":
        area = r(1, 899)
        area = 667 if area == 666 else area
        return f"{area:03d}-{r(1, 100):02d}-{r(1, 10000):04d}"
    if kind == "IP_ADDRESS":
        return f"{r(1, 224)}.{r(256)}.{r(256)}.{r(1, 255)}"
    if kind == "STREET_ADDRESS":
        return f"{r(1, 300)} {rng.choice(_STREETS)} {rng.choice(_SUFFIX)}"
    raise ValueError(f"unknown PII type {kind!r}")


def pii_sentence(kind: str, rng: random.Random) -> tuple[str, int, int, str]:
    """(sentence, start, end, value): the value sits at sentence[start:end]."""
    template = rng.choice(_TEMPLATES[kind])
    value = _value(kind, rng)
    start = template.index("{v}")
    return template.replace("{v}", value), start, start + len(value), value


# Adversarial renderings: the same value as a reader sees it, other code points. Real logs
# hold them (IME full-width input, text pasted from PDFs and chat apps); the ingest filter
# must find them as it finds the ASCII value (bench/ingest.py, tests/ingest).
_INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
_SPACES = ("\u00a0", "\u202f", "\u2007", "\u3000")
_DASHES = ("\u2010", "\u2011", "\u2013", "\u2212", "\uff0d")
_DIGIT_ZEROS = (0xFF10, 0x0660, 0x06F0, 0x0966)  # full-width, Arabic-Indic, Persian, Devanagari


def _fullwidth(value: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in value)


def _invisible(value: str, rng: random.Random) -> str:
    chars = list(value)
    for _ in range(rng.randint(1, 3)):
        chars.insert(rng.randint(1, max(1, len(chars) - 1)), rng.choice(_INVISIBLE))
    return "".join(chars)


def _separators(value: str, rng: random.Random) -> str:
    return "".join(rng.choice(_SPACES) if c == " " else rng.choice(_DASHES) if c == "-" else c for c in value)


def _digits(value: str, rng: random.Random) -> str:
    zero = rng.choice(_DIGIT_ZEROS)
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in value)


ADVERSARIAL = {"fullwidth": _fullwidth, "invisible": _invisible, "separators": _separators, "digits": _digits}


def adversarial(value: str, rng: random.Random) -> str:
    """`value` rewritten with one or two of ADVERSARIAL's renderings (full-width forms,
    invisible characters inside, Unicode spaces and dashes, non-ASCII digits)."""
    for name in rng.sample(sorted(ADVERSARIAL), rng.randint(1, 2)):
        value = ADVERSARIAL[name](value, rng)
    return value


_LOOKALIKES = (
    "update the driver to version {a}.{b}.{c}.{d} first .",
    "the release notes for build {a}.{b}.{c}.{d} mention it .",
    "see section {a}.{b}.{c}.{d} of the spec .",
    "the oid {a}.{b}.{c}.{d}.{e}.{f} names the vendor branch .",
    "windows version 10.0.{big}.{d} shows the bug .",
    "use the test card 4242 4242 4242 4242 in the sandbox .",
    "the docs list 4111 1111 1111 1111 as a test visa number .",
    "the placeholder ssn 078-05-1120 appears in old ads .",
    "siehe abschnitt {a}.{b}.{c}.{d} der norm .",
    "voir la section {a}.{b}.{c}.{d} du manuel .",
    "actualiza a la versión {a}.{b}.{c}.{d} antes .",
)


def lookalike_sentence(rng: random.Random) -> str:
    """A sentence with a number that looks like PII but is not (versions, sections, OIDs,
    published test numbers): the false positives the ingest filter must not make."""
    r = rng.randrange
    return rng.choice(_LOOKALIKES).format(a=r(1, 20), b=r(10), c=r(10), d=r(1, 30), e=r(1, 10),
                                          f=r(1, 10), big=r(10000, 30000))
