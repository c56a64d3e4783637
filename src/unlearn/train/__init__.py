"""The one training loop and its helpers."""

from .finetune import FineTune
from .loop import TrainingData, TrainResult, lr_factor, total_steps, train

__all__ = ["FineTune", "TrainResult", "TrainingData", "lr_factor", "total_steps", "train"]
