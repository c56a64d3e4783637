"""`unlearn apply`: apply removal requests one after another to a state directory, verify each, roll back.

For each request, in order:
  1. the ledger gets a `pending` row (or, for a request already in it: skip it if applied, refuse it if its
     id names different content, redo it if it was interrupted);
  2. the current model is assembled (base + applied checkpoints) and evaluated on the request's probes;
  3. the request is unlearned (the technique decides where training starts and how the update is stored),
     its retain and anchor data without the items applied requests asked to forget (requests/forgotten.py);
  4. the update is written as a checkpoint file (atomic, checksummed);
  5. the model with the update is verified (requests/verification.py);
  6. one ledger transaction records the outcome; a rolled-back or rejected request's file is deleted.
With `tries` > 1, a try that fails verification is discarded and steps 3-5 run again from the same model
with the next seed (train.seed + try - 1), up to `tries` times; the ledger keeps every failed try's reason.
A crash anywhere leaves a `pending` row and possibly an unreferenced file: the next run deletes the file
and redoes the request, ending in the state an uninterrupted run reaches.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import RunConfig, SequenceConfig, from_dict, to_dict
from ..data.request import ForgetRequest
from ..errors import UnlearnError
from ..io import atomic_write_json
from ..methods import make_method, method_settings
from ..models.loading import weights_digest
from ..models.params import is_peft_model
from ..unlearner import Unlearner, save_model
from .checkpoints import dense_update, lora_a_factors, lora_update
from .faults import kill_point
from .forgotten import data_fingerprints, without_forgotten
from .orthogonal import OrthogonalToEarlier
from .sealed import seal_probe
from .state import MODEL, StateDir, now_iso
from .techniques import Traits, traits
from .verification import (
    UTILITY_GROUPS,
    SequenceEvaluation,
    Verification,
    builtin_general_probes,
    evaluate_sequence_probes,
    request_groups,
    utility_hash,
    verify,
)


@dataclass
class Outcome:
    """What happened to one request in this call."""

    id: str
    status: str  # applied | rolled_back | rejected | skipped
    message: str
    seconds: float = 0.0


@dataclass
class StateVerification:
    """`unlearn verify` of a state: every applied request's sealed forget probes and general knowledge, asked of
    the current model."""

    verification: Verification
    requests: int  # applied requests checked
    earlier: dict[str, float]  # request id -> share of its sealed forget probes answered now
    general: float
    general_baseline: float

    @property
    def passed(self) -> bool:
        return self.verification.passed

    @property
    def checks(self) -> list[dict]:
        return self.verification.checks

    def to_json(self) -> dict:
        return {"passed": self.passed, "checks": self.checks, "requests": self.requests, "earlier": self.earlier,
                "general": self.general, "general_baseline": self.general_baseline}


def check_requests(requests: list[ForgetRequest], state: StateDir) -> None:
    """Refuse, before any work, ids given twice with different content or already in the ledger with
    different content."""
    seen: dict[str, str] = {}
    for request in requests:
        digest = request.content_hash()
        if seen.setdefault(request.id, digest) != digest:
            raise UnlearnError(f"two requests given have the id '{request.id}' and different content; give each "
                               "request its own id")
        entry = state.ledger.get(request.id)
        if entry and entry.content_hash != digest:
            raise UnlearnError(f"the ledger already has a request '{request.id}' with different content (hash "
                               f"{entry.content_hash[:12]}, this one {digest[:12]}); a request id names one request: "
                               "give the new request its own id")


def record_missing_fingerprints(requests: list[ForgetRequest], state: StateDir) -> None:
    """Fingerprint the forget items of requests the ledger has without them (a ledger written before they
    were kept), all before the first request is trained: a later request in the list may be an applied one
    whose items an earlier one's retain set must not re-teach."""
    missing = [r for r in requests if state.ledger.get(r.id) and not state.ledger.has_forgotten(r.id)]
    if missing:
        with state.ledger.transaction() as conn:
            for request in missing:
                state.ledger.set_forgotten(conn, request.id, data_fingerprints(request.forget, state.meta["salt"]))


