"""Which process this is when `accelerate launch` (or torchrun) starts several for data-parallel training.

Read from the launcher's environment (RANK, WORLD_SIZE), so asking starts no process group and works the same
before and after the training loop creates its Accelerator. Every process trains; only the main one evaluates
and writes (the model, reports, ledgers), so a run's outputs are written once.
"""

from __future__ import annotations

import os


def process_index() -> int:
    """This process's rank among the launched ones (0 when not launched by a distributed launcher)."""
    return int(os.environ.get("RANK", "0"))


def process_count() -> int:
    """How many processes were launched (1 when not launched by a distributed launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return process_index() == 0
