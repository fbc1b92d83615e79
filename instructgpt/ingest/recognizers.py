"""Presidio recognizers that Presidio lacks or that would reach the network.

- `OfflineEmailRecognizer`: Presidio's email pattern, validated with a tldextract that reads
  only its bundled public-suffix snapshot (the stock one fetches the list at first use).
- `PersonRecognizer`: person names without NER: a capitalised name after a context phrase
  ("my name is", "contact", "Dear", ...), a lexicon first name + a lexicon or capitalised
  surname, or (lowercase text) a lexicon first name + a word after a context phrase. A single
  lowercase first name is not flagged ("tom and the fox" is a story, not PII).
- `StreetAddressRecognizer`: house number + street name + street suffix, with optional unit,
  city, state and ZIP.
- `FastIpRecognizer`: Presidio's IP recognizer, cheaper, with the context rules of context.py
  (versions, sections and OIDs are not IPs).
- Phones, cards and SSNs (formats wider than Presidio's, and the same context rules):
  `instructgpt.ingest.numbers`.

Every recognizer sees the detection view of the text (normalise.py), never the raw text.

The same building blocks give the RE2-compatible pre-filter patterns in `PREFILTER`, so that a
prompt the pre-filter passes over can never hold a match of these recognizers.
"""

from __future__ import annotations

import re

import regex
import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IpRecognizer

from instructgpt.ingest.context import technical_number

