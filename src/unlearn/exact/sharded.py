"""Exact unlearning of fine-tuned data: sharded, isolated training that retrains only the touched shards.

`teach_shards` splits the teaching data into K shards (data.py) and trains one update per shard, each with its
own seed and the same recipe; the served model is base + the sum of the shard updates. By default the shards
form a chain (`ShardConfig.chain`): shard k starts from base + shards 0..k-1, and a removal retrains the first
shard that held the request's data and every later one. With `chain=false` every shard starts from the base
model and a removal retrains only the shards that held the data (SISA's isolation, about 1/K of the cost).
Either way a retrained shard uses its recorded seed and its data without the removed items, so the served
model is exactly what teaching would have produced had the data never been given: every shard's update is a
function of (its starting point, recipe, seed, that shard's data) alone.
(SISA: Bourtoule et al. 2021, "Machine Unlearning", IEEE S&P.)

    DIR/shards.json              manifest: base model, recipe, every shard's items, seed, file and hashes, the ledger
                                 (salted fingerprints of the removed items); keep the directory private
    DIR/replay.json              the general-knowledge replay answers every shard trains with (fixed at teaching)
    DIR/shards/shard-K-*.safetensors   one update per shard (dense deltas or LoRA factors)
    DIR/model/                   the served model as a Hugging Face folder
    DIR/lock                     held by the one process changing the state

The manifest is the commit point: a removal writes its new shard files first, then the manifest (one atomic
rename), then deletes the old files and exports the model. A crash before the rename leaves the state as it
was (the new files are unreferenced and deleted on the next open); after it, the next open finishes the export.
This applies to data the state taught. Knowledge the base model brought from pretraining is not in any
shard: forgetting it needs an approximate method (`unlearn apply --method ...` on a regular state).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import TrainableConfig, TrainConfig, from_dict, to_dict
from ..data.distractors import with_distractors
from ..data.request import QA, DataSpec, ForgetRequest
from ..errors import UnlearnError
from ..io import atomic_write_json, file_sha256, sha256_json
from ..metrics.text import normalise_spelling
from ..models.loading import weights_digest
from ..requests.checkpoints import (
    add_deltas,
    dense_deltas,
    dense_update,
    load_checkpoint,
    lora_update,
    save_checkpoint,
)
from ..requests.state import StateLock, now_iso
from .data import (
    TeachItem,
    assign_shards,
    check_unique,
    forget_fingerprints,
    item_fingerprint,
    item_from_dict,
    shard_data,
)

MANIFEST, REPLAY, SHARDS, MODEL, EXPORTED = "shards.json", "replay.json", "shards", "model", "shards.sha256"
SCHEMA = "unlearn.shards/1"


@dataclass
class ShardConfig:
    """How `unlearn teach` trains each shard: the demo's teaching recipe with 12 epochs instead of 8 (a shard holds
    a K-th of the items, so an epoch is a K-th of the steps; at 8 epochs the shards taught the demo's people
    less well than one run does, docs/benchmarks.md *Exact unlearning*)."""

    shards: int = 4
    group_by: str = "source"  # 'source': a source's items share a shard; 'item': every item is its own group
    seed: int = 0  # shard k trains with seed + k
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1.2e-4, epochs=12, batch_size=8, max_length=128))
    trainable: TrainableConfig = field(default_factory=lambda: TrainableConfig(mode="layers", layers="-10:"))
    replay: str = "self"  # 'self': KL to the base model on its own answers to broad prompts; 'none'
    replay_tokens: int = 48
    replay_weight: float = 1.0
    # 'kl': KL to the model the shard starts from (in a chain, base + earlier shards: drift adds up shard by
    # shard); 'nll': NLL on the base model's own replay answers, which hold every shard to the base model itself
    replay_loss: str = "kl"
    # True: shard k trains from base + shards 0..k-1, holding their items (train.anchor_weight x KL); a removal
    # retrains the touched shard and every later one. False: every shard trains from the base model alone (SISA's
    # isolation; a removal retrains only the touched shard), and the summed updates interfere (docs/benchmarks.md).
    chain: bool = True


def is_sharded_state(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def _items_sha(items: list[dict]) -> str:
    return sha256_json(items)


class ShardedState:
    """A sharded state directory opened for reading (lock=False) or for changes (lock=True)."""

    def __init__(self, directory: str | Path, lock: bool = True):
        self.directory = Path(directory)
        if not is_sharded_state(self.directory):
            raise UnlearnError(f"{self.directory} is not a sharded state (no {MANIFEST}); create one with "
                               f"`unlearn teach DATA --shards K --state {self.directory}`")
        self._lock = StateLock(self.directory) if lock else None
        if self._lock:
            self._lock.acquire()
        try:
            self.manifest = json.loads((self.directory / MANIFEST).read_text())
            if self.manifest.get("schema") != SCHEMA:
                raise UnlearnError(f"{self.directory / MANIFEST} has schema {self.manifest.get('schema')!r}, not {SCHEMA}")
            self.config = from_dict(ShardConfig, self.manifest["config"], "shards.json config")
            if self._lock:  # finish what a crash interrupted: files of an uncommitted change, a missing export
                _remove_unreferenced(self.directory, self.manifest)
                if not self.exported():
                    self.export()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._lock:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ShardedState:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def shards(self) -> list[dict]:
        return self.manifest["shards"]

    @property
    def ledger(self) -> list[dict]:
        return self.manifest["requests"]

    def seal(self, fingerprint: str) -> str:
        """The ledger's form of an item fingerprint: salted with the state's secret, so a ledger shown or copied
        elsewhere does not let anyone test guesses of what was removed (a state taught before states had a salt
        keeps plain fingerprints)."""
        salt = self.manifest.get("salt")
        return hashlib.sha256(f"{salt}\x00{fingerprint}".encode()).hexdigest() if salt else fingerprint

    def replay(self) -> list[QA]:
        path = self.directory / REPLAY
        if self.manifest.get("replay_sha256") is None:
            return []
        if file_sha256(path) != self.manifest["replay_sha256"]:
            raise UnlearnError(f"{path} does not match its checksum in {MANIFEST}: the replay data was changed")
        return [QA(r["question"], r["answer"]) for r in json.loads(path.read_text())]

    def load_base(self):
        from ..models.loading import load_model

        model, tokenizer = load_model(self.manifest["base_model"])
        if weights_digest(model) != self.manifest["base_digest"]:
            raise UnlearnError(f"the base model {self.manifest['base_model']} is not the one this state was taught "
                               "from (its weights differ); give the same model")
        return model, tokenizer

    def assemble(self, base, shards: list[dict] | None = None):
        """base + every shard's update, in place; returns the model."""
        return assemble(base, self.directory, self.shards if shards is None else shards)

    def exported(self) -> bool:
        marker = self.directory / MODEL / EXPORTED
        return marker.is_file() and marker.read_text().strip() == _shards_digest(self.shards)

    def export(self, tokenizer=None, model=None) -> Path:
        """Write DIR/model (base + every shard) unless it already matches the manifest."""
        from ..unlearner import save_model

        if self.exported():
            return self.directory / MODEL
        if model is None:
            model, tokenizer = self.load_base()
            self.assemble(model)
        card = model_card(self.manifest)
        out = save_model(model, tokenizer, self.directory / MODEL, card)
        # the marker goes in last: a crash before it only means the next open exports again
        (out / EXPORTED).write_text(_shards_digest(self.shards) + "\n")
        return out

    def write_manifest(self) -> None:
        atomic_write_json(self.directory / MANIFEST, self.manifest)


