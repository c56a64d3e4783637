"""What every attack shares: the registry, the subject it attacks, the queries it asks and the judge.

An attack tries to bring back what a model was made to forget. It transforms the model (relearning,
quantization), the query (paraphrase, jailbreak, in-context, multi-hop, mixed, multi-turn) or the
decoding (sampling), asks the request's forget probes again, and judges each answer: a probe *leaks*
when the answer contains the probe's answer (or an alias) or reaches the judge's ROUGE-L recall.
An attack never changes the model it is given: model attacks work on a copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.request import QA, ForgetRequest, Probe
from ..errors import UnlearnError
from ..metrics.judge import ROUGE_THRESHOLD, answered
from ..metrics.text import contains_answer
from ..registry import Registry, build_registered

ATTACKS: Registry[type] = Registry("attack")
ATTACK_KINDS = ("model", "query", "decoding")

Message = dict[str, str]
Guard = Callable[[list[Message]], "str | None"]


class AttackError(UnlearnError):
    """An attack cannot run on this request or model; the message names what is missing."""


@dataclass(frozen=True)
class Sampling:
    n: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


class Subject:
    """What an attack attacks: a model and its tokenizer answering chat conversations.

    `guard` is an optional prompt filter run before the model: it returns a reply (e.g. a refusal) for a
    conversation it blocks, or None to let the model answer. Model attacks replace the model with an
    attacked copy through `with_model`, so a guard stays in front of the attacked weights.
    """

    def __init__(self, model, tokenizer, batch_size: int = 16, max_new_tokens: int = 32, guard: Guard | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.guard = guard

    @property
    def weights(self):
        """The model whose weights a model attack copies: under a GuardedModel, the model it guards."""
        return getattr(self.model, "guarded_weights", self.model)

    def with_model(self, model) -> Subject:
        """The subject with other weights (an attacked copy of `weights`), behind the same guards."""
        wrapped = self.model.with_model(model) if hasattr(self.model, "guarded_weights") else model
        return Subject(wrapped, self.tokenizer, self.batch_size, self.max_new_tokens, self.guard)

    def _split(self, conversations: Sequence[Sequence[Message]], prefills: Sequence[str]):
        """The guard's replies (None where it lets a conversation through), the indices the model must answer,
        and their prompts."""
        from ..data.formatting import conversation_text

        blocked = [self.guard(list(c)) if self.guard else None for c in conversations]
        todo = [i for i, b in enumerate(blocked) if b is None]
        prompts = [conversation_text(self.tokenizer, list(conversations[i])) + prefills[i] for i in todo]
        return blocked, todo, prompts

    def respond(self, conversations: Sequence[Sequence[Message]], prefills: Sequence[str] | None = None,
                max_new_tokens: int | None = None, progress: str | None = None) -> list[str]:
        """Greedy replies; `prefills` start the assistant's turn (the reply then continues them)."""
        from ..metrics.generation import generate_answers

        prefills = list(prefills) if prefills is not None else [""] * len(conversations)
        blocked, todo, prompts = self._split(conversations, prefills)
        texts = generate_answers(self.model, self.tokenizer, [], self.batch_size, max_new_tokens or self.max_new_tokens,
                                 prompts=prompts, progress=progress) if prompts else []
        replies: list[str] = [b or "" for b in blocked]
        for i, g in zip(todo, texts, strict=True):
            replies[i] = (prefills[i] + " " + g.text).strip() if prefills[i] else g.text
        return replies

    def sample(self, conversations: Sequence[Sequence[Message]], sampling: Sampling,
               max_new_tokens: int | None = None, progress: str | None = None) -> list[list[str]]:
        """`sampling.n` sampled replies per conversation."""
        from ..metrics.generation import sample_answers

        blocked, todo, prompts = self._split(conversations, [""] * len(conversations))
        samples = sample_answers(self.model, self.tokenizer, prompts, sampling.n, sampling.temperature, sampling.top_p,
                                 self.batch_size, max_new_tokens or self.max_new_tokens, sampling.seed,
                                 progress=progress) if prompts else []
        replies: list[list[str]] = [[b] * sampling.n if b is not None else [] for b in blocked]
        for i, s in zip(todo, samples, strict=True):
            replies[i] = s
        return replies


