"""Attacks that try to bring forgotten knowledge back (one file each); importing this package registers them."""

from . import (  # noqa: F401  (registration)
    in_context,
    jailbreak,
    leak_at_k,
    mixed_prompt,
    multi_hop,
    multi_turn,
    paraphrase,
    quantize,
    relearn,
)
from .base import (
    ATTACK_KINDS,
    ATTACKS,
    Attack,
    AttackError,
    AttackOutcome,
    AuditContext,
    Subject,
    make_attack,
)

DEFAULT_ATTACKS = ("relearn", "quantize", "leak_at_k", "paraphrase", "in_context", "jailbreak", "multi_hop",
    "mixed_prompt", "multi_turn")

__all__ = ["ATTACKS", "ATTACK_KINDS", "DEFAULT_ATTACKS", "Attack", "AttackError", "AttackOutcome", "AuditContext",
           "Subject", "make_attack"]
