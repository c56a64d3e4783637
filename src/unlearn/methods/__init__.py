"""Unlearning methods, one file each; importing this package imports (and so registers) every module in it."""

import importlib
import pkgutil

from .base import (
    METHODS,
    LossMethod,
    LossOutput,
    StepBatch,
    benchmark_settings,
    make_method,
    method_fields,
    method_settings,
    with_base_model,
)

_SHARED = {"base", "common"}  # not methods: what the method files share
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _SHARED:
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METHODS", "LossMethod", "LossOutput", "StepBatch", "benchmark_settings", "make_method", "method_fields",
           "method_settings", "with_base_model"]
