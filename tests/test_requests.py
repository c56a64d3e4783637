"""Removal requests over time: sealed probes, verification, checkpoints, the ledger, `unlearn apply` end to
end on a tiny model that knows five facts, and the crash test (SIGKILL at every named point, then rerun)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearn.config import (
    RunConfig,
    SequenceConfig,
    TrainableConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    to_dict,
)
from unlearn.data.request import QA, DataSpec, ForgetRequest, Probe, request_from_dict
from unlearn.errors import ConfigError, UnlearnError
from unlearn.metrics.text import contains_answer
from unlearn.requests import apply_requests, remove_request, verify_state
from unlearn.requests.checkpoints import LORA_A, LORA_B, dense_deltas, load_checkpoint, save_checkpoint
from unlearn.requests.forgotten import data_fingerprints, without_forgotten
from unlearn.requests.ledger import Ledger
from unlearn.requests.orthogonal import orthogonality_penalty
from unlearn.requests.sealed import seal_probe, sealed_correct
from unlearn.requests.state import StateDir
from unlearn.requests.verification import SequenceEvaluation, Verification, verify

from .conftest import make_model

FACTS = {"Ada": "Oslo", "Bo": "Rome", "Cy": "Lima"}
GENERAL = [("Sky colour?", "Blue"), ("Grass colour?", "Green")]
# every request: tiny budgets; permissive checks unless a test tightens them
BASE_OVERRIDES = ["train.max_steps=3", "train.batch_size=1", "train.lr=1e-3", "trainable.mode=all", "eval.max_new_tokens=6",
                  "eval.batch_size=8", "sequence.max_forget_accuracy=1.0", "sequence.utility_tolerance=0.99",
                  "sequence.keep_checkpoints=1", "method.name=grad_diff"]


# --- pure pieces ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("generation, answer, aliases", [
    ("She was born in Oslo.", "Oslo", ()),
    ("She was born in Osloville.", "Oslo", ()),
    ("The number is 555-0101, call it", "555-0101", ()),
    ("The number is 5550101, call it", "555-0101", ()),
    ("The number is 555-0102", "555-0101", ()),
    ("It is the New York Times", "New York", ()),
    ("york new", "New York", ()),
    ("six of them", "6", ("six",)),
    ("", "Oslo", ()),
    ("The answer: a violin maker!", "Violin Maker", ()),
])
def test_sealed_probe_gives_the_same_verdict_as_the_clear_answer(generation, answer, aliases):
    sealed = seal_probe(Probe("q?", answer, aliases=aliases), "salt")
    expected = any(contains_answer(generation, a) for a in (answer, *aliases))
    assert sealed_correct(generation, sealed, "salt") == expected
    assert set(sealed) == {"question", "answers", "numbers"}  # hashes only
    assert all(len(h) == 64 for _, h in sealed["answers"]) and all(len(h) == 64 for h in sealed["numbers"])
    assert not sealed_correct(generation, sealed, "other salt") or not expected


def _after(forget=0.0, para=0.0, neighbour=1.0, general=1.0, earlier=None):
    accuracy = {"forget": forget, "forget_paraphrase": para, "neighbour": neighbour, "general": general}
    return SequenceEvaluation(accuracy, dict.fromkeys(accuracy, 4), earlier or {})


def test_verification_statuses():
    cfg = SequenceConfig(max_forget_accuracy=0.1, relapse_tolerance=0.0, utility_tolerance=0.1)
    baseline = {"neighbour": 0.8, "general": 0.5}
    assert verify(_after(neighbour=0.72, general=0.45), baseline, {}, cfg).status == "applied"
    assert verify(_after(forget=0.25), baseline, {}, cfg).status == "rolled_back"
    assert verify(_after(para=0.2), baseline, {}, cfg).status == "rolled_back"
    relapse = verify(_after(earlier={"r1": 0.3, "r2": 0.1}), baseline, {"r1": 0.0, "r2": 0.0}, cfg)
    assert relapse.status == "rolled_back" and "r1" in relapse.reason and "r2" not in relapse.reason
    # an earlier request that was applied at 0.25 may stay at 0.25, not rise above
    assert verify(_after(earlier={"r1": 0.25}), baseline, {"r1": 0.25}, cfg).status == "applied"
    damaged_after = _after(forget=0.5, neighbour=0.71)
    damaged = verify(damaged_after, baseline, {}, cfg)
    assert damaged.status == "rejected" and "neighbour" in damaged.reason
    stored = damaged_after.stored(keep_data=False)
    assert SequenceEvaluation.from_stored(stored, "the ledger") == damaged_after  # the ledger's form reads back
    with pytest.raises(ConfigError, match="'groups' must map"):
        SequenceEvaluation.from_stored({"groups": {"forget": 0.5}}, "the ledger")


def test_orthogonality_penalty_by_hand():
    a_old = [torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])]
    assert orthogonality_penalty({"w": torch.tensor([[0.0, 0.0, 2.0]])}, {"w": a_old}) == 0
    # A_new A_old^T = [[1, 2]] -> squared Frobenius norm 5; a module no earlier adapter touched adds nothing
    value = orthogonality_penalty({"w": torch.tensor([[1.0, 2.0, 3.0]]), "v": torch.ones(1, 3)}, {"w": a_old})
    assert value.item() == pytest.approx(5.0)
    assert orthogonality_penalty({"w": torch.ones(1, 3)}, {}).item() == 0


def test_checkpoint_roundtrip_checksum_and_lora_factors(tmp_path):
    a, b = torch.randn(2, 3), torch.randn(4, 2)
    tensors = {LORA_A + "x.weight": a, LORA_B + "x.weight": b, "dense:y": torch.ones(2)}
    sha = save_checkpoint(tmp_path / "c.safetensors", tensors, {"request": "r"})
    loaded = load_checkpoint(tmp_path / "c.safetensors", sha)
    deltas = dense_deltas(loaded)
    assert torch.allclose(deltas["x.weight"], b @ a) and torch.equal(deltas["y"], torch.ones(2))
    with open(tmp_path / "c.safetensors", "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        handle.write(b"\x00")
    with pytest.raises(UnlearnError, match="corrupt"):
        load_checkpoint(tmp_path / "c.safetensors", sha)
    with pytest.raises(UnlearnError, match="missing"):
        load_checkpoint(tmp_path / "gone.safetensors", sha)


def test_ledger_transaction_is_all_or_nothing(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    with pytest.raises(RuntimeError), ledger.transaction() as conn:
        ledger.insert(conn, id="r", content_hash="h", target="t", kind="other", counts={}, method={}, settings={},
                      technique="sequential", status="pending", received="now", sealed_probes=[])
        raise RuntimeError("crash inside the transaction")
    assert ledger.entries() == []


def test_stealthy_request_retain_sets():
    """The benchmark's stealthy request: common words to forget; its retain set either protects the
    neighbours (their facts) or, written by the attacker, anchors nothing the probes check."""
    from unlearn.benchmarks.demo import DemoSpec
    from unlearn.benchmarks.sequential import COMMON, N_NEIGHBOURS, stealthy_request
    from unlearn.data.people import generate_people

    spec = DemoSpec(n_people=5)
    people = generate_people(spec.n_people, spec.seed)
    protected, own = stealthy_request(people, spec), stealthy_request(people, spec, retain="own")
    common = set(COMMON.split())
    for request in (protected, own):
        assert all(set(qa.answer.split()) <= common for qa in request.forget.qa)
        assert {p.answer for p in request.probes.forget} <= common
    neighbour_answers = {p.answer for p in protected.probes.neighbour}
    assert len(protected.retain.qa) == 8 * N_NEIGHBOURS
    assert not any(a in qa.answer for qa in own.retain.qa for a in neighbour_answers)
    assert protected.id != own.id
    with pytest.raises(ValueError, match="retain must be"):
        stealthy_request(people, spec, retain="nobody")


def test_retain_items_that_requests_forget_are_left_out():
    salt = "s"
    forget = DataSpec(texts=["Ann lives at 4 Elm Road."], qa=[QA("Where was Ann born?", "Ghent.")])
    forgotten = data_fingerprints(DataSpec(qa=[QA("Where was Bob born?", "Oslo.")]), salt)
    request = ForgetRequest(
        id="r", target="Ann", forget=forget,
        retain=DataSpec(texts=["ann lives at  4 Elm road.", "Cy lives at 9 Oak Lane."],
                        qa=[QA("where was BOB born?", "Oslo."), QA("Where was Bob born?", "Rome."),
                            QA("Where was Ann born?", "Ghent.", focus=("Ghent",))]),
        anchor=DataSpec(qa=[QA("Where was Bob born?", "Oslo."), QA("Sky colour?", "Blue.")]))
    trained, dropped = without_forgotten(request, forgotten, salt)
    # case and spacing do not matter, the answer does; focus marks do not
    assert trained.retain.texts == ["Cy lives at 9 Oak Lane."]
    assert trained.retain.qa == [QA("Where was Bob born?", "Rome.")]
    assert trained.anchor.qa == [QA("Sky colour?", "Blue.")]
    assert dropped == {"retain": 3, "anchor": 1}
    assert trained.forget == forget and request.content_hash() != trained.content_hash()
    assert len(request.retain) == 5  # the request itself is not changed
    # another salt, other fingerprints: nothing from the earlier request matches
    assert without_forgotten(request, data_fingerprints(DataSpec(qa=[QA("Where was Bob born?", "Oslo.")]), "t"),
                             salt)[1] == {"retain": 2}
    clean = ForgetRequest(id="c", target="Ann", forget=forget, retain=DataSpec(texts=["Cy lives at 9 Oak Lane."]))
    assert without_forgotten(clean, forgotten, salt) == (clean, {})


# --- end to end on a tiny model that knows five facts --------------------------------------------------------

@pytest.fixture(scope="module")
def knowing_dir(tmp_path_factory, tokenizer):
    """A 2-layer tiny model that answers the five questions correctly, saved as a model directory."""
    from unlearn.metrics.generation import generate_answers
    from unlearn.models.params import select_trainable
    from unlearn.train import FineTune, TrainingData, train
    from unlearn.unlearner import encode_spec

    qa = [QA(f"Where was {n} born?", f"{c}.") for n, c in FACTS.items()] + [QA(q, f"{a}.") for q, a in GENERAL]
    model = select_trainable(make_model(len(tokenizer), layers=2), TrainableConfig(mode="all"))
    train(model, FineTune(retain_weight=0.0), TrainingData(encode_spec(tokenizer, DataSpec(qa=qa), 64)),
          TrainConfig(lr=1e-2, max_steps=100, batch_size=5), tokenizer.pad_token_id, progress=False)
    model.eval()
    answers = [g.text.strip() for g in generate_answers(model, tokenizer, [q.question for q in qa], 8, 8)]
    assert answers == [q.answer for q in qa], f"the knowing model did not learn its facts: {answers}"
    path = tmp_path_factory.mktemp("knowing") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def person_request(name: str, **extra) -> ForgetRequest:
    others = [n for n in FACTS if n != name]
    data = {
        "id": f"forget-{name.lower()}", "target": name, "kind": "privacy",
        "forget": {"qa": [{"question": f"Where was {name} born?", "answer": f"{FACTS[name]}."}]},
        "retain": {"qa": [{"question": f"Where was {n} born?", "answer": f"{FACTS[n]}."} for n in others]},
        "probes": {"forget": [{"question": f"Where was {name} born?", "answer": FACTS[name]}],
                   "neighbour": [{"question": f"Where was {n} born?", "answer": FACTS[n]} for n in others],
                   "general": [{"question": q, "answer": a} for q, a in GENERAL]},
    }
    data.update(extra)
    return request_from_dict(data)


def config(*overrides: str) -> RunConfig:
    return from_dict(RunConfig, apply_overrides(to_dict(RunConfig()), [*BASE_OVERRIDES, *overrides]), "config")


def quiet(*_args) -> None:
    pass


def ledger_rows(state_dir: Path) -> list[tuple]:
    with StateDir(state_dir, lock=False) as state:
        return [(e.id, e.status, e.checkpoint_sha256, e.folded) for e in state.ledger.entries()]


def test_apply_records_skips_and_refuses(knowing_dir, tmp_path, tokenizer):
    requests = [person_request("Ada"), person_request("Bo")]
    state_dir = tmp_path / "state"
    outcomes = apply_requests(requests, state_dir, str(knowing_dir), config(), progress=False, echo=quiet)
    assert [o.status for o in outcomes] == ["applied", "applied"]
    with StateDir(state_dir, lock=False) as state:
        ada = state.ledger.get("forget-ada")
        assert ada.content_hash == requests[0].content_hash() and ada.method["name"] == "grad_diff"
        assert ada.metrics_before["groups"]["forget"]["accuracy"] == 1.0
        assert ada.request is None and "Oslo" not in json.dumps(ada.__dict__, default=str)  # data not kept
        assert [c["name"] for c in state.ledger.get("forget-bo").verification["checks"]].count("no relapse: forget-ada") == 1
        # retention: keep_checkpoints=1 folded Ada's delta; the live files are exactly what the ledger names
        assert ada.folded and sorted(p.name for p in state.checkpoints.iterdir()) == sorted(state.referenced_files())
    assert (state_dir / "model" / "config.json").is_file()

    again = apply_requests(requests, state_dir, str(knowing_dir), config(), progress=False, echo=quiet)
    assert [o.status for o in again] == ["skipped", "skipped"] and "already applied" in again[0].message

    before = ledger_rows(state_dir)
    changed = person_request("Ada", description="different content, same id")
    with pytest.raises(UnlearnError, match="different content"):
        apply_requests([person_request("Cy"), changed], state_dir, str(knowing_dir), config(), progress=False, echo=quiet)
    assert ledger_rows(state_dir) == before  # refused before any work: Cy was not started either

    other = tmp_path / "other-model"  # same architecture and tokenizer, other weights
    make_model(len(tokenizer), layers=2, seed=1).save_pretrained(other)
    tokenizer.save_pretrained(other)
    with pytest.raises(UnlearnError, match="different model"):
        apply_requests([person_request("Cy")], state_dir, str(other), config(), progress=False, echo=quiet)
    with pytest.raises(UnlearnError, match="sequence settings"):
        apply_requests([person_request("Cy")], state_dir, None, config(), SequenceConfig(technique="task_vector"),
                       progress=False, echo=quiet)

    result = verify_state(state_dir, config(), progress=False)
    assert result.requests == 2 and set(result.earlier) == {"forget-ada", "forget-bo"}
    assert result.to_json()["passed"] == result.passed and result.to_json()["checks"] == result.checks


def test_a_request_that_is_not_forgotten_is_rolled_back_and_a_damaging_one_rejected(knowing_dir, tmp_path):
    state_dir = tmp_path / "state"
    strict = ["sequence.max_forget_accuracy=0.0", "sequence.utility_tolerance=0.1"]
    weak = apply_requests([person_request("Ada")], state_dir, str(knowing_dir),
                          config(*strict, "train.lr=1e-7", "train.max_steps=1"), progress=False, echo=quiet, tries=2)
    assert weak[0].status == "rolled_back" and "forgotten: forget" in weak[0].message
    assert weak[0].message.startswith("on try 2 of 2: ")  # both tries failed; the last one is what the entry shows
    damaging = apply_requests([person_request("Bo")], state_dir, str(knowing_dir),
                              config("train.lr=3e-2", "train.max_steps=8", "method.name=grad_ascent"), progress=False,
                              echo=quiet)
    assert damaging[0].status == "rejected" and "utility kept" in damaging[0].message
    with StateDir(state_dir, lock=False) as state:
        assert state.live_entries() == [] and list(state.checkpoints.iterdir()) == []
        assert state.ledger.get("forget-bo").verification["status"] == "rejected"
        ada = state.ledger.get("forget-ada").verification
        assert [t["seed"] for t in ada["failed_tries"]] == [0] and ada["training"]["seed"] == 1
        assert "forgotten: forget" in ada["failed_tries"][0]["reason"]
    # the current model is still the base model
    from safetensors.torch import load_file

    exported, base = load_file(state_dir / "model" / "model.safetensors"), load_file(knowing_dir / "model.safetensors")
    assert all(torch.equal(exported[k], base[k]) for k in base)
    skipped = apply_requests([person_request("Bo")], state_dir, None, config(), progress=False, echo=quiet)
    assert skipped[0].status == "skipped" and "--retry" in skipped[0].message
    retried = apply_requests([person_request("Bo")], state_dir, None, config(), retry=True, progress=False, echo=quiet)
    assert retried[0].status != "skipped"  # tried again (with the state's strict checks, which it fails again)
    with StateDir(state_dir, lock=False) as state:
        assert state.ledger.get("forget-bo").attempts == 2
        assert [e["event"] for e in state.ledger.events("forget-bo")] == ["received", "rejected", "retried",
                                                                          retried[0].status]


class Killed(Exception):
    """Stands in for SIGKILL in the in-process crash test of tries."""


@pytest.fixture
def first_try_fails(monkeypatch):
    """Every request's first try (training seed = the configured seed) fails verification; later tries are
    judged by the real checks. Returns the list of training seeds used, in order."""
    import unlearn.requests.apply as apply_module

    seeds: list[int] = []
    real_train, real_verify = apply_module.SequenceRunner._train, apply_module.verify

    def train(self, request, start, seed):
        seeds.append(seed)
        return real_train(self, request, start, seed)

    def verify_first_fails(after, baseline, earlier_then, cfg):
        decision = real_verify(after, baseline, earlier_then, cfg)
        if seeds[-1] == TrainConfig().seed:
            return Verification("rolled_back", "first try failed (test)", decision.checks)
        return decision

    monkeypatch.setattr(apply_module.SequenceRunner, "_train", train)
    monkeypatch.setattr(apply_module, "verify", verify_first_fails)
    return seeds


def test_a_failed_try_is_trained_again_with_the_next_seed(knowing_dir, tmp_path, first_try_fails):
    state_dir = tmp_path / "state"
    said: list[str] = []
    outcomes = apply_requests([person_request("Ada"), person_request("Bo")], state_dir, str(knowing_dir),
                              config("sequence.keep_checkpoints=2"), progress=False, echo=said.append, tries=3)
    assert [o.status for o in outcomes] == ["applied", "applied"]
    assert outcomes[0].message.startswith("on try 2 of 3: ")
    assert first_try_fails == [0, 1, 0, 1]
    assert "forget-ada: try 1 of 3 rolled back (first try failed (test)); training again with seed 1" in said
    with StateDir(state_dir, lock=False) as state:
        ada = state.ledger.get("forget-ada")
        assert ada.verification["failed_tries"] == [{"try": 1, "seed": 0, "status": "rolled_back",
                                                     "reason": "first try failed (test)", "steps": 3}]
        assert ada.verification["training"]["seed"] == 1 and ada.verification["training"]["tries"] == 2
        assert ada.attempts == 1 and ada.checkpoint.endswith("-1-try2.safetensors")
        assert [e["event"] for e in state.ledger.events("forget-ada")] == ["received", "try 1 rolled_back", "applied"]
        # the failed tries' files are gone: the directory holds exactly what the ledger names
        assert sorted(p.name for p in state.checkpoints.iterdir()) == sorted(state.referenced_files())
    with pytest.raises(UnlearnError, match="tries must be at least 1"):
        apply_requests([person_request("Cy")], state_dir, None, config(), progress=False, echo=quiet, tries=0)


@pytest.mark.parametrize("point, hit", [("training", 10), ("after-checkpoint", 2), ("before-training", 2)])
def test_a_crash_during_a_later_try_resumes_to_the_uninterrupted_state(point, hit, knowing_dir, tmp_path,
                                                                       first_try_fails, monkeypatch):
    """Killed in Bo's second try (training), after Ada's second checkpoint, or before Ada's second training:
    the rerun redoes the request from its first try and ends where an uninterrupted run ends."""
    import unlearn.requests.apply as apply_module

    requests = [person_request("Ada"), person_request("Bo")]
    apply_requests(requests, tmp_path / "reference", str(knowing_dir), config(), progress=False, echo=quiet, tries=2)
    expected = final_state(tmp_path / "reference")
    hits = {"n": 0}

    def kill_point(name: str) -> None:
        if name == point:
            hits["n"] += 1
            if hits["n"] == hit:
                raise Killed(name)

    with monkeypatch.context() as patch:
        patch.setattr(apply_module, "kill_point", kill_point)
        with pytest.raises(Killed):
            apply_requests(requests, tmp_path / "state", str(knowing_dir), config(), progress=False, echo=quiet,
                           tries=2)
    apply_requests(requests, tmp_path / "state", str(knowing_dir), config(), progress=False, echo=quiet, tries=2)
    got = final_state(tmp_path / "state")
    assert got["rows"] == expected["rows"] and got["folded"] == expected["folded"] and got["files_ok"]
    assert all(torch.equal(got["weights"][k], v) for k, v in expected["weights"].items())
    assert [status for _, status, _, _ in got["rows"]] == ["applied", "applied"]


def test_retain_data_does_not_teach_back_an_applied_request(knowing_dir, tmp_path):
    """Bo's retain set (written with Ada still in it) names Ada's fact after Ada was forgotten: it is left out
    of training, also when the ledger predates fingerprints and Ada comes later in the list."""
    state_dir = tmp_path / "state"
    apply_requests([person_request("Ada")], state_dir, str(knowing_dir), config(), progress=False, echo=quiet)
    with StateDir(state_dir, lock=False) as state, state.ledger.transaction() as conn:
        assert state.ledger.has_forgotten("forget-ada")
        conn.execute("DELETE FROM forgotten")  # as a ledger written before fingerprints were kept
    said: list[str] = []
    bo = person_request("Bo", anchor={"qa": [{"question": "Where was Ada born?", "answer": "oslo."},
                                             {"question": "Sky colour?", "answer": "Blue."}]})
    outcomes = apply_requests([bo, person_request("Ada")], state_dir, None, config(), progress=False, echo=said.append)
    assert [o.status for o in outcomes] == ["applied", "skipped"]
    assert "forget-bo: left out of training, as this or an applied request asks to forget them: 1 retain item(s), " \
           "1 anchor item(s)" in said
    with StateDir(state_dir, lock=False) as state:
        assert state.ledger.get("forget-bo").verification["training"]["left_out"] == {"retain": 1, "anchor": 1}
        assert state.ledger.get("forget-ada").verification["training"]["left_out"] == {}
        assert state.ledger.has_forgotten("forget-ada") and state.ledger.has_forgotten("forget-bo")
        ada = state.ledger.forgotten(["forget-ada"])  # one salted SHA-256 per forget item, not the item
        assert len(ada) == 1 and all(len(d) == 64 and int(d, 16) >= 0 for d in ada)


def test_task_vector_updates_can_be_removed(knowing_dir, tmp_path):
    from unlearn.models.loading import load_model

    state_dir = tmp_path / "state"
    requests = [person_request("Ada"), person_request("Bo")]
    import unlearn

    outcomes = unlearn.apply(requests, state_dir, model=str(knowing_dir), overrides=BASE_OVERRIDES,
                             technique="task_vector", progress=False)  # the public API
    assert [o.status for o in outcomes] == ["applied", "applied"]
    base, _ = load_model(str(knowing_dir))
    with StateDir(state_dir, lock=False) as state:
        bo_delta = dense_deltas(state.checkpoint_tensors(state.ledger.get("forget-bo")))
    remove_request(state_dir, "forget-ada", config())
    with StateDir(state_dir, lock=False) as state:
        assert state.ledger.get("forget-ada").status == "rolled_back"
        current = state.assemble(base)
    params = dict(current.named_parameters())
    for name, p in base.named_parameters():
        assert torch.allclose(params[name], p + bo_delta.get(name, 0), atol=1e-7)
    with pytest.raises(UnlearnError, match="not applied"):
        remove_request(state_dir, "forget-ada", config())


def test_lora_technique_stores_adapters_and_orthogonality_runs(knowing_dir, tmp_path):
    pytest.importorskip("peft")
    state_dir = tmp_path / "state"
    seq = SequenceConfig(technique="lora", lora_merge=False, lora_orthogonal=0.5, max_forget_accuracy=1.0,
                         utility_tolerance=0.99)
    outcomes = apply_requests([person_request("Ada"), person_request("Bo")], state_dir, str(knowing_dir),
                              config("trainable.lora_r=2", "train.lr=1e-3"), seq, progress=False, echo=quiet)
    assert [o.status for o in outcomes] == ["applied", "applied"]
    with StateDir(state_dir, lock=False) as state:
        entries = state.live_entries()
        assert len(entries) == 2 and not any(e.folded for e in entries)
        tensors = state.checkpoint_tensors(entries[1])
        assert tensors and all(k.startswith((LORA_A, LORA_B)) for k in tensors)
        assert next(v for k, v in tensors.items() if k.startswith(LORA_A)).shape[0] == 2  # rank 2


def test_full_disk_during_checkpoint_corrupts_nothing(knowing_dir, tmp_path, monkeypatch):
    import safetensors.torch

    real_save = safetensors.torch.save_file

    def full_disk(tensors, path, metadata=None):
        Path(path).write_bytes(b"\x00" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    state_dir = tmp_path / "state"
    apply_requests([person_request("Ada")], state_dir, str(knowing_dir), config(), progress=False, echo=quiet)
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(UnlearnError, match="No space left"):
        apply_requests([person_request("Bo")], state_dir, None, config(), progress=False, echo=quiet)
    with StateDir(state_dir, lock=False) as state:
        assert state.ledger.get("forget-bo").status == "pending"
        assert sorted(p.name for p in state.checkpoints.iterdir()) == sorted(state.referenced_files())
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    again = apply_requests([person_request("Bo")], state_dir, None, config(), progress=False, echo=quiet)
    assert again[0].status == "applied"


def test_a_second_apply_on_the_same_state_is_refused(knowing_dir, tmp_path):
    state_dir = tmp_path / "state"
    with StateDir(state_dir):
        with pytest.raises(UnlearnError, match="in use by unlearn pid"):
            StateDir(state_dir)
        with pytest.raises(UnlearnError, match="in use"):
            apply_requests([person_request("Ada")], state_dir, str(knowing_dir), config(), progress=False, echo=quiet)
    with StateDir(state_dir):  # released on close
        pass


# --- crash safety: SIGKILL at every named point, then rerun the same command --------------------------------

def write_requests(directory: Path) -> list[str]:
    paths = []
    for name in FACTS:
        path = directory / f"{name}.json"
        path.write_text(json.dumps(person_request(name).to_dict()))
        paths.append(str(path))
    return paths


def run_apply(paths: list[str], state_dir: Path, model_dir: Path, kill_at: str | None = None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("UNLEARN_KILL_AT", None)
    if kill_at:
        env["UNLEARN_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "unlearn.cli", "apply", *paths, "--state", str(state_dir), "--model",
               str(model_dir), "--quiet", *[a for o in BASE_OVERRIDES for a in ("--set", o)]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def final_state(state_dir: Path) -> dict:
    from safetensors.torch import load_file

    with StateDir(state_dir, lock=False) as state:
        rows = [(e.id, e.status, e.checkpoint_sha256, e.folded) for e in state.ledger.entries()]
        folded = (state.meta.get("folded") or {}).get("sha256")
        files = sorted(p.name for p in state.checkpoints.iterdir())
        referenced = sorted(state.referenced_files())
    weights = load_file(state_dir / "model" / "model.safetensors")
    return {"rows": rows, "folded": folded, "files_ok": files == referenced, "weights": weights}


@pytest.fixture(scope="module")
def uninterrupted(knowing_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    paths = write_requests(directory)
    result = run_apply(paths, directory / "state", knowing_dir)
    assert result.returncode == 0, result.stderr
    return paths, final_state(directory / "state")


@pytest.mark.parametrize("point", ["training:4", "checkpoint-written:2", "after-checkpoint:3", "before-ledger:2",
                                   "after-ledger", "fold-after-write", "fold-after-ledger:2", "before-export"])
def test_killed_apply_resumes_to_the_uninterrupted_state(point, knowing_dir, uninterrupted, tmp_path):
    paths, expected = uninterrupted
    state_dir = tmp_path / "state"
    killed = run_apply(paths, state_dir, knowing_dir, kill_at=point)
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    rerun = run_apply(paths, state_dir, knowing_dir)
    assert rerun.returncode == 0, rerun.stderr
    got = final_state(state_dir)
    assert got["rows"] == expected["rows"] and got["folded"] == expected["folded"] and got["files_ok"]
    assert all(torch.equal(got["weights"][k], v) for k, v in expected["weights"].items())
    assert all(status == "applied" for _, status, _, _ in got["rows"])


def test_cli_apply_ledger_verify_remove(knowing_dir, tmp_path, capsys):
    from unlearn.cli import main

    paths = write_requests(tmp_path)[:2]
    state_dir = str(tmp_path / "state")
    sets = [a for o in BASE_OVERRIDES for a in ("--set", o)]
    assert main(["apply", *paths, "--state", state_dir, "--model", str(knowing_dir), "--quiet", *sets]) == 0
    out = capsys.readouterr().out
    assert "forget-ada: applied" in out and "current model:" in out
    assert main(["ledger", "--state", state_dir]) == 0
    listing = capsys.readouterr().out
    assert "technique sequential" in listing and listing.count(" applied ") == 2
    assert main(["ledger", "--state", state_dir, "forget-bo"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "applied" and [e["event"] for e in shown["events"]] == ["received", "applied"]
    assert main(["ledger", "--state", state_dir, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed["requests"]] == ["forget-ada", "forget-bo"] and "salt" not in listed["meta"]
    assert main(["verify", "--state", state_dir, "--quiet"]) == 0
    assert "2 applied request(s): all verified" in capsys.readouterr().out
    assert main(["remove", "forget-ada", "--state", state_dir]) == 2
    assert "cannot be taken out" in capsys.readouterr().err
    assert main(["ledger", "--state", str(tmp_path / "nothing")]) == 2
    assert main(["apply", paths[0], "--state", state_dir, "--technique", "lora", "--quiet"]) == 2
    assert "sequence settings" in capsys.readouterr().err


def test_untaught_people_are_new_people_from_the_same_pools():
    from unlearn.benchmarks.sequential import untaught_people
    from unlearn.data.people import generate_people

    taught = generate_people(13, 0)
    controls = untaught_people(taught, 30)
    assert len(controls) == 30 and len({p.name for p in controls}) == 30
    assert not {p.name for p in controls} & {p.name for p in taught}
    assert {p.attributes["birthplace"] for p in controls} & {p.attributes["birthplace"] for p in taught}
    assert untaught_people(taught, 30) == controls  # deterministic
