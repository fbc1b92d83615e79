"""Configs of the stages that compose library parts: base, label, evaluate.

(ingest, sft, rm and ppo take their configs straight from the library: ``IngestConfig``,
``SFTConfig``, ``RewardConfig``, ``PPOConfig``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from instructgpt.config import ConfigError
from instructgpt.models import ModelConfig
from instructgpt.train.pretrain import PretrainConfig


@dataclass
class BaseConfig:
    """The ``base`` stage: a tokenizer and a causal LM "pretrained" on the corpus, or your own."""

    model_path: str | None = None
    """A local Hugging Face causal-LM directory to use instead of training one (then no training
    happens; the directory is copied to outputs/base/model). It must lie inside ``inputs.models``
    (what DVC tracks for this stage). Any ``AutoModelForCausalLM`` architecture, safetensors, no
    remote code; a tokenizer without a pad token gets one; a chat template in its tokenizer
    becomes the prompt format of every later stage (``instructgpt.text``). null: train on the
    corpus (``inputs.corpus``)."""
    vocab_size: int = 2048
    """Size of the byte-level BPE vocabulary trained on the corpus."""
    max_documents: int | None = None
    """Use only the first N corpus documents (the tiny profile); null: all."""
    heldout_fraction: float = 0.05
    """Share of corpus documents held out (by a stable hash of doc_id) to measure corpus loss and
    the alignment tax; never trained on, by base or by PPO-ptx."""
    nlp_task_items: int = 500
    """How many items of ``inputs.nlp_task`` to score (multiple choice by log-likelihood). With
    no items (0 here, or ``inputs.nlp_task: none``) the accuracy is absent, with the reason."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Shape of the freshly initialised model."""
    train: PretrainConfig = field(default_factory=PretrainConfig)
    """Optimisation of the pretraining run."""

    def __post_init__(self) -> None:
        if not 0.0 < self.heldout_fraction < 0.5:
            raise ConfigError(f"base.heldout_fraction={self.heldout_fraction}: choose a value in (0, 0.5)")
        if self.vocab_size < 300:
            raise ConfigError(f"base.vocab_size={self.vocab_size}: a byte-level BPE needs at least 300")
        if self.nlp_task_items < 0:
            raise ConfigError(f"base.nlp_task_items={self.nlp_task_items}: items to score, >= 0 (0: not measured)")


@dataclass
class LabelConfig:
    """The ``label`` stage: K samples per RM prompt from the SFT model, ranked by labelers
    (`instructgpt.labeling`)."""

    labelers: str = "simulated"
    """Who ranks: ``simulated`` (the world's training labelers; ``inputs.rankings`` is the world,
    data/world) or ``human`` (rankings imported from ``inputs.rankings``, e.g. labels/rankings:
    JSONL files and Label Studio exports; prompts without one get ranking tasks in
    labels/outbox/rank_tasks.jsonl)."""
    k_min: int = 4
    """Fewest responses a labeler ranks for one prompt (paper: 4; 2 = chosen/rejected pairs)."""
    k_max: int = 9
    """Most responses ranked for one prompt (paper: 9, the most the formats take); K is drawn
    uniformly in [k_min, k_max]. Imported rankings with K outside the range are rejected."""
    overlap: float = 0.25
    """Share of the ranked prompts that a second labeler ranks too, to measure inter-labeler
    agreement (agreement/overall, agreement/labeler/<id>). Simulated: a second training labeler
    and a held-out labeler (agreement/train_vs_train, agreement/heldout_vs_train); human: the
    task asks for two different labelers (each costs a second ranking, and both train the RM).
    Chosen by a stable hash of the prompt id. On the demo 0.25 gives 213 sets and a standard
    error of 1.4 points on the agreement (0.1: 83 sets, 2.4 points)."""
    wait: bool = True
    """Human labelers: stop with exit code 5 (awaiting labels) while ranking tasks are open;
    false: train on the rankings there are and report how many tasks are pending."""
    max_prompts: int | None = 3000
    """Rank at most this many RM prompts (train and valid splits); null: all."""
    demonstration_prompts: int = 0
    """Also rank this many SFT prompts (train and valid splits, a seeded choice) with their
    demonstration among K - 1 SFT samples: comparisons that show the reward model an answer
    better than SFT's (the paper's labelers ranked several models' outputs). 0 = off."""
    temperature: float = 1.0
    """Sampling temperature for the K responses."""
    temperatures: list[float] | None = None
    """Sample each prompt's candidates at these temperatures in turn (overrides ``temperature``),
    e.g. [1.0, 0.7]: the RM then also ranks answers like the ones PPO and the evaluation sample at
    0.7, not only the rougher ones at 1."""
    max_new_tokens: int = 48
    """Longest response sampled."""
    batch_size: int = 64
    """Prompts sampled together (KV cache, left padding)."""
    seed: int = 0
    """Seed of K, sampling, the overlap share and the simulated labelers."""

    def __post_init__(self) -> None:
        if self.labelers not in ("simulated", "human"):
            raise ConfigError(f"label.labelers={self.labelers!r}: choose 'simulated' or 'human'")
        if not 2 <= self.k_min <= self.k_max <= 9:
            raise ConfigError(f"label.k_min={self.k_min}, k_max={self.k_max}: need 2 <= k_min <= k_max <= 9")
        if not 0.0 <= self.overlap <= 1.0:
            raise ConfigError(f"label.overlap={self.overlap}: a share of prompts, in [0, 1]")
        if self.temperature <= 0:
            raise ConfigError(f"label.temperature={self.temperature} must be > 0")
        if self.temperatures is not None:
            if not isinstance(self.temperatures, list) or not self.temperatures or not all(
                    isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in self.temperatures):
                raise ConfigError(f"label.temperatures={self.temperatures!r}: a list of temperatures > 0, or null")
            self.temperatures = [float(t) for t in self.temperatures]
        if self.demonstration_prompts < 0:
            raise ConfigError(f"label.demonstration_prompts={self.demonstration_prompts} must be >= 0")


