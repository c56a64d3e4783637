"""Turn QA pairs and raw texts into token ids with loss labels (prompt tokens masked with -100)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ConfigError
from ..models.logprobs import IGNORE

log = logging.getLogger(__name__)
PLAIN_PROMPT = "Question: {question}\nAnswer:"
_warned_plain = False


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer, question: str) -> str:
    """The text a model sees before its answer: the chat template's user turn, or a plain Q/A prompt."""
    global _warned_plain
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
    if not _warned_plain:
        log.warning("tokenizer has no chat template: QA pairs use the plain 'Question: ... Answer:' format")
        _warned_plain = True
    return PLAIN_PROMPT.format(question=question)


def conversation_text(tokenizer, messages: list[dict[str, str]]) -> str:
    """The text a model sees before its reply to a dialogue of {'role', 'content'} turns (user and
    assistant alternating, the last one the user's); a plain Q/A transcript without a chat template."""
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("a conversation must end with a user turn")
    if len(messages) == 1:
        return prompt_text(tokenizer, messages[0]["content"])
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    lines = [("Question: " if m["role"] == "user" else "Answer: ") + m["content"] for m in messages]
    return "\n".join(lines) + "\nAnswer:"


def answer_text(tokenizer, question: str, answer: str, prompt: str) -> str:
    """The answer as the template writes it after `prompt`, end-of-turn marker included."""
    if has_chat_template(tokenizer):
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], tokenize=False
        )
        if full.startswith(prompt):
            return full[len(prompt) :].rstrip("\n")
    return " " + answer + (tokenizer.eos_token or "")


@dataclass(frozen=True)
class Example:
    """One training sequence: input ids and labels (-100 where the loss does not count)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def encode_qa(tokenizer, question: str, answer: str, max_length: int, focus: tuple[str, ...] = ()) -> Example:
    """Prompt + answer; only answer tokens carry labels. The answer is cut to fit `max_length`.

    With `focus` (substrings of the answer), only the answer tokens that overlap a focus span carry labels.
    """
    prompt = prompt_text(tokenizer, question)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if not has_chat_template(tokenizer) and bos is not None and getattr(tokenizer, "add_bos_token", False):
        prompt_ids = [bos, *prompt_ids]
    written = answer_text(tokenizer, question, answer, prompt)
    answer_ids = tokenizer(written, add_special_tokens=False)["input_ids"]
    answer_labels = focus_labels(tokenizer, written, answer_ids, focus) if focus else list(answer_ids)
    room = max_length - len(prompt_ids)
    if room < 1:
        raise ConfigError(
            f"a prompt of {len(prompt_ids)} tokens leaves no room for the answer at max_length={max_length}; "
            f"raise train.max_length"
        )
    return Example(tuple(prompt_ids + answer_ids[:room]), tuple([IGNORE] * len(prompt_ids) + answer_labels[:room]))


def char_spans(text: str, parts: tuple[str, ...]) -> list[tuple[int, int]]:
    """Character spans of every occurrence of each part in `text`."""
    spans = []
    for part in parts:
        start = text.find(part)
        while part and start >= 0:
            spans.append((start, start + len(part)))
            start = text.find(part, start + 1)
    return spans


def focus_labels(tokenizer, text: str, ids: list[int], focus: tuple[str, ...]) -> list[int]:
    """Labels for `ids` (the tokens of `text`) that keep only tokens overlapping a focus span."""
    spans = char_spans(text, focus)
    if not spans:
        raise ConfigError(f"focus {list(focus)} does not occur in the answer {text!r}")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("QA focus needs a fast tokenizer (one that reports character offsets)")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) != len(ids):
        raise ConfigError("QA focus: the tokenizer's offsets do not match its tokens")
    return [
        token if any(start < end_span and end > start_span for start_span, end_span in spans) else IGNORE
        for token, (start, end) in zip(ids, offsets, strict=True)
    ]


def encode_text_windows(tokenizer, text: str, max_length: int, stride: int | None = None) -> list[Example]:
    """Cut a raw text into windows of at most `max_length` tokens; every token carries a label."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    prefix = [bos] if bos is not None and getattr(tokenizer, "add_bos_token", False) else []
    width = max_length - len(prefix)
    stride = stride or width
    windows = []
    for start in range(0, max(len(ids), 1), stride):
        chunk = prefix + ids[start : start + width]
        if len(chunk) > len(prefix) + 1:
            windows.append(Example(tuple(chunk), tuple(chunk)))
        if start + width >= len(ids):
            break
    return windows
