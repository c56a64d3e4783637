"""Relearning: a few fine-tuning steps on part of the forget data bring forgotten answers back.

Protocol (Hu et al. 2025, "Unlearning or Obfuscating? Jogging the Memory of Unlearned LLMs via Benign
Relearning", arXiv 2406.13356; Deeb & Roger 2024, "Do Unlearning Methods Remove Information from Language
Model Weights?", arXiv 2410.08827): fine-tune a copy of the unlearned model on a subset of the forget facts
(or on related, benign data) and ask again after each step budget. Two variants per budget k:
  - `held_out@k`: the probes whose answers appear in none of the relearned items (knowledge that was only
    hidden returns although it was not shown again);
  - `relearned@k`: the probes whose answers were relearned. Any model learns these eventually, so this
    variant only counts beside the retain model relearned the same way: recovery is how much faster the
    unlearned model gets them back than a model that never knew them (no recovery without `--retain`).

Our defaults: a seeded half of the forget QA pairs (or text windows) is relearned with plain NLL, AdamW at
lr 2e-5, constant, batch 4, all parameters; the probes are asked after 1, 2, 3, 5 and 10 steps (the budgets
where a never-taught model has not yet learned the shown facts). With `data`, the model relearns that file
instead and every probe counts as held out. After the last budget, the held-out probes that have distractors
also take the likelihood knowledge test (metrics/knowledge.py): whether relearning some facts makes the
weights rank the others' true values first again. When the audit allows it (`AuditContext.enough`, the quick
audit) and a budget already brings back everything that was removed (recovery 1.0, which no later budget can
exceed), relearning ends there: the later budgets and the likelihood test are not run.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TrainableConfig, TrainConfig
from ..data.request import QA, DataSpec, ForgetRequest
from ..errors import ConfigError
from .base import (
    ATTACKS,
    Attack,
    AttackError,
    AttackOutcome,
    AuditContext,
    Query,
    Subject,
    ask,
    gives_away,
    user,
)


def load_relearn_data(path: str | Path) -> DataSpec:
    """Benign relearning data: a JSON list or JSONL file of {"question", "answer"} or {"text"} records."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"relearn: data file {path} does not exist")
    text = path.read_text()
    try:
        records = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"relearn: {path} is not valid JSON / JSONL ({exc})") from exc
    spec = DataSpec()
    for number, record in enumerate(records if isinstance(records, list) else [], 1):
        if isinstance(record, dict) and isinstance(record.get("text"), str) and record["text"].strip():
            spec.texts.append(record["text"].strip())
        elif isinstance(record, dict) and all(isinstance(record.get(k), str) and record[k].strip() for k in ("question", "answer")):
            spec.qa.append(QA(record["question"].strip(), record["answer"].strip()))
        else:
            raise ConfigError(f"relearn: {path} record {number} needs a non-empty 'text' or 'question' and 'answer'")
    if not len(spec):
        raise ConfigError(f"relearn: {path} holds no records")
    return spec


def relearn_split(request: ForgetRequest, fraction: float, seed: int) -> DataSpec:
    """A seeded `fraction` of the request's forget QA pairs and texts (focus spans dropped: the attacker
    trains on whole answers)."""
    qa = [QA(item.question, item.answer) for item in request.forget.qa]
    texts = list(request.forget.texts)
    rng = random.Random(seed)
    rng.shuffle(qa)
    rng.shuffle(texts)

    def take(items: list) -> list:
        return items[: math.ceil(fraction * len(items))] if items else []

    return DataSpec(texts=take(texts), qa=take(qa))


def held_out_probes(probes, learned: DataSpec) -> list[int]:
    """Indices of the probes whose answers occur in none of the relearned items."""
    seen = [item.answer for item in learned.qa] + list(learned.texts)
    return [i for i, probe in enumerate(probes)
            if not any(gives_away(text, probe) for text in seen)]


def hold_one_out(learned: DataSpec, probes, seed: int) -> DataSpec:
    """`learned` without the items that give away one probe's answer (chosen by `seed`), when something is left:
    with few forget items the relearned share can cover every probe, and then no probe measures how much
    relearning *other* facts brings back."""
    order = list(range(len(probes)))
    random.Random(seed).shuffle(order)
    for i in order:
        kept = DataSpec(texts=[t for t in learned.texts if not gives_away(t, probes[i])],
                        qa=[q for q in learned.qa if not gives_away(q.answer, probes[i])])
        if len(kept):
            return kept
    return learned