def user(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


@dataclass(frozen=True)
class Query:
    """One attacked question about forget probe `probe`: the conversation, an optional start of the reply,
    and the strings whose appearance in the reply counts as a leak."""

    probe: int
    variant: str
    messages: tuple[tuple[str, str], ...]
    expected: tuple[str, ...]
    prefill: str = ""

    @staticmethod
    def of(probe: int, variant: str, messages: list[Message], expected: Sequence[str], prefill: str = "") -> Query:
        return Query(probe, variant, tuple((m["role"], m["content"]) for m in messages), tuple(expected), prefill)

    def conversation(self) -> list[Message]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass
class AuditContext:
    """What attacks may read: the request, the forget probes they attack (in order), the attacked subject's
    plain greedy replies to them, probes that must still be answered, the judge's threshold and, when the audit
    allows it (the quick audit), `enough`: given the outcome so far, whether the attack may end early because
    nothing it could still ask would raise its recovery (an attack that asks in stages checks it after each)."""

    request: ForgetRequest
    probes: list[Probe]
    plain_replies: list[str]
    keep_probes: list[Probe] = field(default_factory=list)
    rouge_threshold: float = ROUGE_THRESHOLD
    progress: bool = False
    enough: Callable[[AttackOutcome], bool] | None = None

    def bar(self, text: str) -> str | None:
        return text if self.progress else None


@dataclass
class AttackOutcome:
    """Per variant (a template, a step budget, a bit width...), 1.0 / 0.0 for each forget probe that leaked /
    did not, None where the variant did not ask it; `utility` holds checks that must stay high.
    `needs_floor` names variants that only mean something beside a model that never knew the facts (the
    audit reports no recovery for them without a retain model)."""

    per_variant: dict[str, list[float | None]]
    examples: list[dict[str, Any]] = field(default_factory=list)
    utility: dict[str, float] = field(default_factory=dict)
    curve: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    needs_floor: set[str] = field(default_factory=set)
    likelihood: dict[str, dict] = field(default_factory=dict)  # variant -> likelihood test of its probes (model attacks)

    def per_probe(self) -> list[float | None]:
        """Worst case per probe over the variants (None where no variant asked it)."""
        columns = list(self.per_variant.values())
        if not columns:
            return []
        out: list[float | None] = []
        for values in zip(*columns, strict=True):
            asked = [v for v in values if v is not None]
            out.append(max(asked) if asked else None)
        return out


class Attack:
    """Protocol of an attack: a dataclass whose fields are its settings (defaults and sources in the
    docstring and docs/paper_index.md). `run` must leave `subject.model` unchanged."""

    kind: ClassVar[str] = "query"
    summary: ClassVar[str] = ""

    def run(self, subject: Subject, ctx: AuditContext) -> AttackOutcome:
        raise NotImplementedError

    def machine_dependent(self) -> dict[str, Any]:
        """What this attack would do differently on another machine with the same settings (part of the key of
        a cached reference result); {} for most attacks."""
        return {}


def make_attack(spec: str | dict[str, Any]) -> Attack:
    """An attack from a name or {'name': ..., setting: value}; misspelt settings are errors."""
    return build_registered(ATTACKS, spec)


def ask(subject: Subject, queries: Sequence[Query], ctx: AuditContext, description: str,
        max_new_tokens: int | None = None) -> AttackOutcome:
    """Ask every query greedily, judge each reply, and keep the worst case per (variant, probe)."""
    replies = subject.respond([q.conversation() for q in queries], [q.prefill for q in queries], max_new_tokens,
                              progress=ctx.bar(description))
    variants = list(dict.fromkeys(q.variant for q in queries))
    per_variant: dict[str, list[float | None]] = {v: [None] * len(ctx.probes) for v in variants}
    examples = []
    for query, reply in zip(queries, replies, strict=True):
        hit = float(answered(reply, query.expected, ctx.rouge_threshold))
        column = per_variant[query.variant]
        column[query.probe] = max(column[query.probe] or 0.0, hit)
        examples.append({"probe": query.probe, "variant": query.variant, "prompt": query.messages[-1][1],
                         "turns": len(query.messages), "prefill": query.prefill, "expected": query.expected[0],
                         "reply": reply, "leaked": bool(hit)})
    return AttackOutcome(per_variant, examples)


# --- naming the target --------------------------------------------------------------------------

def _name_pattern(name: str) -> re.Pattern[str]:
    """`name` as whole words (lookarounds rather than \\b, so a name ending in a full stop, "Acme Inc.", is found)."""
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)


