"""Inference-time unlearning: guards in front of a model that forget without changing its weights."""

from . import constrained_decoding, embedding_corruption, in_context, logit_offset, refusal_filter  # noqa: F401
from .base import (
           GUARDS,
           REFUSAL,
           Decoder,
           Guard,
           GuardError,
           PromptView,
           guard_specs,
           guarded_model,
           make_guard,
)
from .classifier import RequestIndex
from .guarded import GuardedModel

__all__ = ["GUARDS", "REFUSAL", "Decoder", "Guard", "GuardError", "GuardedModel", "PromptView", "RequestIndex",
           "guard_specs", "guarded_model", "make_guard"]
