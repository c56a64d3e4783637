"""Model loading, trainable-parameter selection, reference copies and log-prob helpers."""

from .loading import DEFAULT_MODEL, ensure_embedded_model, load_model, load_tokenizer, prepare_tokenizer
from .params import select_trainable, trainable_parameters
from .reference import Reference

__all__ = [
    "DEFAULT_MODEL",
    "Reference",
    "ensure_embedded_model",
    "load_model",
    "load_tokenizer",
    "prepare_tokenizer",
    "select_trainable",
    "trainable_parameters",
]