class SequenceRunner:
    """Applies requests to one opened state directory."""

    def __init__(self, state: StateDir, base, tokenizer, config: RunConfig, progress: bool = True,
                 echo: Callable[[str], None] = print):
        self.state = state
        self.ledger = state.ledger
        self.base = base
        self.tokenizer = tokenizer
        self.config = config
        self.sequence = from_dict(SequenceConfig, state.meta["sequence"], "sequence")
        self.traits: Traits = traits(self.sequence)
        self.salt = state.meta["salt"]
        self.progress = progress
        self.echo = echo

    def _bar(self, text: str) -> str | None:
        return text if self.progress else None

    def baseline(self, groups: dict) -> dict[str, float]:
        """Utility accuracy on the base model (before the first request), computed once per probe set."""
        key = utility_hash(groups)
        cached = self.ledger.baseline(key)
        if cached is not None:
            return cached
        utility = {g: groups[g] for g in UTILITY_GROUPS if g in groups}
        result = evaluate_sequence_probes(self.base, self.tokenizer, utility, {}, self.salt, self.config.eval,
                                          self._bar("evaluating the base model (once per probe set)"))
        baseline = dict(result.accuracy)
        with self.ledger.transaction() as conn:
            self.ledger.set_baseline(conn, key, baseline)
        return baseline

    def register(self, request: ForgetRequest, retry: bool) -> Outcome | None:
        """Ledger bookkeeping before the work; returns an Outcome when the request is to be skipped."""
        entry = self.ledger.get(request.id)
        now = now_iso()
        settings = {"trainable": to_dict(self.config.trainable), "train": to_dict(self.config.train)}
        method = method_settings(make_method(self.config.method))
        if entry is not None:
            if entry.status == "applied":
                return Outcome(request.id, "skipped", f"already applied ({entry.finished}); nothing to do")
            if entry.status in ("rejected", "rolled_back") and not retry:
                return Outcome(request.id, "skipped", f"was {entry.status.replace('_', ' ')} ({entry.reason}); "
                                                      "pass --retry to try again, e.g. with other settings")
            event = "resumed after an interruption" if entry.status == "pending" else "retried"
            with self.ledger.transaction() as conn:
                self.ledger.update(conn, request.id, status="pending", started=now, attempts=entry.attempts + 1,
                                   method=method, settings=settings, reason="")
                self.ledger.log(conn, now, request.id, event)
            if entry.status == "pending":
                self.echo(f"{request.id}: interrupted earlier; redoing it")
            return None
        counts = {k: v for k, v in request.summary().items() if k not in ("id", "target", "kind", "hash")}
        with self.ledger.transaction() as conn:
            self.ledger.insert(
                conn, id=request.id, content_hash=request.content_hash(), target=request.target, kind=request.kind,
                counts=counts, method=method, settings=settings, technique=self.sequence.technique,
                status="pending", received=now, started=now, attempts=1,
                sealed_probes=[seal_probe(p, self.salt) for p in request.probes.forget],
                request=request.to_dict() if self.sequence.keep_data else None,
            )
            self.ledger.set_forgotten(conn, request.id, data_fingerprints(request.forget, self.salt))
            self.ledger.log(conn, now, request.id, "received")
        return None

    def _method(self):
        method = make_method(self.config.method)
        if self.sequence.lora_orthogonal > 0:
            earlier: dict[str, list[torch.Tensor]] = {}
            for entry in self.state.live_entries():
                for name, a in lora_a_factors(self.state.checkpoint_tensors(entry)).items():
                    earlier.setdefault(name, []).append(a)
            method = OrthogonalToEarlier(method, earlier, self.sequence.lora_orthogonal)
        return method

    def training_start(self, current=None):
        """The model a request is trained from, changed in place by training: a copy of the base model
        (techniques that train from the base), else the current model (`current` when already assembled)."""
        if self.traits.trains_from_base:
            return copy.deepcopy(self.base)
        return current if current is not None else self.state.assemble(self.base)

    def _train(self, request: ForgetRequest, start, seed: int) -> tuple[dict[str, torch.Tensor], dict]:
        """Unlearn `request` from `start` (changed in place) with training seed `seed`; returns the checkpoint
        tensors and training info."""
        config = copy.deepcopy(self.config)
        config.train.seed = seed
        if self.traits.lora:
            config.trainable.mode = "lora"
        before = None if config.trainable.mode == "lora" else {n: p.detach().clone() for n, p in start.named_parameters()}
        captured: dict = {}

        def on_trained(model) -> None:
            captured["lora"] = lora_update(model) if is_peft_model(model) else None

        torch.manual_seed(config.train.seed)
        result = Unlearner(start, self.tokenizer, config, self._method()).apply(
            request, progress=self.progress, on_step=lambda n: kill_point("training"), on_trained=on_trained)
        tensors = captured.get("lora") or dense_update(result.model, before)
        info = {"steps": result.train.steps, "seconds": result.train.seconds, "stopped_early": result.train.stopped_early,
                "repair_steps": result.train.repair_steps, "seed": seed}
        return tensors, info

    def process(self, request: ForgetRequest, retry: bool = False, tries: int = 1) -> Outcome:
        """Apply one request (steps 1-6 of the module docstring), training it up to `tries` times."""
        if tries < 1:
            raise UnlearnError(f"tries must be at least 1, got {tries}")
        start_time = time.perf_counter()
        skipped = self.register(request, retry)
        if skipped:
            return skipped
        entry = self.ledger.get(request.id)
        timings: dict[str, float] = {}
        groups = request_groups(request)
        baseline = self.baseline(groups)
        earlier_entries = self.ledger.entries("applied")
        earlier = {e.id: e.sealed_probes for e in earlier_entries if e.sealed_probes}
        earlier_then = {e.id: e.accuracy("after") or 0.0 for e in earlier_entries}

        t = time.perf_counter()
        current = self.state.assemble(self.base)
        live = sorted(self.state.referenced_files())
        stored = entry.metrics_before
        if stored is None or stored.get("live") != live:  # none yet, or the model changed since (a retry)
            before = evaluate_sequence_probes(current, self.tokenizer, groups, {}, self.salt, self.config.eval,
                                              self._bar(f"{request.id}: evaluating before"))
            with self.ledger.transaction() as conn:
                self.ledger.update(conn, request.id,
                                   metrics_before={**before.stored(self.sequence.keep_data), "live": live})
        else:
            before = SequenceEvaluation.from_stored(stored, f"the ledger's evaluation of {request.id} before")
        timings["eval_before_s"] = time.perf_counter() - t

        trained, dropped = without_forgotten(request, self.ledger.forgotten([e.id for e in earlier_entries]), self.salt)
        if dropped:
            self.echo(f"{request.id}: left out of training, as this or an applied request asks to forget them: "
                      + ", ".join(f"{n} {part} item(s)" for part, n in dropped.items()))
        failed_tries: list[dict] = []
        timings["train_s"] = timings["verify_s"] = 0.0  # summed over the tries
        for attempt in range(1, tries + 1):
            kill_point("before-training")
            start, current = self.training_start(current), None
            tensors, training = self._train(trained, start, self.config.train.seed + attempt - 1)
            training["left_out"] = dropped
            del start
            name, sha, after, verify_s = self._checkpoint_and_verify(request, entry, attempt, tensors, groups, earlier)
            timings["train_s"] += training["seconds"]
            timings["verify_s"] += verify_s
            decision = verify(after, baseline, earlier_then, self.sequence)
            if decision.passed or attempt == tries:
                break
            failed_tries.append({"try": attempt, "seed": training["seed"], "status": decision.status,
                                 "reason": decision.reason, "steps": training["steps"]})
            self.state.remove_orphans()
            self.echo(f"{request.id}: try {attempt} of {tries} {decision.status.replace('_', ' ')} "
                      f"({decision.reason}); training again with seed {training['seed'] + 1}")
        applied = decision.passed
        timings["total_s"] = time.perf_counter() - start_time
        training["tries"] = attempt
        kill_point("before-ledger")
        now = now_iso()
        with self.ledger.transaction() as conn:
            self.ledger.update(
                conn, request.id, status=decision.status, reason=decision.reason, finished=now,
                checkpoint=name if applied else None, checkpoint_sha256=sha if applied else None,
                metrics_after=after.stored(self.sequence.keep_data),
                verification={**decision.to_json(), "baseline": baseline, "training": training,
                              "failed_tries": failed_tries},
                timings=timings,
            )
            for failed in failed_tries:
                self.ledger.log(conn, now, request.id, f"try {failed['try']} {failed['status']}", failed["reason"])
            self.ledger.log(conn, now, request.id, decision.status, decision.reason)
        kill_point("after-ledger")
        if not applied:
            self.state.remove_orphans()
        elif self.traits.foldable:
            self.state.fold(self.sequence.keep_checkpoints)
        message = self._message(before, after, baseline, decision)
        if failed_tries:
            message = f"on try {attempt} of {tries}: {message}"
        return Outcome(request.id, decision.status, message, time.perf_counter() - start_time)

    def _checkpoint_and_verify(self, request: ForgetRequest, entry, attempt: int, tensors: dict[str, torch.Tensor],
                               groups: dict, earlier: dict) -> tuple[str, str, SequenceEvaluation, float]:
        """Write one try's update as a checkpoint file and evaluate the model with it; returns the file name,
        its checksum, the evaluation and the seconds it took."""
        suffix = f"-try{attempt}" if attempt > 1 else ""
        name = (f"{entry.seq:04d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', request.id)[:60]}-{entry.attempts}{suffix}"
                ".safetensors")
        kill_point("before-checkpoint")
        sha = self.state.write_checkpoint(name, tensors, {"request": request.id, "hash": entry.content_hash,
                                                          "technique": self.sequence.technique})
        kill_point("after-checkpoint")
        t = time.perf_counter()
        candidate = self.state.assemble(self.base, extra=tensors)
        after = evaluate_sequence_probes(candidate, self.tokenizer, groups, earlier, self.salt, self.config.eval,
                                         self._bar(f"{request.id}: verifying"))
        return name, sha, after, time.perf_counter() - t

    @staticmethod
    def _message(before: SequenceEvaluation, after: SequenceEvaluation, baseline: dict,
                 decision: Verification) -> str:
        parts = []
        for group, accuracy in after.accuracy.items():
            then = before.accuracy.get(group)
            text = f"{group} {then:.2f}->{accuracy:.2f}" if then is not None else group
            if group in baseline:
                text += f" (base {baseline[group]:.2f})"
            parts.append(text)
        if after.earlier:
            worst = max(after.earlier.values())
            parts.append(f"{len(after.earlier)} earlier requests, worst forget accuracy {worst:.2f}")
        text = ", ".join(parts)
        return text if decision.passed else f"{decision.reason} | {text}"