def _shards_digest(shards: list[dict]) -> str:
    return sha256_json([[s["index"], s["sha256"], s["data_sha256"]] for s in shards])


def _remove_unreferenced(directory: Path, manifest: dict) -> list[str]:
    """Delete shard files the manifest does not name (left by a crash before a commit)."""
    referenced = {s["file"] for s in manifest["shards"] if s["file"]}
    removed = []
    for path in (directory / SHARDS).glob("*"):
        if path.name not in referenced:
            path.unlink()
            removed.append(path.name)
    return removed


def model_card(manifest: dict) -> str:
    lines = [
        "# Sharded model (exact unlearning)", "",
        f"Base model: {manifest['base_model']}. {len(manifest['shards'])} shards, each trained from the base model on "
        "its own data; served as base + the sum of the shard updates.", "",
        "| shard | items | seed | update sha256 |", "|---|---|---|---|",
    ]
    lines += [f"| {s['index']} | {len(s['items'])} | {s['seed']} | {(s['sha256'] or '-')[:16]} |" for s in manifest["shards"]]
    if manifest["requests"]:
        lines += ["", "Requests honoured (the shards holding their data retrained without it):", ""]
        lines += [f"- {r['id']} ({r['hash'][:12]}): {r['items_removed']} items, shards "
                  f"{', '.join(str(s['index']) for s in r['shards'])}" for r in manifest["requests"]]
    return "\n".join(lines) + "\n"


