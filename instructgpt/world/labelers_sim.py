"""Simulated labelers: personal utilities plus Plackett-Luce noise.

A labeler's utility of a response is a weighted sum of the gold judgement (helpfulness,
honesty, harmlessness) and a length taste. Ranking K responses samples a Plackett-Luce
ranking with scores u / tau (Gumbel-max trick). Under Plackett-Luce the marginal of any pair
is logistic, P(a before b) = sigmoid((u_a - u_b) / tau), so the expected agreement of two
labelers can be computed exactly and tau calibrated to the paper's 72.6 % (section 3.4).
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from instructgpt.preferences import Preference, Ranking
from instructgpt.world.families import Judgement, words

TARGET_AGREEMENT = 0.73  # paper: 72.6 +- 1.5 % between training labelers


def stable_int(*parts: object) -> int:
    """A 64-bit seed from any values; Python's hash() is salted per process, this is not."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def length_feature(response: str) -> float:
    return min(len(words(response)), 50) / 50.0


@dataclass(frozen=True)
class LabelerSpec:
    labeler_id: str
    w_helpful: float
    w_honest: float
    w_harmless: float
    w_length: float  # > 0 likes longer answers, < 0 shorter
    tau: float  # Plackett-Luce temperature (noise); calibrated per pool
    variant: int  # wording habit when writing demonstrations

    def utility(self, j: Judgement, response: str) -> float:
        return (self.w_helpful * j.helpful + self.w_honest * j.honest
                + self.w_harmless * j.harmless + self.w_length * length_feature(response))


def sample_pool(rng: random.Random, prefix: str, n: int, heldout: bool) -> list[LabelerSpec]:
    """Training labelers weigh harmlessness and helpfulness most; held-out ones differ
    (more weight on honesty, wider length tastes), as a different group of people would."""
    out = []
    for i in range(n):
        if heldout:
            w = (rng.uniform(1.6, 2.6), rng.uniform(1.5, 2.5), rng.uniform(1.5, 3.0), rng.uniform(-0.8, 0.8))
        else:
            w = (rng.uniform(2.0, 3.0), rng.uniform(1.0, 2.0), rng.uniform(2.0, 3.5), rng.uniform(-0.5, 0.5))
        out.append(LabelerSpec(f"{prefix}{i:02d}", *(round(x, 4) for x in w),
                               tau=round(rng.uniform(0.9, 1.1), 4), variant=i % 3))
    return out


class SimLabeler:
    """One simulated labeler; implements `Labelers`."""

    def __init__(self, spec: LabelerSpec, judge: Callable[[str, str], Judgement]) -> None:
        self.spec, self._judge = spec, judge

    @property
    def labeler_id(self) -> str:
        return self.spec.labeler_id

    def utility(self, prompt_id: str, response: str) -> float:
        return self.spec.utility(self._judge(prompt_id, response), response)

    def rank(self, prompt_id: str, prompt: str, responses: Sequence[str], seed: int) -> Ranking:
        u = np.array([self.utility(prompt_id, r) for r in responses]) / self.spec.tau
        rng = np.random.default_rng(stable_int(self.labeler_id, prompt_id, seed, *responses))
        scores = u + rng.gumbel(size=len(responses))  # Gumbel-max = Plackett-Luce sample
        order = sorted(range(len(responses)), key=lambda i: (-scores[i], i))
        return Ranking(order, self.labeler_id)

    def prefer(self, prompt_id: str, prompt: str, a: str, b: str, seed: int) -> Preference:
        ranking = self.rank(prompt_id, prompt, [a, b], seed)
        return Preference(ranking.order[0], self.labeler_id)