def explicit_sequence(config: RunConfig, overrides: list[str]) -> SequenceConfig | None:
    """`config.sequence` when the overrides set any sequence.* key, else None (an existing state directory
    then keeps its own settings)."""
    return config.sequence if any(o.strip().startswith("sequence.") for o in overrides) else None


def _open_with_base(state: StateDir, model: str | None, config: RunConfig, sequence: SequenceConfig | None):
    """Load the base model and check it against (or record it in) the state directory."""
    from ..models.loading import load_model

    meta = state.meta
    name = model or meta.get("base_model") or config.model.name
    base, tokenizer = load_model(name, config.model.dtype)
    digest = weights_digest(base)
    if not state.initialised():
        chosen = sequence or config.sequence
        traits(chosen)
        state.initialise(name, digest, to_dict(chosen))
    else:
        state.check_base(name, digest)
        if sequence is not None and to_dict(sequence) != meta["sequence"]:
            changed = {k: v for k, v in to_dict(sequence).items() if meta["sequence"].get(k) != v}
            raise UnlearnError(f"the state directory {state.directory} was created with sequence settings "
                               f"{meta['sequence']}; these differ ({changed}). A state directory keeps its technique "
                               "and checks: use a new --state directory for other ones")
    for p in base.parameters():
        p.requires_grad_(False)
    return base.eval(), tokenizer