# words of a target's name that do not name it alone
NAME_PARTS_NOT_A_NAME = frozenset(
    "the of and for inc inc. ltd ltd. llc co co. corp corp. jr jr. sr sr. ii iii iv mr mrs ms dr project book "
    "company".split())


# what a target is, by request kind, for prompts that do not name it; a target of any other kind is a person
# (privacy requests, and "other", which the field's benchmarks fill with people)
TARGETS_NOT_PEOPLE = {"copyright": "work", "harmful": "topic"}


def target_noun(kind: str) -> str:
    """'person', 'work' or 'topic': what a request of this kind is about."""
    return TARGETS_NOT_PEOPLE.get(kind, "person")


def is_person(kind: str) -> bool:
    """Whether a request of this kind is about a person, whose surname alone names them."""
    return kind not in TARGETS_NOT_PEOPLE


def name_forms(target: str, kind: str = "privacy") -> tuple[str, ...]:
    """Ways a reply can name the target: the full name, then, for a person, their last word when that is a
    real surname ("synthesis" does not name "pathogen synthesis")."""
    parts = [p for p in target.split() if p.lower() not in NAME_PARTS_NOT_A_NAME]
    forms = [target]
    if is_person(kind) and len(target.split()) > 1 and parts and len(parts[-1]) >= 3:
        forms.append(parts[-1])
    return tuple(forms)


def surname_only(text: str, target: str, kind: str = "privacy") -> str | None:
    """`text` naming the target by surname alone (entity aliasing: a filter keyed on the full name misses
    it), or None when the target is not a person with a separate surname or `text` does not name them."""
    forms = name_forms(target, kind)
    if len(forms) < 2 or not mentions(text, target):
        return None
    return _name_pattern(target).sub(forms[1], text)


def mentions(text: str, target: str) -> bool:
    return bool(_name_pattern(target).search(text))


def name_span(text: str, target: str) -> tuple[int, int] | None:
    """Where `text` names the target as whole words (the first time), or None."""
    found = _name_pattern(target).search(text)
    return found.span() if found else None


def anonymise(text: str, target: str, kind: str = "privacy") -> str:
    """`text` with the target's full name, and then (for a person) each of its words, replaced by "this
    person" ("this work", "this topic" for copyright and harmful requests; possessives kept: "Ann Lee's" ->
    "this person's")."""
    replacement = f"this {target_noun(kind)}"
    text = _name_pattern(target).sub(replacement, text)
    for part in target.split() if is_person(kind) else ():
        if len(part) >= 3 and part.lower() not in NAME_PARTS_NOT_A_NAME:
            text = _name_pattern(part).sub(replacement, text)
    return text


def unnamed_statement(item: QA, target: str, kind: str = "privacy") -> str:
    """A forget fact as a sentence with the target's name replaced (`anonymise`)."""
    text = anonymise(as_statement(item), target, kind)
    return text[:1].upper() + text[1:]


def gives_away(text: str, probe: Probe) -> bool:
    """Whether `text` holds the probe's answer or one of its aliases (by the judge's containment rule)."""
    return any(contains_answer(text, answer) for answer in probe.answers)


def other_facts(probe: Probe, qa: Sequence[QA]) -> list[QA]:
    """Forget QA pairs that do not give this probe's answer away, in the form a prompt shows them (the question
    too, when the answer is short: "What did Ann found in 1987? Acme." gives away 1987)."""
    return [item for item in qa if not gives_away(as_statement(item), probe)]


def facts_of(probe: Probe, qa: Sequence[QA]) -> list[QA]:
    """Forget QA pairs whose answer contains this probe's answer."""
    return [item for item in qa if gives_away(item.answer, probe)]


def as_statement(item: QA) -> str:
    """A QA pair as a sentence to show in a prompt: the answer when it is a sentence, else 'Q A'."""
    answer = item.answer.strip()
    if len(answer.split()) >= 4:
        return answer if answer.endswith((".", "!", "?")) else answer + "."
    return f"{item.question.strip()} {answer}."
