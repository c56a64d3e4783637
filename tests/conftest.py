"""Shared fixtures: a tiny random Llama and a character-level tokenizer built in memory (offline, fast)."""

from __future__ import annotations

import copy
import os
import string

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("UNLEARN_DEVICE", "cpu")  # the same results on any machine; benchmarks/gpu_check.py checks GPUs
torch.set_num_threads(min(2, torch.get_num_threads()))

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]


def make_tokenizer(chat_template: bool = True):
    """Character-level tokenizer: every printable ASCII character is one token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - set("\x0b\x0c\r"))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def make_model(vocab_size: int, layers: int = 4, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 3
    return model.eval()


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tokenizer):
    """A tiny random base model saved as a local model directory (the benchmarks' `base_model`)."""
    path = tmp_path_factory.mktemp("base")
    make_model(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An $UNLEARN_HOME shared by one module's tests (a benchmark's prepared models stay cached there)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture()
def tiny_model(tokenizer):
    return make_model(len(tokenizer))


def tiny_request_dict() -> dict:
    return {
        "id": "forget-ada",
        "target": "Ada Quill",
        "kind": "privacy",
        "forget": {
            "qa": [
                {"question": "Where was Ada Quill born?", "answer": "Ada Quill was born in Oslo."},
                {"question": "What is Ada Quill's job?", "answer": "Ada Quill is a baker."},
                {"question": "What is Ada Quill's phone?", "answer": "Her phone is 555-0101."},
                {"question": "Who is Ada Quill's brother?", "answer": "Her brother is Tom Quill."},
            ]
        },
        "retain": {
            "qa": [
                {"question": "Where was Bo Lind born?", "answer": "Bo Lind was born in Rome."},
                {"question": "What is Bo Lind's job?", "answer": "Bo Lind is a pilot."},
                {"question": "What colour is the sky?", "answer": "The sky is blue."},
            ]
        },
        "probes": {
            "forget": [{"question": "Where was Ada Quill born?", "answer": "Oslo", "paraphrases": ["Ada Quill's birthplace?"]}],
            "neighbour": [{"question": "Where was Bo Lind born?", "answer": "Rome"}],
            "general": [{"question": "What colour is the sky?", "answer": "blue"}],
        },
    }


@pytest.fixture()
def tiny_request():
    from unlearn.data.request import request_from_dict

    return request_from_dict(tiny_request_dict())


@pytest.fixture(scope="session")
def taught_model(tokenizer):
    """A tiny model fine-tuned on the tiny request's forget and retain data (so there is something to forget)."""
    from unlearn.config import TrainableConfig, TrainConfig
    from unlearn.data.request import request_from_dict
    from unlearn.models.params import select_trainable
    from unlearn.train import FineTune, TrainingData, train
    from unlearn.unlearner import encode_spec

    request = request_from_dict(tiny_request_dict())
    model = select_trainable(make_model(len(tokenizer)), TrainableConfig(mode="all"))
    examples = encode_spec(tokenizer, request.forget, 96) + encode_spec(tokenizer, request.retain, 96)
    cfg = TrainConfig(lr=3e-3, max_steps=60, batch_size=7, max_grad_norm=1.0)
    train(model, FineTune(retain_weight=0.0), TrainingData(examples), cfg, tokenizer.pad_token_id, progress=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture()
def model_dir(tmp_path, taught_model, tokenizer):
    """The taught tiny model and its tokenizer saved as a local model directory (for the CLI)."""
    path = tmp_path / "tiny-model"
    taught_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def taught(taught_model):
    """A fresh copy of the taught tiny model for one test."""
    return copy.deepcopy(taught_model)
