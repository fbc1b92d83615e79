"""The ``evaluate`` stage's config (params.yaml section ``evaluate``): the judge, and what it is
shown (prompts, sampling, proxy figures)."""

from __future__ import annotations

from dataclasses import dataclass

from instructgpt.config import ConfigError


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