# No URLs: never fetch; the bundled snapshot is the fallback; no disk cache to write.
_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with an offline public-suffix check."""

    def validate_result(self, pattern_text: str) -> bool:  # noqa: D102
        return _TLD(pattern_text).fqdn != ""


# Common first names and surnames across cultures, without everyday English words ("may",
# "will", "grace", "mark", "young", "white"), so they can be matched case-insensitively.
FIRST_NAMES = """
james john robert michael william david richard joseph thomas charles christopher daniel
matthew anthony donald steven paul andrew joshua kenneth kevin brian george timothy ronald
edward jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott
brandon benjamin samuel gregory alexander frank patrick raymond dennis jerry tyler aaron
jose adam nathan henry douglas zachary peter kyle ethan walter noah jeremy christian keith
roger terry austin sean gerald carl harold dylan arthur lawrence jordan jesse bryan billy
bruce gabriel joe logan alan juan albert willie elijah wayne randy vincent liam roy ralph
eugene russell bobby mason philip louis mary patricia jennifer linda elizabeth barbara susan
jessica sarah karen lisa nancy betty sandra margaret ashley kimberly emily donna michelle
carol amanda melissa deborah stephanie dorothy rebecca sharon laura cynthia amy kathleen
angela shirley brenda emma anna pamela nicole samantha katherine christine helen debra rachel
carolyn janet maria catherine heather diane olivia julie joyce victoria ruth virginia lauren
kelly christina joan evelyn judith andrea hannah megan cheryl jacqueline martha madison
teresa gloria sara janice ann kathryn abigail sophia sofia frances jean alice judy isabella
julia beverly denise marilyn amber danielle brittany diana natalie sophie charlotte marie
kayla alexis lori ava mia chloe zoe lucas oliver elena carlos luis miguel ahmed mohammed
muhammad wei priya raj yuki hiroshi fatima aisha omar ivan dmitri olga natasha sven lars
anders pierre hans giulia marco luca tom tim ben sam max leo finn emil ella lily isla nora
hugo milo owen luke ruby rosa hana kenji mei ali hassan leila nadia ana pablo diego lucia
""".split()
SURNAMES = """
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez
gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson harris
sanchez clark ramirez lewis robinson walker allen king wright scott torres nguyen hill
flores adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans
turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers
gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson
watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo
sanders patel myers long ross foster jimenez schmidt schneider fischer weber meyer wagner
becker schulz hoffmann muller rossi russo ferrari esposito bianchi romano colombo ricci
dubois durand leroy moreau laurent lefebvre bernard petit kowalski nowak wisniewski
wojcik novak svoboda dvorak ivanov ivanova petrov petrova smirnov smirnova popov kuznetsov
larsen hansen jensen nielsen andersen pedersen olsen johansson andersson karlsson nilsson
tanaka suzuki takahashi watanabe yamamoto nakamura sato kobayashi chen wang zhang liu yang
huang zhao wu zhou singh kumar sharma gupta shah khan ali ahmed hussain okafor okonkwo
adeyemi mensah silva santos oliveira souza costa pereira almeida ferreira cohen levi
mizrahi friedman katz murray byrne ryan oconnor walsh obrien
""".split()

_STOP = (
    "the|a|an|and|or|but|of|to|in|on|at|for|with|by|from|about|as|is|are|was|were|be|been|it|"
    "its|this|that|these|those|i|me|my|you|your|he|him|his|she|her|we|us|our|they|them|their|"
    "what|which|who|when|where|why|how|if|so|not|no|yes|please|thanks|thank|today|tomorrow|"
    "here|there|all|some|any|one|two|three|four|five|can|could|would|should|will|do|does|did|"
    "have|has|had|asked|said|wants|needs|will|just|also|very|too|again|now|ok"
)
_WORD = rf"(?!(?:{_STOP})\b)[a-z][a-z'-]+"  # a lowercase word that is not a function word
_NAME = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
# Capitalised words that follow context phrases but are not names.
_NOT_NAME = (
    r"(?!(?:The|A|An|I|Me|My|Your|Our|This|That|These|Those|It|He|She|We|They|You|Us|Him|Her|"
    r"Them|Mom|Dad|Sir|Madam|Team|All|Everyone|Support|Customer|Service|Sales|There|Here|"
    r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|March|April|"
    r"June|July|August|September|October|November|December|Today|Tomorrow|Please|Thanks|"
    r"Thank|Hello|Hi|World|Yes|No|Not|What|When|Where|Why|How|Who|Which|If|And|Or|But|So)\b)"
)
_FULL_NAME = rf"{_NOT_NAME}{_NAME}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{_NOT_NAME}{_NAME}){{0,2}}"
# Phrases after which a name is likely; the `regex` module allows the variable-width
# lookbehind that keeps them out of the span.
_CONTEXT = (
    r"my name is|my name's|name is|name:|i am|i'm|call me|contact|ask|email|e-mail|"
    r"tell|dear|hi|hello|hey|regards,|sincerely,|thanks,|cheers,|signed|named|called|"
    r"mr\.?|mrs\.?|ms\.?|dr\.?|prof\.?|meet|met|send it to|give it to|forward it to|"
    r"my (?:friend|colleague|boss|manager|neighbou?r|wife|husband|son|daughter|brother|"
    r"sister|mother|father|partner|teacher|doctor|client|landlord|coworker)"
)
# Strong context: whatever two words follow are a name ("my name is zara quimby").
_STRONG = r"my name is|my name's|name:|call me|signed"
_FIRST = "|".join(FIRST_NAMES)
_LAST = "|".join(SURNAMES)


_FIRST_SET = frozenset(FIRST_NAMES)
_LAST_SET = frozenset(SURNAMES)
_STOP_SET = frozenset(_STOP.split("|"))
_NOT_NAME_SET = frozenset(_NOT_NAME[6:-4].split("|"))  # the words of the lookahead above
_CONTEXT_PHRASES = frozenset(
    """my name is|my name's|name is|name:|i am|i'm|call me|contact|ask|email|e-mail|tell|dear|
    hi|hello|hey|regards,|sincerely,|thanks,|cheers,|signed|named|called|mr|mr.|mrs|mrs.|ms|ms.|
    dr|dr.|prof|prof.|meet|met|send it to|give it to|forward it to""".replace("\n", "").replace("    ", "").split("|")
) | {f"my {w}" for w in (
    "friend colleague boss manager neighbor neighbour wife husband son daughter brother sister "
    "mother father partner teacher doctor client landlord coworker").split()}
_STRONG_PHRASES = frozenset(_STRONG.split("|"))
_CONTEXT_LAST = frozenset(p.rsplit(" ", 1)[-1] for p in _CONTEXT_PHRASES)  # last word of each
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*[.:,]?")


class PersonRecognizer(EntityRecognizer):
    """Names in context, without NER (see the module docstring). One pass over the words of
    the text with set look-ups: a regex with a 300-name alternation behind a variable-width
    lookbehind cost 0.8 ms per prompt, this about 30 us."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], supported_language="en", name="PersonRecognizer")

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        toks = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
        raw_lower = [t[2].lower() for t in toks]
        words = [t[2].rstrip(".:,") for t in toks]
        lower = [w.rstrip(".:,") for w in raw_lower]
        results, i, n = [], 0, len(toks)
        while i < n:
            span = self._name_at(text, toks, words, lower, raw_lower, i)
            if span is None:
                i += 1
                continue
            j, score = span  # the name is tokens i .. j-1
            end = toks[j - 1][0] + len(words[j - 1])
            results.append(RecognizerResult("PERSON", toks[i][0], end, score))
            i = j
        return results

    @staticmethod
    def _context_before(text, toks, raw_lower, i) -> str | None:
        """The context phrase (1-3 words, only spaces between) that ends right before token i."""
        if i == 0 or raw_lower[i - 1] not in _CONTEXT_LAST:  # no phrase can end there
            return None
        for k in (3, 2, 1):
            if i - k < 0:
                continue
            phrase = " ".join(raw_lower[i - k : i])
            if phrase in _CONTEXT_PHRASES and text[toks[i - 1][1] : toks[i][0]].strip(" \t") == "":
                return phrase
        return None

    def _name_at(self, text, toks, words, lower, raw_lower, i):
        w, lw = words[i], lower[i]
        if toks[i][2] != w and lw not in _FIRST_SET:  # "dear milo," -> punctuation ends the name
            pass
        nxt = i + 1 < len(toks) and text[toks[i][1] : toks[i + 1][0]] in (" ", "\t") and toks[i][2] == w
        w2, lw2 = (words[i + 1], lower[i + 1]) if nxt else ("", "")
        cap2 = nxt and w2[:1].isupper() and w2[1:].islower() and w2 not in _NOT_NAME_SET
        if lw in _FIRST_SET and nxt and (lw2 in _LAST_SET or cap2):
            return i + 2, 0.6
        ctx = self._context_before(text, toks, raw_lower, i)
        if ctx is None:
            return None
        if w[:1].isupper() and w[1:].islower() and w not in _NOT_NAME_SET:  # cased name
            j = i + 1
            while j < min(len(toks), i + 3) and text[toks[j - 1][1] : toks[j][0]] in (" ", "\t") \
                    and toks[j - 1][2] == words[j - 1] and words[j][:1].isupper() \
                    and words[j][1:].islower() and words[j] not in _NOT_NAME_SET:
                j += 1
            return j, 0.6
        plain2 = nxt and lw2 not in _STOP_SET and w2.isalpha() and w2.islower()
        if lw in _FIRST_SET and plain2:
            return i + 2, 0.5
        if ctx in _STRONG_PHRASES and lw not in _STOP_SET and w.isalpha():
            return (i + 2, 0.5) if plain2 else (i + 1, 0.5)
        return None


