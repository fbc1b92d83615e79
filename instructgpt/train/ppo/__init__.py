"""Step 3: PPO / PPO-ptx against the reward model with a per-token KL penalty (paper section 3.5).

Bandit episodes: a prompt, one sampled response, the RM score on its last real token, minus
β·KL(π^RL ‖ π^SFT) per token. Value model initialised from the RM (paper) when the RM shares the
policy's tokenizer; an RM from another base with another tokenizer (``rm.model_path``) scores the
rollout's TEXT in its own format instead, and the value model then starts from the SFT policy's
weights with a fresh scalar head (it must read the policy's tokens; see ``train_ppo``). PPO-ptx adds
γ·(pretraining LM loss) to the SAME backward pass (one backward of ppo loss + ptx_coef·lm loss).
Conventions from the paper's successors (lm-human-preferences, TRL), see docs/RECIPE.md:
temperature-scaled logits for sampling AND log-probabilities, no top-k/top-p, responses end at
the first EOS (later tokens are padding, masked everywhere), fixed penalty score when a response
never emits EOS, dropout off in all four models.

One iteration is written once, as functions that ``train_ppo`` composes and ``bench/ppo.py``
times: ``rollout`` (step 1) → ``score`` (2–4) → ``advantages`` (5) → ``ppo_update`` (6).

    config.py   PPOConfig, KLConfig
    rollout.py  rollout, score, advantages, the monitor's samples
    update.py   ppo_update and its optimizer (policy and value model in their own groups)
    models.py   the four networks as train_ppo builds them: full copies, or LoRA adapters (ppo.lora)
    loop.py     train_ppo: the loop, KL controller, checkpoint/resume, metrics
"""

from instructgpt.train.ppo.config import KLConfig, PPOConfig
from instructgpt.train.ppo.loop import SampleLog, train_ppo
from instructgpt.train.ppo.rollout import (
    Rollout,
    Scores,
    advantages,
    gather_logprobs,
    monitor_samples,
    response_logits,
    response_mask,
    rollout,
    score,
)
from instructgpt.train.ppo.update import PtxStream, make_ppo_optimizer, ppo_update

__all__ = ["KLConfig", "PPOConfig", "PtxStream", "Rollout", "SampleLog", "Scores", "advantages", "gather_logprobs",
           "make_ppo_optimizer", "monitor_samples", "ppo_update", "response_logits", "response_mask", "rollout",
           "score", "train_ppo"]