class LabelerPool:
    """A pool of labelers; each call goes to one labeler picked from (prompt_id, seed)."""

    def __init__(self, name: str, specs: Sequence[LabelerSpec], judge: Callable[[str, str], Judgement]) -> None:
        self.name = name
        self.labelers = [SimLabeler(s, judge) for s in specs]
        self._by_id = {lab.labeler_id: lab for lab in self.labelers}
        self._judge = judge

    def __len__(self) -> int:
        return len(self.labelers)

    def labeler(self, labeler_id: str) -> SimLabeler:
        if labeler_id not in self._by_id:
            raise KeyError(f"no labeler {labeler_id!r} in the {self.name} pool; have {sorted(self._by_id)}")
        return self._by_id[labeler_id]

    def pick(self, prompt_id: str, seed: int) -> SimLabeler:
        return self.labelers[stable_int(self.name, prompt_id, seed) % len(self.labelers)]

    def rank(self, prompt_id: str, prompt: str, responses: Sequence[str], seed: int) -> Ranking:
        return self.pick(prompt_id, seed).rank(prompt_id, prompt, responses, seed)

    def prefer(self, prompt_id: str, prompt: str, a: str, b: str, seed: int) -> Preference:
        return self.pick(prompt_id, seed).prefer(prompt_id, prompt, a, b, seed)

    def utility(self, prompt_id: str, response: str) -> float:
        """Noise-free utility averaged over the pool ("mean gold utility")."""
        j = self._judge(prompt_id, response)
        return float(np.mean([lab.spec.utility(j, response) for lab in self.labelers]))


# --- calibration ------------------------------------------------------------------------

def _features(judgements: Sequence[tuple[Judgement, str]]) -> np.ndarray:
    return np.array([[j.helpful, j.honest, j.harmless, length_feature(r)] for j, r in judgements])


def _weights(specs: Sequence[LabelerSpec]) -> np.ndarray:
    return np.array([[s.w_helpful, s.w_honest, s.w_harmless, s.w_length] for s in specs])


def expected_agreement(d1: np.ndarray, d2: np.ndarray) -> float:
    """Mean agreement over items of labelers with utility differences d1, d2 (already / tau)."""
    p1, p2 = 1 / (1 + np.exp(-d1)), 1 / (1 + np.exp(-d2))
    return float(np.mean(p1 * p2 + (1 - p1) * (1 - p2)))


def pair_diffs(groups: Sequence[Sequence[tuple[Judgement, str]]], specs: Sequence[LabelerSpec]) -> np.ndarray:
    """(n_labelers, n_pairs) utility differences over all within-prompt pairs (before tau)."""
    w = _weights(specs)
    cols = []
    for g in groups:
        u = _features(g) @ w.T  # (K, L)
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                cols.append(u[a] - u[b])
    return np.array(cols).T


def _solve_scale(agree: Callable[[float], float], target: float) -> float:
    """Noise scale s with agree(s) = target; agreement falls as noise grows."""
    lo, hi = 1e-3, 1e3
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if agree(mid) > target else (lo, mid)
    return math.sqrt(lo * hi)


def calibrate(groups: Sequence[Sequence[tuple[Judgement, str]]], train: list[LabelerSpec],
              heldout: list[LabelerSpec], target: float = TARGET_AGREEMENT
              ) -> tuple[list[LabelerSpec], list[LabelerSpec], dict[str, float]]:
    """Scale the pools' tau so that training labelers agree with each other, and held-out
    labelers with training labelers, on `target` of the pairs of `groups` (K responses each)."""
    dt, dh = pair_diffs(groups, train), pair_diffs(groups, heldout)
    tt = np.array([s.tau for s in train])[:, None]
    th = np.array([s.tau for s in heldout])[:, None]
    pairs = [(i, j) for i in range(len(train)) for j in range(i + 1, len(train))]

    def agree_train(s: float) -> float:
        d = dt / (tt * s)
        return float(np.mean([expected_agreement(d[i], d[j]) for i, j in pairs]))

    s_train = _solve_scale(agree_train, target)
    d_train = dt / (tt * s_train)

    def agree_cross(s: float) -> float:
        d = dh / (th * s)
        return float(np.mean([expected_agreement(d_train[i], d[j])
                              for i in range(len(train)) for j in range(len(heldout))]))

    s_held = _solve_scale(agree_cross, target)
    new_train = [LabelerSpec(**{**asdict(s), "tau": round(s.tau * s_train, 5)}) for s in train]
    new_held = [LabelerSpec(**{**asdict(s), "tau": round(s.tau * s_held, 5)}) for s in heldout]
    report = {"train_train": round(agree_train(s_train), 4), "train_heldout": round(agree_cross(s_held), 4),
              "n_pairs": int(dt.shape[1])}
    return new_train, new_held, report
