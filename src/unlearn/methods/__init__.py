"""Unlearning methods, one file each; importing this package registers them all."""

from . import grad_ascent, grad_diff, idk_dpo, jensun, mudman, npo, rmu, simnpo, undial, undo  # noqa: F401  (registration)
from .base import METHODS, LossMethod, LossOutput, StepBatch, make_method, method_fields, method_settings

__all__ = ["METHODS", "LossMethod", "LossOutput", "StepBatch", "make_method", "method_fields", "method_settings"]