def export_current(state: StateDir, base, tokenizer) -> Path:
    """Write the current model to DIR/model (atomically), unless it already matches the ledger."""
    applied = state.ledger.entries("applied")
    version = {"applied": [[e.id, e.content_hash] for e in applied], "folded": state.meta.get("folded"),
               "live": sorted(state.referenced_files())}
    out = state.directory / MODEL
    marker = out / "ledger_version.json"
    if marker.is_file() and json.loads(marker.read_text()) == version:
        return out
    kill_point("before-export")
    lines = ["# Model with removal requests applied", "", f"Base model: `{state.meta['base_model']}`; technique "
             f"`{state.meta['sequence']['technique']}`. Requests applied, in order:", ""]
    lines += [f"- `{e.id}` ({e.kind}), content hash `{e.content_hash}`, method `{e.method.get('name')}`, {e.finished}"
              for e in applied] or ["- none"]
    model = state.assemble(base)
    save_model(model, tokenizer, out, "\n".join(lines) + "\n")
    atomic_write_json(marker, version)
    return out


def apply_requests(requests: list[ForgetRequest], state_dir: str | Path, model: str | None = None,
                   config: RunConfig | None = None, sequence: SequenceConfig | None = None, retry: bool = False,
                   progress: bool = True, export: bool = True, echo: Callable[[str], None] = print,
                   tries: int = 1) -> list[Outcome]:
    """Apply `requests` in order to the state directory `state_dir` (created on first use from `model`,
    default the config's model); returns one Outcome per request. `sequence` fixes the technique and checks
    of a new state directory (default: config.sequence); an existing one keeps its own. `tries`: trainings per
    request, each with the next seed, before a failed verification is recorded (a crafted request gets as
    many chances at the same checks, and costs as many trainings)."""
    config = config or RunConfig()
    if not requests:
        raise UnlearnError("no request given: name one or more request files")
    if tries < 1:
        raise UnlearnError(f"tries must be at least 1, got {tries}")
    make_method(config.method)  # an unknown method fails before anything is loaded
    with StateDir(state_dir) as state:
        check_requests(requests, state)
        base, tokenizer = _open_with_base(state, model, config, sequence)
        removed = state.remove_orphans()
        if removed:
            echo(f"removed {len(removed)} file(s) left by an interrupted run: {', '.join(removed)}")
        record_missing_fingerprints(requests, state)
        runner = SequenceRunner(state, base, tokenizer, config, progress, echo)
        if runner.traits.foldable:
            state.fold(runner.sequence.keep_checkpoints)
        outcomes = []
        for request in requests:
            outcome = runner.process(request, retry, tries)
            echo(f"{outcome.id}: {outcome.status.replace('_', ' ')} — {outcome.message}"
                 + (f" ({outcome.seconds:.0f} s)" if outcome.seconds else ""))
            outcomes.append(outcome)
        if export:
            echo(f"current model: {export_current(state, base, tokenizer)}")
    return outcomes


