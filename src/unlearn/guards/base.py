"""What every guard shares: the registry, the view of a prompt a guard decides on, and the guard protocol.

A guard unlearns at inference time: the weights stay as they are and the guard acts on each call, in one
or more of four places (a guard overrides only the hooks it needs):

  - `reply`:   answer a prompt itself (a refusal) instead of the model;
  - `prefix`:  put text in front of the prompt (in-context unlearning's instructions and examples);
  - `noise`:   add noise of a given strength to the prompt's token embeddings (embedding corruption);
  - `decoder`: change the next-token logits at every answer position (banning answer phrases,
               shifting by a small model's offset).

`GuardedModel` (guarded.py) applies the active guards inside `generate` and the forward pass, so every
metric and attack runs on a guarded model unchanged. Requests arrive one at a time through `add`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..data.request import ForgetRequest
from ..errors import UnlearnError
from ..registry import Registry, build_registered

if TYPE_CHECKING:
    from .guarded import GuardedModel

GUARDS: Registry[type] = Registry("guard")

REFUSAL = "I'm sorry, but I can't share information about that."


class GuardError(UnlearnError):
    """A guard cannot be set up as asked; the message names what to change."""


@dataclass(frozen=True)
class PromptView:
    """One prompt as a guard sees it: its token ids (no padding) and the text of its turns without the
    chat template's fixed parts (the default system prompt, role headers)."""

    ids: tuple[int, ...]
    text: str


class Decoder:
    """A change to next-token logits, built for a list of prompt views.

    `step` acts during generation: `input_ids` (rows x tokens so far, left-padded) and `scores` (rows x
    vocabulary) of the next position; `owners[i]` is the view row i answers. `teacher_forced` acts on a
    forward pass over right-padded rows (row i answers view i): `logits[:, j]` belongs to position
    `first + j`, and positions from `starts[i]` on (the one that predicts the first answer token) are
    changed. Both return new logits and change nothing in place."""

    def begin(self, attention_mask: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Called before a generation with the prompts' attention mask (rows as in `step`)."""

    def step(self, input_ids: torch.Tensor, scores: torch.Tensor, owners: list[int]) -> torch.Tensor:
        raise NotImplementedError

    def teacher_forced(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits: torch.Tensor,
                       starts: list[int], first: int) -> torch.Tensor:
        raise NotImplementedError


class Guard:
    """Protocol of a guard: a registered dataclass whose fields are its settings (defaults and sources in
    its docstring and docs/paper_index.md)."""

    family: ClassVar[str] = "guard"
    summary: ClassVar[str] = ""

    def add(self, request: ForgetRequest, host: GuardedModel) -> None:
        """Start guarding `request` (again: nothing changes). `host` gives the protected model, its tokenizer
        and the shared prompt classifier, which already holds the request."""
        raise NotImplementedError

    def reply(self, views: list[PromptView], host: GuardedModel) -> list[str | None]:
        return [None] * len(views)

    def prefix(self, views: list[PromptView], host: GuardedModel) -> list[str | None]:
        return [None] * len(views)

    def noise(self, views: list[PromptView], host: GuardedModel) -> list[float]:
        return [0.0] * len(views)

    def decoder(self, views: list[PromptView], host: GuardedModel) -> Decoder | None:
        return None

    def state(self) -> dict[str, Any]:
        """What the guard learned while adding requests (calibrated thresholds, tuned strengths)."""
        return {}


def make_guard(spec: str | dict[str, Any]) -> Guard:
    """A guard from a name or {'name': ..., setting: value}; misspelt settings are errors."""
    return build_registered(GUARDS, spec)


def guard_specs(names: list[str], overrides: list[str] = ()) -> list[dict[str, Any]]:
    """Guard specs from names and 'guard.setting=value' overrides; every name and setting is checked
    (by building each guard once)."""
    from ..config import parse_override
    from ..errors import ConfigError

    specs: dict[str, dict[str, Any]] = {}
    for name in names:
        GUARDS.get(name)  # unknown names fail here, with the valid list
        specs[name] = {"name": name}
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) != 2 or keys[0] not in specs:
            raise ConfigError(f"--guard-set {text}: use <guard>.<setting>=value for a guard given with --guards "
                              f"({', '.join(specs) or 'none given'})")
        specs[keys[0]][keys[1]] = value
    for spec in specs.values():
        make_guard(spec)
    return list(specs.values())


def guarded_model(model, tokenizer, specs: list[str | dict[str, Any]], requests=(), seed: int = 0) -> GuardedModel:
    """`model` behind the guards in `specs`, guarding `requests`."""
    from .guarded import GuardedModel

    guarded = GuardedModel(model, tokenizer, [make_guard(s) for s in specs], seed=seed)
    for request in requests:
        guarded.add_request(request)
    return guarded
