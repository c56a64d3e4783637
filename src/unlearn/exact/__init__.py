"""Exact unlearning of fine-tuned data by sharded, isolated training (SISA)."""

from .data import TeachItem, assign_shards, item_fingerprint, load_teach_data
from .sharded import ShardConfig, ShardedState, apply_exact, is_sharded_state, teach_shards, verify_shards

__all__ = ["ShardConfig", "ShardedState", "TeachItem", "apply_exact", "assign_shards", "is_sharded_state",
           "item_fingerprint", "load_teach_data", "teach_shards", "verify_shards"]