def verify_state(state_dir: str | Path, config: RunConfig | None = None, progress: bool = True) -> StateVerification:
    """Re-check every applied request's forget probes, and general knowledge, on the current model."""
    config = config or RunConfig()
    with StateDir(state_dir) as state:
        if not state.initialised():
            raise UnlearnError(f"{state_dir} is not a state directory (no ledger); create one with `unlearn apply`")
        base, tokenizer = _open_with_base(state, None, config, None)
        runner = SequenceRunner(state, base, tokenizer, config, progress, print)
        applied = state.ledger.entries("applied")
        groups = {"general": builtin_general_probes()}
        baseline = runner.baseline(groups)
        current = state.assemble(base)
        result = evaluate_sequence_probes(current, tokenizer, groups, {e.id: e.sealed_probes for e in applied},
                                          runner.salt, config.eval, runner._bar("verifying every applied request"))
        then = {e.id: e.accuracy("after") or 0.0 for e in applied}
        decision = verify(result, baseline, then, runner.sequence)
        with state.ledger.transaction() as conn:
            state.ledger.log(conn, now_iso(), None, "verified", "passed" if decision.passed else decision.reason)
    return StateVerification(decision, len(applied), result.earlier, result.accuracy["general"], baseline["general"])


def remove_request(state_dir: str | Path, request_id: str, config: RunConfig | None = None,
                   export: bool = True) -> Path | None:
    """Take one applied request's update out of the model again (techniques that keep updates apart)."""
    config = config or RunConfig()
    with StateDir(state_dir) as state:
        if not state.initialised():
            raise UnlearnError(f"{state_dir} is not a state directory (no ledger)")
        seq = from_dict(SequenceConfig, state.meta["sequence"], "sequence")
        entry = state.ledger.get(request_id)
        if entry is None:
            raise UnlearnError(f"no request '{request_id}' in the ledger; see `unlearn ledger --state {state_dir}`")
        if entry.status != "applied":
            raise UnlearnError(f"request '{request_id}' is {entry.status.replace('_', ' ')}, not applied: nothing to remove")
        if not traits(seq).removable or entry.folded:
            raise UnlearnError(f"the technique '{seq.technique}' folds updates together, so one request cannot be "
                               "taken out; use technique task_vector or lora with lora_merge=false for removable updates")
        now = now_iso()
        with state.ledger.transaction() as conn:
            state.ledger.update(conn, request_id, status="rolled_back", reason=f"removed on request ({now})",
                                checkpoint=None, checkpoint_sha256=None)
            state.ledger.log(conn, now, request_id, "removed")
        state.remove_orphans()
        if not export:
            return None
        base, tokenizer = _open_with_base(state, None, config, None)
        return export_current(state, base, tokenizer)