_SUFFIXES = (
    "street st avenue ave road rd boulevard blvd lane ln drive dr court ct place pl way "
    "terrace ter circle cir parkway pkwy highway hwy square sq trail trl alley crescent"
).split()
_SUFFIX = "(?i:" + "|".join(_SUFFIXES) + r")\b\.?"
_STREET_WORD = rf"(?!(?i:{_STOP})\b)[A-Za-z][A-Za-z'.-]*"
_STREET_CORE = (
    r"\b\d{1,6}(?:-\d{1,4})?[ \t]+(?:(?i:[nsew])\.?[ \t]+)?(?:" + _STREET_WORD + r"[ \t]+){1,3}" + _SUFFIX
)
_STREET_TAIL = (
    r"(?:,?[ \t]+(?i:apt|apartment|suite|ste|unit|#)\.?[ \t]*#?[A-Za-z0-9-]+)?"
    r"(?:,[ \t]*[A-Z][A-Za-z]+(?:[ \t]+[A-Z][A-Za-z]+){0,2}(?:,[ \t]*[A-Z]{2})?(?:[ \t]+\d{5}(?:-\d{4})?)?)?"
)


class FastIpRecognizer(IpRecognizer):
    """Presidio's IpRecognizer; a text without ':' runs only its IPv4 pattern (the other four
    patterns, IPv6 and IPv4-in-IPv6, cannot match without a ':'), a third of the cost."""

    def __init__(self) -> None:
        super().__init__(name="FastIpRecognizer")
        self._all = list(self.patterns)
        self._v4_only = [p for p in self._all if p.name == "IPv4"]
        assert len(self._v4_only) == 1 and all(":" in p.regex for p in self._all if p.name != "IPv4")

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        self.patterns = self._all if ":" in text else self._v4_only
        try:
            found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        finally:
            self.patterns = self._all
        return [r for r in found if ":" in text[r.start : r.end] or not technical_number(text, r.start, r.end)]


class StreetAddressRecognizer(PatternRecognizer):
    """House number, 1-3 street-name words, street suffix, optional unit / city / state / ZIP."""

    PATTERNS = [Pattern("street address", _STREET_CORE + _STREET_TAIL, 0.6)]

    def __init__(self) -> None:
        super().__init__(
            supported_entity="STREET_ADDRESS",
            patterns=self.PATTERNS,
            supported_language="en",
            global_regex_flags=regex.MULTILINE,
            name="StreetAddressRecognizer",
        )


# Pre-filter: per type, an RE2- and Python-compatible regex that matches every text in which
# that type's recognizers could match (a necessary condition, never the detector itself).
_DIGITS7 = r"\d(?:[ ().+/-]{0,3}\d){6}"  # phones, cards, SSNs all have >= 7 digits
_RE2_STREET = r"\d{1,6}[ \t]+(?:[A-Za-z'.-]+[ \t]+){1,4}(?i:" + "|".join(_SUFFIXES) + r")\b"
PREFILTER: dict[str, str] = {
    "EMAIL": r"@",
    "PHONE": _DIGITS7,
    "CREDIT_CARD": _DIGITS7,
    "SSN": _DIGITS7,
    "IP_ADDRESS": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f]",
    "STREET_ADDRESS": _RE2_STREET,
    "IBAN": r"[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2}",  # Presidio's IBAN pattern, case-sensitive
    "PERSON": (
        rf"(?i:\b(?:{_CONTEXT}))[ \t]+(?:[A-Z]|(?i:{_FIRST})\b)"
        rf"|(?i:\b(?:{_FIRST})[ \t]+(?:[a-z]\.[ \t]+)?(?:{_LAST})\b)"
        rf"|\b(?i:{_FIRST})[ \t]+(?:[A-Z]\.[ \t]+)?[A-Z]"
        rf"|(?i:\b(?:{_STRONG}))[ \t]+[a-z]"
    ),
}
