"""Context words that decide what a pattern alone gets wrong (used by the recognizers, so the
filter and every gate decide alike). Looked up in the detection view (normalise.py).

Rule 1, ownership wins over the checksum. A number the user presents as their own ("my card
number is ...", "meine Kreditkarte ...", "mon numéro de sécurité sociale ...", "mi tarjeta
...") is PII even when its checksum fails or it is a published test/invalid number: a typo
of a real number is still nearly all of it, and whether a number is a test one is not the
user's claim. Without such words, a card must pass Luhn and not be a published test number,
and an SSN must pass Presidio's range rules (no 000/666 area, no 00 group, not 078-05-1120,
123-45-6789, ...), as before.

Rule 2, technical look-alikes are not PII. A dotted number right after a version or section
word ("v", "version", "build", "release", "rev", "section", "§", "chapter", "OID", "firmware",
and their German, French and Spanish forms), or one that is part of a longer dotted numeric
sequence (OIDs such as 1.3.6.1.4.1, version 10.0.19041.1), is not an IP address or a
dot-separated phone number. The same digits after anything else ("my server ip is 10.1.2.3")
stay PII.
"""

from __future__ import annotations

import re

_POSSESSIVE = (
    r"my|our|mine"  # en
    r"|mein|meine|meiner|meines|meinem|meinen|unser|unsere|unserer"  # de
    r"|ma|mon|mes|notre|nos"  # fr
    r"|mi|mis|nuestra|nuestro|nuestras|nuestros"  # es
)
_NOUNS = {
    "CREDIT_CARD": (
        r"card|credit[ -]?card|debit[ -]?card|cc|visa|mastercard|amex|pan"
        r"|karte|kreditkarte|kreditkartennummer|kartennummer|bankkarte|ec-karte"
        r"|carte|cb"
        r"|tarjeta"
    ),
    "SSN": (
        r"ssn|social[ -]security(?:[ -]number)?|social|ss[ -]?#"
        r"|sozialversicherungsnummer|sv-nummer|versicherungsnummer"
        r"|s[ée]curit[ée][ -]sociale|nss|nir"
        r"|seguro[ -]social"
    ),
}
# possessive, up to 3 words, the type noun, up to 4 words (is, number, no., de, ist, es ...),
# then separators: all of it must end right where the number starts.
_OWNED = {
    kind: re.compile(
        rf"\b(?:{_POSSESSIVE})\s+(?:[\w-]+\s+){{0,3}}?(?:{nouns})(?![\w])"
        rf"(?:\s*[\w.'-]+){{0,4}}?[\s:#=(-]*$",
        re.IGNORECASE,
    )
    for kind, nouns in _NOUNS.items()
}
_WINDOW = 80  # characters before the number that may hold the ownership phrase

_TECH_WORDS = (
    r"v|ver|vers|version|versi[óo]n|build|release|rel|rev|revision|r[ée]vision|firmware|fw"
    r"|section|sect|sec|§|§§|chapter|chap|ch|oid|rfc|iso"
    r"|abschnitt|kapitel|ausgabe"  # de
    r"|chapitre|édition"  # fr
    r"|secci[óo]n|cap[íi]tulo|apartado"  # es
)
_TECH_BEFORE = re.compile(rf"(?<!\w)(?:{_TECH_WORDS})\.?\s*[:#]?\s*$", re.IGNORECASE)
_DOTTED_BEFORE = re.compile(r"\d\.$")
_DOTTED_AFTER = re.compile(r"^\.\d")

# Published test card numbers (Stripe, Braintree, Adyen, PayPal sandboxes and the card
# networks' documentation): Luhn-valid, but nobody's card unless the user says it is theirs.
TEST_CARDS = frozenset("""
4111111111111111 4242424242424242 4012888888881881 4222222222222 4000056655665556
4000002500003155 4000000000003220 4005519200000004 4009348888881881 4012000033330026
4012000077777777 4217651111111119 4500600000000061 4444333322221111 4917610000000000
5555555555554444 5105105105105100 5200828282828210 2223003122003222 2223000048400011
5454545454545454 5425233430109903 5111111111111118
378282246310005 371449635398431 378734493671000 340000000000009 370000000000002
6011111111111117 6011000990139424 6011000400000000 6011601160116611
3530111333300000 3566002020360505 3566111111111113
30569309025904 38520000023237 36227206271667 6200000000000005 6759649826438453
""".split())


def asserted_ownership(text: str, start: int, kind: str) -> bool:
    """Whether the words right before text[start:] present the number as the user's own
    `kind` ("CREDIT_CARD" or "SSN")."""
    return _OWNED[kind].search(text[max(0, start - _WINDOW) : start]) is not None


def technical_number(text: str, start: int, end: int) -> bool:
    """Whether the dotted number text[start:end] reads as a version, section or OID."""
    if _DOTTED_BEFORE.search(text[max(0, start - 2) : start]) or _DOTTED_AFTER.match(text[end : end + 2]):
        return True
    return _TECH_BEFORE.search(text[max(0, start - 16) : start]) is not None