def assemble(model, directory: Path, shards: list[dict]):
    """model + every given shard's update, in place; returns the model."""
    for shard in shards:
        if shard["file"]:
            add_deltas(model, dense_deltas(load_checkpoint(directory / SHARDS / shard["file"], shard["sha256"])))
    return model


def train_shard(start_loader, items: list[dict], config: ShardConfig, seed: int, replay: list[QA],
                earlier: list[dict], progress: bool, description: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train one shard's update from the model `start_loader` gives (the base model, or in a chain the base plus
    the earlier shards), holding `earlier` items to that model's distributions; (tensors to store, facts)."""
    from ..teaching import teach

    model, tokenizer = start_loader()
    qa, texts = shard_data([item_from_dict(i, "shard item") for i in items])
    earlier_qa, earlier_texts = shard_data([item_from_dict(i, "shard item") for i in earlier])
    before = None if config.trainable.mode == "lora" else {n: p.detach().clone() for n, p in model.named_parameters()}
    train_cfg = dataclasses.replace(config.train, seed=seed)
    torch.manual_seed(seed)  # LoRA factors are initialised before the training loop seeds itself
    start = time.perf_counter()
    model, result = teach(model, tokenizer, qa, train_cfg, config.trainable, replay=replay,
                          replay_weight=config.replay_weight if replay else 0.0, replay_loss=config.replay_loss,
                          progress=progress, description=description, texts=texts,
                          anchor=DataSpec(texts=earlier_texts, qa=earlier_qa) if earlier else None)
    seconds = time.perf_counter() - start
    tensors = lora_update(model) if before is None else dense_update(model, before)
    return tensors, {"seconds": round(seconds, 2), "steps": result.steps}


def _write_shard(directory: Path, index: int, items: list[dict], seed: int, tensors: dict, facts: dict,
                 base_model: str) -> dict:
    data_sha = _items_sha(items)
    # a fresh name: in a chain, a retrained shard has the same data but another update, and the old file must
    # stay until the manifest no longer names it
    name = f"shard-{index}-{data_sha[:12]}-{secrets.token_hex(4)}.safetensors"
    digest = save_checkpoint(directory / SHARDS / name, tensors,
                             {"shard": str(index), "seed": str(seed), "data_sha256": data_sha, "base_model": base_model})
    return {"index": index, "seed": seed, "items": items, "data_sha256": data_sha, "file": name, "sha256": digest,
            "teach_seconds": facts["seconds"], "steps": facts["steps"]}


def _empty_shard(index: int, seed: int) -> dict:
    return {"index": index, "seed": seed, "items": [], "data_sha256": _items_sha([]), "file": None, "sha256": None,
            "teach_seconds": 0.0, "steps": 0}


def starting_point(k: int, shards: list[dict], base_loader, directory: Path, chain: bool):
    """Where shard k's training starts and what it holds: the base model and nothing (isolated shards), or
    base + shards 0..k-1 and their items (a chain)."""
    if not chain:
        return base_loader, []

    def start_loader():
        model, tokenizer = base_loader()
        return assemble(model, directory, shards[:k]), tokenizer

    return start_loader, [i for s in shards[:k] for i in s["items"]]


def train_shards(base_loader, directory: Path, base_model: str, config: ShardConfig, shards: list[dict],
                 indices: list[int], replay: list[QA], progress: bool, verb: str) -> list[dict]:
    """Train the shards at `indices` (in order) from their recorded items and seeds, write their updates and
    return the shard list with their new records. In a chain, shard k starts from base + shards 0..k-1 as they
    stand in the returned list, so `indices` must run to the last shard."""
    new = list(shards)
    for k in indices:
        rows, seed = new[k]["items"], new[k]["seed"]
        if not rows:
            new[k] = _empty_shard(k, seed)
            continue
        start_loader, earlier = starting_point(k, new, base_loader, directory, config.chain)
        tensors, facts = train_shard(start_loader, rows, config, seed, replay, earlier, progress,
                                     f"{verb} shard {k + 1}/{len(new)} ({len(rows)} items)")
        new[k] = _write_shard(directory, k, rows, seed, tensors, facts, base_model)
    return new


