"""Training loops of the recipe: pretraining, SFT, reward model, PPO / PPO-ptx."""

from instructgpt.train.common import TrainingDiverged

__all__ = ["TrainingDiverged"]
