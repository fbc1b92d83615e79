"""Typed config of the ingest stage (params.yaml section `ingest`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from instructgpt.config import ConfigError

# The PII types the detector knows, named as in the simulated world's pii_spans.jsonl
# (IBAN, checksum-validated by Presidio, is not among the world's types).
PII_TYPES: tuple[str, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "SSN",
    "IP_ADDRESS",
    "STREET_ADDRESS",
    "PERSON",
    "IBAN",
)
PII_MODES = ("drop", "redact")

# The prompt log's fields (docs/ARCHITECTURE.md). A log names its columns as it likes:
# `ingest.columns` maps each field to its column.
REQUIRED_FIELDS: tuple[str, ...] = ("prompt_id", "user_id", "text")
OPTIONAL_DEFAULTS: dict[str, str] = {
    "timestamp": "1970-01-01T00:00:00Z",  # unknown time: the log's order decides "earliest"
    "source": "api",  # a prompt log is API traffic unless it says a labeler wrote the prompt
    "style": "plain",
}
LOG_FIELDS: tuple[str, ...] = (*REQUIRED_FIELDS, *OPTIONAL_DEFAULTS)
ASSIGN_MODES = ("share", "labels")


@dataclass
class PiiConfig:
    """How PII is found and what happens to a prompt that holds some."""

    mode: str = "drop"
    """'drop': the prompt goes to quarantine (paper 3.2); 'redact': each span becomes <TYPE>."""
    types: list[str] = field(default_factory=lambda: list(PII_TYPES))
    """PII types to look for; a subset of EMAIL, PHONE, CREDIT_CARD, SSN, IP_ADDRESS,
    STREET_ADDRESS, PERSON, IBAN."""
    score_threshold: float = 0.3
    """Presidio results below this score are ignored (0.3 drops its 'very weak' bare 9-digit SSN)."""
    phone_regions: list[str] = field(default_factory=list)
    """Regions (e.g. ['GB', 'DE']) for Presidio's python-phonenumbers recognizer, which finds
    international formats valid in those numbering plans; each region is one more (slow) pass
    over every candidate. North-American and European formats (country code and digit groups,
    national numbers after the trunk 0, extensions) are always found by pattern."""
    prefilter: bool = True
    """Send only prompts that match a cheap regex to Presidio (off: every prompt; for benchmarks)."""

    def __post_init__(self) -> None:
        if self.mode not in PII_MODES:
            raise ConfigError(f"ingest.pii.mode: {self.mode!r} is not one of {list(PII_MODES)}")
        unknown = sorted(set(self.types) - set(PII_TYPES))
        if unknown:
            raise ConfigError(
                f"ingest.pii.types: unknown type(s) {unknown}; choose from {list(PII_TYPES)}"
            )
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"ingest.pii.score_threshold: {self.score_threshold} must be in [0, 1]")


@dataclass
class SplitConfig:
    """Train / valid / test split by a stable hash of the user id (paper 3.2)."""

    train: float = 0.8
    """Share of users (not prompts) in train."""
    valid: float = 0.1
    """Share of users in valid."""
    test: float = 0.1
    """Share of users in test."""
    salt: str = "instructgpt-split-v1"
    """Mixed into the hash; changing it reshuffles every user, so change it never for a live log."""

    def __post_init__(self) -> None:
        shares = (self.train, self.valid, self.test)
        if min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-9:
            raise ConfigError(
                f"ingest.split: train/valid/test = {shares} must be >= 0 and sum to 1"
            )


@dataclass
class DatasetConfig:
    """Which of the SFT, RM and PPO datasets each kept prompt goes to (paper 3.2, Table 6: about
    13k / 33k / 31k prompts).

    `assign: share` (the default): every prompt by the shares below. Labeler-written prompts go
    only to SFT and RM; PPO takes API prompts only, so API prompts go to PPO with the probability
    that makes the overall PPO share equal `ppo` (capped at 1 when there are too few API prompts).

    `assign: labels` (your own labelers): the labels people already gave decide first, the shares
    only for the rest. A prompt with a demonstration (`inputs.demonstrations`) goes to SFT; one
    with a human ranking (prompt ids in the files of `inputs.rankings` when `label.labelers:
    human`) to RM; one with both to SFT (the label stage may still use its ranking); every other
    prompt by the shares as above. Shares may then be 0: `{sft: 0, rm: 0, ppo: 1}` sends every
    unlabeled API prompt to PPO; an unlabeled labeler-written prompt, which PPO does not take,
    then goes to RM. The ingest report counts the prompts per reason (`assigned_by_reason`)."""

    assign: str = "share"
    """'share' (by the shares below) or 'labels' (demonstrations -> SFT, rankings -> RM, the
    rest by the shares)."""
    sft: float = 0.17
    """Share of kept prompts in SFT (with assign: labels, of the prompts no label placed)."""
    rm: float = 0.43
    """Share of kept prompts in RM (with assign: labels, of the prompts no label placed)."""
    ppo: float = 0.40
    """Share of kept prompts in PPO, API prompts only (with assign: labels, of the prompts no
    label placed)."""
    salt: str = "instructgpt-datasets-v1"
    """Mixed into the per-prompt hash that assigns datasets."""

    def __post_init__(self) -> None:
        if self.assign not in ASSIGN_MODES:
            raise ConfigError(f"ingest.datasets.assign: {self.assign!r} is not one of {list(ASSIGN_MODES)}")
        shares = (self.sft, self.rm, self.ppo)
        if any(s != s for s in shares) or min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-9:
            raise ConfigError(f"ingest.datasets: sft/rm/ppo = {shares} must be >= 0 and sum to 1")
        if self.assign == "share" and self.sft + self.rm <= 0:
            raise ConfigError(
                "ingest.datasets: sft + rm must be > 0 with assign: share (labeler prompts and the "
                "SFT and RM datasets need them); with assign: labels, shares of 0 send only the "
                "unlabeled prompts elsewhere"
            )


@dataclass
class IngestConfig:
    """The ingest stage: schema, PII, dedup, per-user cap, split, datasets (paper 3.2)."""

    columns: dict[str, str] = field(default_factory=dict)
    """The log's column name for each field, e.g. {prompt_id: request_id, user_id: account,
    text: input, timestamp: created_at}; a field left out is looked up under its own name.
    Required: prompt_id, user_id, text. Optional, with a default when the log has no such
    column: timestamp (1970-01-01T00:00:00Z: the log's order then decides which duplicate is
    kept, and the per-user cap keeps the smallest prompt ids), source ('api'), style ('plain').
    Map an optional field to null to give every row its default. A column named here (or a
    required field's own name) that a partition lacks stops the stage with an error naming the
    file and the column; a row whose value is missing or null is quarantined as
    missing_field:<field> with its file:line. Other columns are ignored."""
    max_text_chars: int = 4000
    """Longer texts are quarantined as 'too_long'."""
    dedup_prefix_chars: int = 128
    """Prompts whose normalised text (NFKC, casefolded, whitespace collapsed) shares its first
    N characters are duplicates (paper 3.2: "long common prefix"); the copy with a demonstration
    or a human ranking is kept, else the earliest (the report's `labels` says where each labeled
    prompt went).
    Measured on the simulated world's log: N = 64 also removes 25 % of the original prompts
    that are not exact copies (shared instructions and few-shot headers), N = 128 about 5 %,
    while every resubmission (edited at its end) is still caught."""
    dedup_min_chars: int = 16
    """A normalised prompt shorter than N is a duplicate of a later prompt that starts with
    it when it has at least this many chars (a short prompt resubmitted with " please"
    appended); shorter ones only of exact copies, so that "write" does not swallow every
    prompt that starts with it."""
    max_prompts_per_user: int = 200
    """Per-user cap (paper 3.2); the earliest prompts by (timestamp, prompt_id) are kept."""
    limit_rows: int | None = None
    """Read only the first N input lines (tiny profile), counted over the partitions in their
    order; lines after N are not read and are not counted in rows_in."""
    seed: int = 0
    """Reserved for random choices; every rule here is a deterministic function of the data
    and the salts, so the output does not depend on it."""
    pii: PiiConfig = field(default_factory=PiiConfig)
    """PII detection and handling."""
    split: SplitConfig = field(default_factory=SplitConfig)
    """Train / valid / test by user."""
    datasets: DatasetConfig = field(default_factory=DatasetConfig)
    """SFT / RM / PPO shares."""

    def __post_init__(self) -> None:
        if self.max_text_chars < 1:
            raise ConfigError(f"ingest.max_text_chars: {self.max_text_chars} must be >= 1")
        if self.dedup_prefix_chars < 1:
            raise ConfigError(f"ingest.dedup_prefix_chars: {self.dedup_prefix_chars} must be >= 1")
        if not 1 <= self.dedup_min_chars <= self.dedup_prefix_chars:
            raise ConfigError(
                f"ingest.dedup_min_chars: {self.dedup_min_chars} must be in [1, dedup_prefix_chars]"
            )
        if self.max_prompts_per_user < 1:
            raise ConfigError(
                f"ingest.max_prompts_per_user: {self.max_prompts_per_user} must be >= 1"
            )
        if self.limit_rows is not None and self.limit_rows < 0:
            raise ConfigError(f"ingest.limit_rows: {self.limit_rows} must be >= 0 or null")
        self._check_columns()

    def _check_columns(self) -> None:
        if not isinstance(self.columns, dict):
            raise ConfigError(
                f"ingest.columns: {self.columns!r} must map fields to column names, e.g. "
                "{prompt_id: request_id, text: input}"
            )
        unknown = sorted(set(self.columns) - set(LOG_FIELDS))
        if unknown:
            raise ConfigError(f"ingest.columns: unknown field(s) {unknown}; the fields are {list(LOG_FIELDS)}")
        for name, column in self.columns.items():
            if column is None and name in OPTIONAL_DEFAULTS:
                continue
            if not isinstance(column, str) or not column:
                what = "a column name" + (" or null (default)" if name in OPTIONAL_DEFAULTS else "")
                raise ConfigError(f"ingest.columns.{name}: {column!r} must be {what}")
        named = [self.column(f) for f in LOG_FIELDS if self.column(f) is not None]
        twice = sorted({c for c in named if named.count(c) > 1})
        if twice:
            raise ConfigError(f"ingest.columns: column(s) {twice} stand for more than one field")

    def column(self, name: str) -> str | None:
        """The log's column for field ``name`` (None: an optional field that takes its default)."""
        return self.columns.get(name, name)