def teach_shards(items: list[TeachItem], state_dir: str | Path, base_model: str, config: ShardConfig,
                 progress: bool = True, echo=print) -> Path:
    """Teach `items` in config.shards shards into a new state directory; returns DIR/model."""
    from ..models.loading import load_model

    directory = Path(state_dir)
    _check_new_state(directory)
    if config.replay not in ("self", "none"):
        raise UnlearnError(f"replay '{config.replay}' is unknown; use 'self' or 'none'")
    if config.replay_loss not in ("kl", "nll"):
        raise UnlearnError(f"replay_loss '{config.replay_loss}' is unknown; use 'kl' or 'nll'")
    check_unique(items, "teaching data")
    assignment = assign_shards(items, config.shards, config.group_by)
    directory.mkdir(parents=True, exist_ok=True)
    lock = StateLock(directory)
    lock.acquire()
    try:
        _check_new_state(directory)  # again under the lock: another teaching may have finished meanwhile
        for leftover in (directory / SHARDS).glob("*"):  # an earlier teaching that did not finish
            leftover.unlink()
        base, tokenizer = load_model(base_model)
        digest = weights_digest(base)
        replay = _replay_answers(base_model, config) if config.replay == "self" else []
        replay_sha = None
        if replay:
            atomic_write_json(directory / REPLAY, [{"question": q.question, "answer": q.answer} for q in replay])
            replay_sha = file_sha256(directory / REPLAY)
        planned = [{**_empty_shard(k, config.seed + k),
                    "items": [item.to_dict() for item, s in zip(items, assignment, strict=True) if s == k]}
                   for k in range(config.shards)]
        shards = train_shards(lambda: load_model(base_model), directory, base_model, config, planned,
                              list(range(config.shards)), replay, progress, "teaching")
        manifest = {"schema": SCHEMA, "created": now_iso(), "base_model": base_model, "base_digest": digest,
                    "config": to_dict(config), "replay_sha256": replay_sha, "shards": shards, "requests": [],
                    "salt": secrets.token_hex(16)}
        atomic_write_json(directory / MANIFEST, manifest)
        # still under the lock: export from the base model in memory (opening the state for changes would
        # load and assemble it a second time)
        state = ShardedState(directory, lock=False)
        out = state.export(tokenizer, state.assemble(base))
    finally:
        lock.release()
    total = sum(s["teach_seconds"] for s in shards)
    echo(f"taught {len(items)} items in {config.shards} shards ({', '.join(str(len(s['items'])) for s in shards)} "
         f"items) in {total:.0f} s of training; served model: {out}")
    empty = sum(not s["items"] for s in shards)
    if empty:
        echo(f"note: {empty} of {config.shards} shards hold no items (a group's shard is a hash of its key, so few "
             "groups may leave some empty); a removal then costs a larger share of the teaching than 1/K")
    return out


def _check_new_state(directory: Path) -> None:
    if is_sharded_state(directory):
        raise UnlearnError(f"{directory} already holds a sharded state; forget with `unlearn apply REQUEST --state "
                           f"{directory}`, or teach into a new directory")
    if directory.exists() and any(p.name not in (SHARDS, REPLAY, "lock") and not p.name.startswith(".")
                                  for p in directory.iterdir()):
        raise UnlearnError(f"{directory} exists and is not a sharded state; teach into a new or empty directory")


def _replay_answers(base_model: str, config: ShardConfig) -> list[QA]:
    from ..teaching import self_replay

    return self_replay(base_model, config.replay_tokens)


@dataclass
class ExactOutcome:
    id: str
    status: str  # applied | skipped
    message: str
    entry: dict | None = None


def plan_removal(state: ShardedState, request: ForgetRequest) -> dict[int, list[str]]:
    """Shard index -> fingerprints of the request's items it holds. Items an earlier request removed are
    fine; an item no shard ever held is an error (nothing is changed)."""
    wanted = forget_fingerprints(request)
    if not wanted:
        raise UnlearnError(f"request {request.id} has no forget data to remove")
    holder = {item_fingerprint(item_from_dict(i, "shard item")): s["index"] for s in state.shards for i in s["items"]}
    removed_before = {f for r in state.ledger for f in r["fingerprints"]}
    plan: dict[int, list[str]] = {}
    missing = 0
    for fingerprint in wanted:
        if fingerprint in holder:
            plan.setdefault(holder[fingerprint], []).append(fingerprint)
        elif state.seal(fingerprint) not in removed_before:
            missing += 1
    if missing:
        first = next(_describe(request, f, state.shards) for f in wanted
                     if f not in holder and state.seal(f) not in removed_before)
        raise UnlearnError(
            f"{missing} of {len(wanted)} forget items of request {request.id} were never taught by this state "
            f"(first: {first}); nothing was changed. The exact path removes only data the state taught: check the "
            "request's wording against the teaching data, or use an approximate method for other knowledge")
    return plan