def held_out_likelihood(model, tokenizer, ctx: AuditContext, held_out: list[int]) -> dict | None:
    """The likelihood knowledge test on the held-out probes that have distractors (None when none has)."""
    from ..metrics.knowledge import likelihood_knowledge

    probes = [ctx.probes[i] for i in held_out if ctx.probes[i].distractors]
    if not probes:
        return None
    return likelihood_knowledge(model, tokenizer, probes, ctx.request.forget.qa,
                                progress=ctx.bar("likelihood test after relearning"))


STOP_TRAINING = -2.0  # below the training loop's early-stop threshold (-1.0): training ends after this step


@ATTACKS.register("relearn")
@dataclass
class Relearn(Attack):
    """Fine-tune a copy on part of the forget data (or benign data) and ask the held-out probes per step budget."""

    kind = "model"
    summary = "a few fine-tuning steps on half the forget data; held-out and relearned facts per step budget"

    steps: list[int] = field(default_factory=lambda: [1, 2, 3, 5, 10])
    lr: float = 2e-5
    batch_size: int = 4
    fraction: float = 0.5
    data: str = ""  # benign relearning data (JSON / JSONL of question-answer or text records)
    trainable: str = "all"  # 'all', or a slice of decoder layers such as '-10:'
    max_length: int = 128
    seed: int = 0

    def validate(self) -> None:
        if not self.steps or any(not isinstance(s, int) or s < 1 for s in self.steps):
            raise ConfigError(f"relearn: steps must be a non-empty list of positive integers, got {self.steps}")
        if not 0 < self.fraction < 1:
            raise ConfigError(f"relearn: fraction must be between 0 and 1 (exclusive), got {self.fraction}")
        if self.lr <= 0 or self.batch_size < 1:
            raise ConfigError("relearn: lr must be positive and batch_size at least 1")

    def plan(self, ctx: AuditContext) -> tuple[DataSpec, list[int]]:
        """What to relearn and which probes to ask afterwards."""
        if self.data:
            return load_relearn_data(self.data), list(range(len(ctx.probes)))
        learned = relearn_split(ctx.request, self.fraction, self.seed)
        held_out = held_out_probes(ctx.probes, learned)
        if not held_out and len(ctx.probes) > 1:
            learned = hold_one_out(learned, ctx.probes, self.seed)
            held_out = held_out_probes(ctx.probes, learned)
        if not len(learned):
            raise AttackError("relearn: the request has no forget data to relearn; give relearn.data")
        return learned, held_out

    def run(self, subject: Subject, ctx: AuditContext) -> AttackOutcome:
        from ..models.params import select_trainable
        from ..train import FineTune, TrainingData, train
        from ..unlearner import encode_spec

        learned, held_out = self.plan(ctx)
        budgets = sorted(set(self.steps))
        every = math.gcd(*budgets)
        trainable = TrainableConfig(mode="all") if self.trainable == "all" else TrainableConfig(mode="layers",
                                                                                                layers=self.trainable)
        model = select_trainable(copy.deepcopy(subject.weights), trainable)
        examples = encode_spec(subject.tokenizer, learned, self.max_length)
        cfg = TrainConfig(lr=self.lr, max_steps=budgets[-1], batch_size=self.batch_size, max_length=self.max_length,
                          seed=self.seed, early_stop=True, early_stop_every=every, early_stop_accuracy=-1.0)
        outcome = AttackOutcome({})
        done = [0]

        relearned = [i for i in range(len(ctx.probes)) if i not in held_out]

        def after_steps(current) -> float:  # called every `every` steps; never stops training
            done[0] += every
            if done[0] in budgets:
                queries = [Query.of(i, f"{'held_out' if i in held_out else 'relearned'}@{done[0]}",
                                    user(ctx.probes[i].question), ctx.probes[i].answers)
                           for i in range(len(ctx.probes))]
                part = ask(subject.with_model(current), queries, ctx, f"relearned {done[0]} steps")
                outcome.per_variant.update(part.per_variant)
                outcome.examples += part.examples
                if relearned:
                    outcome.needs_floor.add(f"relearned@{done[0]}")
                if done[0] == budgets[-1]:
                    tested = held_out_likelihood(current, subject.tokenizer, ctx, held_out)
                    if tested is not None:
                        outcome.likelihood[f"held_out@{done[0]}"] = tested
                elif ctx.enough is not None and ctx.enough(outcome):
                    outcome.notes.append(f"stopped after {done[0]} of {budgets[-1]} steps: everything removed was "
                                         "back (the quick audit); later budgets and the likelihood test not run")
                    return STOP_TRAINING
            return 1.0

        train(model, FineTune(retain_weight=0.0), TrainingData(examples), cfg, subject.tokenizer.pad_token_id,
              probe_check=after_steps, progress=ctx.progress, description="relearning")
        del model
        outcome.notes.append(f"relearned {len(learned)} items; {len(held_out)} held-out and {len(relearned)} relearned probes")
        return outcome