@dataclass
class EvaluateConfig:
    """The ``evaluate`` stage: a judge compares the models on test-split prompts; proxy figures."""

    n_prompts: int = 400
    """Test-split prompts (users never seen in training) to evaluate on."""
    temperature: float = 0.7
    """Sampling temperature of every evaluated model (the same for all)."""
    max_new_tokens: int = 48
    """Longest response generated."""
    batch_size: int = 64
    """Prompts generated together."""
    corpus_docs: int = 500
    """Held-out corpus documents for the corpus loss (alignment tax)."""
    nlp_task_items: int = 500
    """Items of the public NLP task (``inputs.nlp_task``) scored per model (alignment tax). With no
    items (0 here, or ``inputs.nlp_task: none``) the accuracy is absent, with the reason."""
    best_of_n: int = 0
    """A reference row: SFT's best of N samples by the reward model (``sft_best_of_n``), judged
    like every model (against SFT, and PPO-ptx against it). It shows what the RM alone buys
    without training; PPO should at least reach it. 0 = off."""
    seed: int = 0
    """Seed of sampling, of the simulated held-out labelers and of the order in which the human
    judge's tasks show the two responses."""
    judge: str = "simulated"
    """Who judges the models (instructgpt.judging): ``simulated`` (the simulated world's
    held-out labelers give the win rates, its gold judgements hallucination, toxicity ...; needs
    ``inputs.judgements`` pointing at the world), ``human`` (blind pairwise tasks exported to
    labels/outbox/judge_tasks.jsonl, answers read from the directory ``inputs.judgements``) or
    ``none`` (no win rates, proxy figures only). The registry's champion moves only on this
    judge's verdict (never with ``none``)."""
    wait: bool = True
    """Human judge: with tasks still unanswered, stop (exit code 5, awaiting labels) until they
    are answered (true), or report what is answered and how many are pending (false; the
    champion then does not move)."""

    def __post_init__(self) -> None:
        if self.n_prompts < 1:
            raise ConfigError("evaluate.n_prompts must be >= 1")
        if self.nlp_task_items < 0:
            raise ConfigError(f"evaluate.nlp_task_items={self.nlp_task_items}: items to score, >= 0 (0: not measured)")
        if self.best_of_n < 0 or self.best_of_n == 1:
            raise ConfigError(f"evaluate.best_of_n={self.best_of_n}: 0 (off) or N >= 2 samples per prompt")
        if self.judge not in ("simulated", "human", "none"):
            raise ConfigError(f"evaluate.judge={self.judge!r}: choose simulated, human or none")