def _describe(request: ForgetRequest, fingerprint: str, shards: list[dict]) -> str:
    """The request item with this fingerprint, and, for a question the state taught with another answer, both
    answers (what usually differs is the wording of the answer)."""
    for text in request.forget.texts:
        if item_fingerprint(text) == fingerprint:
            return repr(text[:60])
    for qa in request.forget.qa:
        if item_fingerprint(qa) == fingerprint:
            asked = normalise_spelling(qa.question)
            taught = next((i["answer"] for s in shards for i in s["items"]
                           if "question" in i and normalise_spelling(i["question"]) == asked), None)
            if taught is None:
                return f"the question {qa.question[:80]!r}, which no shard holds"
            return (f"the question {qa.question[:80]!r}: the state taught the answer {taught[:120]!r}, the request "
                    f"gives {qa.answer[:120]!r}")
    return fingerprint[:12]


def apply_exact(request: ForgetRequest, state_dir: str | Path, progress: bool = True, evaluate: bool = True,
                echo=print) -> ExactOutcome:
    """Honour one request on a sharded state: retrain the shards holding its data without it, commit, export."""
    with ShardedState(state_dir) as state:
        earlier = next((r for r in state.ledger if r["id"] == request.id), None)
        if earlier is not None:
            if earlier["hash"] != request.content_hash():
                raise UnlearnError(f"request id {request.id} is already in the ledger with different content; "
                                   "give the new request another id")
            state.export()
            return ExactOutcome(request.id, "skipped", f"{request.id} was already applied on {earlier['applied']}", earlier)
        plan = plan_removal(state, request)
        if not plan:
            removed_by = sorted({r["id"] for r in state.ledger for f in forget_fingerprints(request)
                                 if state.seal(f) in r["fingerprints"]})
            return ExactOutcome(request.id, "skipped", f"every forget item of {request.id} was already removed (by "
                                f"{', '.join(removed_by)})")
        # distractors are drawn before anything is retrained (a generator that cannot serve the request fails
        # here, with nothing changed), leaving out every value the state's teaching data mentions
        probed = with_distractors(request, taught_texts_of(state.shards)) if evaluate and request.probes.groups() \
            else None
        replay = state.replay()
        start = time.perf_counter()
        kept = [dict(shard) for shard in state.shards]
        for index, prints in plan.items():
            drop = set(prints)
            kept[index]["items"] = [i for i in kept[index]["items"]
                                    if item_fingerprint(item_from_dict(i, "shard item")) not in drop]
        # isolated shards: only those that held the data; a chain: from the first of them to the last shard
        indices = list(range(min(plan), len(kept))) if state.config.chain else sorted(plan)
        new_shards = train_shards(state.load_base, state.directory, state.manifest["base_model"], state.config, kept,
                                  indices, replay, progress, "retraining")
        retrained = [{"index": k, "items_before": len(state.shards[k]["items"]), "items_after": len(new_shards[k]["items"]),
                      "data_sha256_before": state.shards[k]["data_sha256"], "data_sha256_after": new_shards[k]["data_sha256"],
                      "sha256_before": state.shards[k]["sha256"], "sha256_after": new_shards[k]["sha256"],
                      "seconds": new_shards[k]["teach_seconds"], "steps": new_shards[k]["steps"]} for k in indices]
        seconds = time.perf_counter() - start
        # like with like: training seconds of the retrained shards against those of training every shard
        spent, full = sum(r["seconds"] for r in retrained), sum(s["teach_seconds"] for s in new_shards)
        base, tokenizer = state.load_base()
        model = state.assemble(base, new_shards)
        entry = {"id": request.id, "hash": request.content_hash(), "target": request.target, "kind": request.kind,
                 "applied": now_iso(), "items_removed": sum(len(p) for p in plan.values()),
                 "items_requested": len(forget_fingerprints(request)),
                 "fingerprints": [state.seal(f) for p in plan.values() for f in p], "shards": retrained,
                 "retrain_seconds": round(spent, 2), "wall_seconds": round(seconds, 2),
                 "full_retrain_seconds": round(full, 2), "cost_fraction": round(spent / full, 4) if full else None}
        old_files = [s["file"] for s in state.shards if s["file"]]
        state.manifest["shards"] = new_shards
        state.manifest["requests"].append(entry)
        state.write_manifest()  # the commit point
        for name in old_files:
            if name not in {s["file"] for s in new_shards}:
                (state.directory / SHARDS / name).unlink(missing_ok=True)
        out = state.export(tokenizer, model)
        if probed is not None:  # after the commit: a failing evaluation must not undo a finished removal
            entry.update(_evaluation(model, tokenizer, probed, progress))
            state.write_manifest()
    shards_text = ", ".join(f"{s['index']} ({s['items_before']} -> {s['items_after']} items)" for s in retrained)
    echo(f"{request.id}: removed {entry['items_removed']} items; retrained shard(s) {shards_text} in {spent:.0f} s "
         f"({entry['cost_fraction'] or 0:.0%} of retraining every shard); model: {out}")
    if "evaluation_error" in entry:
        echo(f"{request.id}: the removal stands, but its evaluation failed ({entry['evaluation_error']}); "
             "check it with `unlearn eval`")
    return ExactOutcome(request.id, "applied", "removed", entry)


