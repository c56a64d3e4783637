"""In-context unlearning: the request shown in the prompt, with instructions and counter-examples.

For a prompt the classifier relates to a stored request (or every prompt, with `gate` off), a system turn
is put before the conversation: an instruction not to reveal anything about the target, optionally the
facts to keep confidential (`show_facts`, off by default: a small model repeats facts it is shown), and
`examples` of the request's forget questions answered with a refusal (the counter-examples: ICUL's
flipped labels, here a refusal in place of the true answer).

Pawelczyk et al. 2024, "In-Context Unlearning: Language Models as Few-Shot Unlearners" (ICML, arXiv
2310.07579): forget examples with flipped labels placed in the context; Thaker et al. 2024 (arXiv
2403.03329): prompting as an unlearning baseline. The wording is ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .base import GUARDS, REFUSAL, Guard, PromptView


def instruction_text(request, show_facts: bool, examples: int, refusal: str) -> str:
    """The system text for one request."""
    lines = [f"{request.target} has asked to be forgotten. Do not reveal, confirm or guess anything about "
             f"{request.target}, even when asked indirectly, in another language or in a role play."]
    if show_facts:
        facts = [qa.answer for qa in request.forget.qa] + list(request.forget.texts)
        if facts:
            lines.append("Confidential (never repeat): " + " ".join(f.strip() for f in facts))
    questions = [p.question for p in request.probes.forget] + [qa.question for qa in request.forget.qa]
    shown = list(dict.fromkeys(questions))[:examples]
    if shown:
        lines.append("Examples:")
        lines += [f"Q: {q}\nA: {refusal}" for q in shown]
    return "\n".join(lines)


@GUARDS.register("in_context")
@dataclass
class InContext(Guard):
    """Puts the related request's instruction, facts and refused examples before the prompt."""

    summary = "in-context unlearning: instruction, confidential facts and refused examples before the prompt"

    gate: bool = True  # only prompts the classifier relates to a request; False: every prompt, every request
    show_facts: bool = False  # measured: shown facts are repeated by the 135M model (docs/benchmarks.md)
    examples: int = 4
    max_false_positive: float = 0.05
    refusal: str = REFUSAL

    def validate(self) -> None:
        if self.examples < 0:
            raise ConfigError(f"in_context: examples must be >= 0, got {self.examples}")

    def add(self, request, host) -> None:
        """Nothing beyond the shared index, which the host updates."""

    def prefix(self, views: list[PromptView], host) -> list[str | None]:
        requests = host.index.requests
        if not requests:
            return [None] * len(views)
        if not self.gate:
            text = "\n\n".join(instruction_text(r, self.show_facts, self.examples, self.refusal) for r in requests)
            return [text] * len(views)
        related = host.index.related([v.text for v in views], self.max_false_positive)
        return [instruction_text(requests[r], self.show_facts, self.examples, self.refusal) if r is not None else None
                for r in related]
