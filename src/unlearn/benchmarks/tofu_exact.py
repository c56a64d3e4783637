"""`unlearn bench tofu exact`: exact unlearning (sharded retraining) on TOFU, beside the approximate methods.

The setting's authors are taught with the benchmark's own recipe (TofuBenchSpec.teach) in K chained shards, an
author's 20 QA pairs always in one shard (`unlearn.exact`); the forget split is then removed as one request,
which retrains the shards that held its authors and every later one, from their recorded seeds, without those
authors. Two rows come out: the sharded model as taught (it saw every author, like the target) and after the
removal, both evaluated with the TOFU protocol against the reference retain model, so forget quality and
model utility sit in the same table as the target, the retain model, the ceiling and every method.

By construction the model after the removal is the sharded teaching of the retain authors alone; its forget
quality against the (monolithically taught) reference retain model measures how much the sharded recipe
itself differs from the reference one, as the ceiling row measures it for another seed of the same recipe.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..config import to_dict, with_overrides
from ..errors import UnlearnError
from ..exact.data import TeachItem
from ..exact.sharded import MANIFEST, MODEL, ShardConfig, apply_exact, is_sharded_state, teach_shards
from ..io import sha256_json
from .tofu_bench import RESULT_SCHEMA, Prepared, TofuBenchSpec, evaluated_once, prepare, tofu_request
from .tofu_data import QA_PER_AUTHOR

DEFAULT_SHARDS = 5
EXACT_METHOD = "exact_sharded"


def exact_shard_config(spec: TofuBenchSpec, shards: int = DEFAULT_SHARDS,
                       overrides: list[str] | None = None) -> ShardConfig:
    """Every shard trains with the benchmark's teaching recipe (and its replay, if the spec has one);
    `overrides` (`key=value`) change any ShardConfig field, e.g. `chain=false` or `train.epochs=6`."""
    base = ShardConfig(shards=shards, group_by="source", seed=spec.teach.seed, train=spec.teach,
                       trainable=spec.teach_trainable, replay="self" if spec.replay_weight > 0 else "none",
                       replay_weight=spec.replay_weight if spec.replay_weight > 0 else 1.0)
    config = with_overrides(ShardConfig, base, overrides, "shard setting")
    if config.shards < 1:
        raise UnlearnError(f"shards must be at least 1, got {config.shards}")
    if config.group_by != "source":
        raise UnlearnError("the TOFU exact row keeps each author in one shard (group_by=source); "
                           f"group_by={config.group_by!r} would spread an author over several shards")
    return config


def author_items(rows, authors: tuple[int, ...]) -> list[TeachItem]:
    """TOFU rows (20 per author, in author order) as teaching items whose source is their author."""
    if len(rows) != QA_PER_AUTHOR * len(authors):
        raise UnlearnError(f"{len(rows)} TOFU rows for {len(authors)} authors: expected {QA_PER_AUTHOR} per author")
    return [TeachItem(question=r.question, answer=r.answer, source=f"tofu-author-{authors[i // QA_PER_AUTHOR]}")
            for i, r in enumerate(rows)]


def exact_state_dir(prepared: Prepared, config: ShardConfig) -> Path:
    """One state per forget split and shard configuration, beside the setting's cached models."""
    return prepared.directory / f"exact-forget{prepared.percent:02d}-{sha256_json(to_dict(config))[:12]}"


def _applied(state_dir: Path, request_id: str) -> bool:
    return any(r["id"] == request_id for r in json.loads((state_dir / MANIFEST).read_text())["requests"])


def run_exact(spec: TofuBenchSpec, percent: int = 10, shards: int = DEFAULT_SHARDS,
              overrides: list[str] | None = None, progress: bool = True, prepared: Prepared | None = None,
              echo=print) -> dict:
    """Teach the setting in shards (once), evaluate it, remove the forget split exactly, evaluate again.
    Every stage is cached, so an interrupted run resumes; the result has run_method's schema plus `taught`
    (the sharded model before the removal) and `removal` (the ledger entry: shards retrained, cost)."""
    config = exact_shard_config(spec, shards, overrides)
    prepared = prepared or prepare(spec, percent, progress)
    splits = prepared.splits
    state_dir = exact_state_dir(prepared, config)
    timings: dict[str, float] = {}
    if not is_sharded_state(state_dir):
        items = author_items(splits.retain, splits.retain_authors) + author_items(splits.forget, splits.forget_authors)
        start = time.perf_counter()
        teach_shards(items, state_dir, spec.base_model, config, progress, echo)
        timings["teach_s"] = time.perf_counter() - start
    request = tofu_request(splits, percent)
    taught_path = state_dir.with_name(state_dir.name + "-eval-taught.json")
    taught_eval = None
    if taught_path.is_file() or not _applied(state_dir, request.id):
        taught_eval = evaluated_once(taught_path, state_dir / MODEL, spec, splits, "exact: taught", prepared.retain_eval,
                                 progress, timings)
    start = time.perf_counter()
    outcome = apply_exact(request, state_dir, progress, evaluate=False, echo=echo)
    if outcome.status == "applied":
        timings["remove_s"] = time.perf_counter() - start
    removed_eval = evaluated_once(state_dir.with_name(state_dir.name + "-eval-removed.json"), state_dir / MODEL, spec,
                              splits, "exact: removed", prepared.retain_eval, progress, timings)
    manifest = json.loads((state_dir / MANIFEST).read_text())
    entry = outcome.entry or next(r for r in manifest["requests"] if r["id"] == request.id)
    return {
        "schema": RESULT_SCHEMA,
        "status": "ok",
        "setting": spec.setting,
        "split": f"forget{percent:02d}",
        "method": {"name": EXACT_METHOD},
        "overrides": list(overrides or []),
        "config": to_dict(config),
        "spec": to_dict(spec),
        "state": str(state_dir),
        "summary": removed_eval.summary,
        "taught": taught_eval.summary if taught_eval else None,
        "removal": {k: entry.get(k) for k in ("items_removed", "retrain_seconds", "full_retrain_seconds",
                                              "cost_fraction", "wall_seconds")}
        | {"shards_retrained": [s["index"] for s in entry.get("shards", [])],
           "shard_sizes": [len(s["items"]) // QA_PER_AUTHOR for s in manifest["shards"]]},
        "timings": timings,
    }


def exact_rows(result: dict) -> list[tuple[str, dict | None]]:
    """Table rows of an exact run: the sharded model as taught (when known) and after the removal."""
    k = result["config"]["shards"]
    rows = [(f"exact {k} shards: taught", result["taught"])] if result.get("taught") else []
    return rows + [(f"exact {k} shards: {result['split']} removed", result["summary"])]