def taught_texts_of(shards: list[dict]) -> list[str]:
    """Every question, answer and text the shards hold (what the served model was taught)."""
    return [v for shard in shards for item in shard["items"] for k, v in item.items() if k != "source"]


def _evaluation(model, tokenizer, request: ForgetRequest, progress: bool) -> dict:
    """The ledger's record of the probes on the new model: accuracy per group and the likelihood test's shares
    ranked first and last, or the error that stopped the evaluation."""
    from ..config import EvalConfig
    from ..metrics.probes import evaluate_request

    try:
        result = evaluate_request(model, tokenizer, request, progress="evaluating" if progress else None,
                                  generation_batch_size=EvalConfig().generation_batch_size)
    except Exception as error:  # noqa: BLE001 - recorded beside the removal, which stands
        return {"evaluation_error": f"{type(error).__name__}: {error}"}
    evaluation: dict[str, Any] = {g: round(r.accuracy, 4) for g, r in result.groups.items()}
    if result.likelihood:
        evaluation["likelihood_top1"] = result.likelihood.get("top1")
        evaluation["likelihood_last"] = result.likelihood.get("last")
    return {"evaluation": evaluation}


def verify_shards(state_dir: str | Path, progress: bool = True) -> list[dict]:
    """Retrain every shard from its recorded data and seed and compare with the stored update; check that no
    removed item is in any shard. One row per shard (and one for the removed items)."""
    rows = []
    with ShardedState(state_dir) as state:
        replay = state.replay()
        held = {state.seal(item_fingerprint(item_from_dict(i, "shard item"))) for s in state.shards for i in s["items"]}
        removed = [f for r in state.ledger for f in r["fingerprints"]]
        rows.append({"check": "removed items absent", "passed": not any(f in held for f in removed),
                     "detail": f"{len(removed)} removed items, {sum(f in held for f in removed)} still in a shard"})
        for shard in state.shards:
            if shard["data_sha256"] != _items_sha(shard["items"]):
                rows.append({"check": f"shard {shard['index']}", "passed": False, "detail": "items changed since training"})
                continue
            if not shard["file"]:
                rows.append({"check": f"shard {shard['index']}", "passed": not shard["items"], "detail": "empty"})
                continue
            start_loader, earlier = starting_point(shard["index"], state.shards, state.load_base, state.directory,
                                                   state.config.chain)
            tensors, _ = train_shard(start_loader, shard["items"], state.config, shard["seed"], replay, earlier,
                                     progress, f"retraining shard {shard['index']} to compare")
            stored = load_checkpoint(state.directory / SHARDS / shard["file"], shard["sha256"])
            same = stored.keys() == tensors.keys() and all(torch.equal(stored[k], tensors[k].cpu()) for k in stored)
            gap = max((float((stored[k] - tensors[k].cpu()).abs().max()) for k in stored if k in tensors), default=0.0)
            rows.append({"check": f"shard {shard['index']}", "passed": same,
                         "detail": "bit-identical" if same else f"max |difference| {gap:.3g}"})
    return rows
