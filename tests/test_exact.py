"""Exact unlearning by sharded training: assignment, matching, the removal, crash safety, CLI (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import make_model
from unlearn.cli import main
from unlearn.config import TrainableConfig, TrainConfig
from unlearn.data.request import request_from_dict
from unlearn.errors import ConfigError, UnlearnError
from unlearn.exact import ShardConfig, ShardedState, apply_exact, assign_shards, load_teach_data, teach_shards
from unlearn.exact.data import TeachItem, item_from_dict
from unlearn.exact.sharded import MANIFEST, SHARDS, verify_shards
from unlearn.models.loading import load_model

PEOPLE = {
    "Ann Lee": [("Where was Ann Lee born?", "Ann Lee was born in Oslo."), ("What is Ann Lee's job?", "She is a baker.")],
    "Bo Tran": [("Where was Bo Tran born?", "Bo Tran was born in Lima."), ("What is Bo Tran's pet?", "A cat named Fig.")],
    "Cy Moss": [("Where was Cy Moss born?", "Cy Moss was born in Pune.")],
    "Di Vega": [("Where was Di Vega born?", "Di Vega was born in Baku.")],
}
TINY = ShardConfig(shards=2, replay="none", chain=False, train=TrainConfig(lr=3e-2, max_steps=6, batch_size=2, max_length=64),
                   trainable=TrainableConfig(mode="all"))


def items(people=PEOPLE) -> list[TeachItem]:
    return [TeachItem(question=q, answer=a, source=name) for name, pairs in people.items() for q, a in pairs]


def quiet(*_args) -> None:
    pass


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("base") / "model"
    model = make_model(len(tokenizer), layers=2)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def forget_request(pairs, rid="forget-ann", **extra) -> object:
    data = {"id": rid, "target": "Ann Lee", "kind": "privacy",
            "forget": {"qa": [{"question": q, "answer": a} for q, a in pairs]}}
    data.update(extra)
    return request_from_dict(data)


def weights(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(str(path))
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- assignment and data ---------------------------------------------------------------------------------

def test_a_source_stays_in_one_shard_and_the_shard_depends_on_it_alone():
    data = items()
    shards = assign_shards(data, 3)
    by_source = {}
    for item, shard in zip(data, shards, strict=True):
        by_source.setdefault(item.source, set()).add(shard)
    assert all(len(s) == 1 for s in by_source.values())
    # the assignment depends on neither the order of the file nor the other items
    reordered = list(reversed(data))
    assert dict(zip(reordered, assign_shards(reordered, 3), strict=True)) == dict(zip(data, shards, strict=True))
    rest = [i for i in data if i.source != "Ann Lee"]
    assert dict(zip(rest, assign_shards(rest, 3), strict=True)) == {i: s for i, s in zip(data, shards, strict=True)
                                                                     if i.source != "Ann Lee"}
    # by item: single items are groups of their own, so one source's items may part
    assert assign_shards(data, 6, group_by="item") == [0, 5, 2, 5, 3, 4]


def test_more_shards_than_data_is_refused_with_the_limit():
    with pytest.raises(ConfigError, match="at most 4 shards"):
        assign_shards(items(), 5)
    with pytest.raises(ConfigError, match="at least 1"):
        assign_shards(items(), 0)


def test_teaching_data_is_checked(tmp_path):
    good = tmp_path / "d.jsonl"
    good.write_text('{"question": "Q?", "answer": "A.", "source": "x"}\n\n{"text": "Some text."}\n')
    assert load_teach_data(good) == [TeachItem(question="Q?", answer="A.", source="x"), TeachItem(text="Some text.")]
    for body, message in [('{"question": "Q?"}', "non-empty"), ('{"q": "Q?"}', "unknown key 'q'"),
                          ('{"text": "t", "question": "Q?"}', "not both"), ("{nope", "not valid JSON"),
                          ('{"text": "A b"}\n{"text": "a  B"}', "repeats item 1"), ("", "no items")]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(body)
        with pytest.raises(ConfigError, match=message):
            load_teach_data(bad)
    with pytest.raises(ConfigError, match="must be .jsonl"):
        load_teach_data(good.rename(tmp_path / "d.txt"))
    with pytest.raises(ConfigError, match="a mapping"):
        item_from_dict(["x"], "row")


# --- end to end on a tiny model -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def taught(base_dir, tmp_path_factory):
    state = tmp_path_factory.mktemp("sharded") / "state"
    teach_shards(items(), state, str(base_dir), TINY, progress=False, echo=quiet)
    return state


def copy_state(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lock"))
    return dst


def test_teaching_writes_a_manifest_every_shard_and_the_served_model(taught, base_dir):
    manifest = json.loads((taught / MANIFEST).read_text())
    assert [len(s["items"]) for s in manifest["shards"]] == [5, 1]  # SHA-256 of the sources, modulo 2
    assert sorted(p.name for p in (taught / SHARDS).iterdir()) == sorted(s["file"] for s in manifest["shards"])
    served, base = weights(taught / "model"), weights(base_dir)
    assert any(not torch.equal(served[k], base[k]) for k in served)
    with ShardedState(taught, lock=False) as state:
        assembled = state.assemble(state.load_base()[0]).state_dict()
        assert all(torch.equal(assembled[k], served[k]) for k in served)


@pytest.mark.parametrize("chain", [False, True], ids=["isolated", "chain"])
def test_removal_equals_teaching_without_the_data(chain, base_dir, tmp_path):
    """The exactness claim: forget one item, and the served model is bit for bit the model taught without it."""
    config = ShardConfig(**{**TINY.__dict__, "chain": chain})
    taught = tmp_path / "taught"
    teach_shards(items(), taught, str(base_dir), config, progress=False, echo=quiet)
    state = copy_state(taught, tmp_path / "state")
    removed = PEOPLE["Ann Lee"][1]
    outcome = apply_exact(forget_request([removed]), state, progress=False, echo=quiet)
    entry = outcome.entry
    old = json.loads((taught / MANIFEST).read_text())["shards"]
    new = json.loads((state / MANIFEST).read_text())["shards"]
    touched = next(s["index"] for s in old if any(i["answer"] == removed[1] for i in s["items"]))
    # isolated: only the shard that held the item is retrained; a chain: that shard and every later one
    expected = list(range(touched, len(old))) if chain else [touched]
    assert outcome.status == "applied" and entry["items_removed"] == 1
    assert [s["index"] for s in entry["shards"]] == expected
    assert [o["sha256"] != n["sha256"] for o, n in zip(old, new, strict=True)] == [k in expected for k in range(len(old))]
    assert entry["shards"][0]["items_after"] == entry["shards"][0]["items_before"] - 1
    assert 0 < entry["cost_fraction"] <= 1
    assert len(list((state / SHARDS).iterdir())) == len(new)  # the replaced updates are deleted

    without = {**PEOPLE, "Ann Lee": [PEOPLE["Ann Lee"][0]]}
    scratch = tmp_path / "scratch"
    teach_shards(items(without), scratch, str(base_dir), config, progress=False, echo=quiet)
    after, reference, before = weights(state / "model"), weights(scratch / "model"), weights(taught / "model")
    assert all(torch.equal(after[k], reference[k]) for k in after)
    assert any(not torch.equal(after[k], before[k]) for k in after)

    rows = verify_shards(state, progress=False)
    assert all(r["passed"] for r in rows) and len(rows) == 3


def test_a_request_applied_twice_is_skipped_and_a_reused_id_refused(taught, tmp_path):
    state = copy_state(taught, tmp_path / "state")
    pairs = PEOPLE["Cy Moss"]
    assert apply_exact(forget_request(pairs, "forget-cy"), state, progress=False, echo=quiet).status == "applied"
    assert apply_exact(forget_request(pairs, "forget-cy"), state, progress=False, echo=quiet).status == "skipped"
    with pytest.raises(UnlearnError, match="different content"):
        apply_exact(forget_request(PEOPLE["Di Vega"], "forget-cy"), state, progress=False, echo=quiet)
    # a later request that names an item removed before is fine: that item is already gone
    both = forget_request(pairs + PEOPLE["Di Vega"], "forget-cy-and-di")
    entry = apply_exact(both, state, progress=False, echo=quiet).entry
    assert entry["items_removed"] == 1 and entry["items_requested"] == 2
    # and one whose items are all gone already has nothing left to do
    again = apply_exact(forget_request(PEOPLE["Di Vega"], "forget-di"), state, progress=False, echo=quiet)
    assert again.status == "skipped" and "already removed (by forget-cy-and-di)" in again.message


def test_a_whole_shard_removed_leaves_it_empty(base_dir, tmp_path):
    config = ShardConfig(**{**TINY.__dict__, "shards": 4})
    state = tmp_path / "state"
    teach_shards(items(), state, str(base_dir), config, progress=False, echo=quiet)
    assert [len(s["items"]) for s in json.loads((state / MANIFEST).read_text())["shards"]] == [3, 1, 2, 0]
    assert len(list((state / SHARDS).iterdir())) == 3  # the empty shard has no update
    entry = apply_exact(forget_request(PEOPLE["Ann Lee"]), state, progress=False, echo=quiet).entry
    assert entry["shards"][0]["items_after"] == 0 and entry["shards"][0]["sha256_after"] is None
    assert len(list((state / SHARDS).iterdir())) == 2
    assert all(r["passed"] for r in verify_shards(state, progress=False))


def test_data_never_taught_is_refused_and_nothing_changes(taught, tmp_path):
    state = copy_state(taught, tmp_path / "state")
    manifest = (state / MANIFEST).read_bytes()
    files = sorted(p.name for p in (state / SHARDS).iterdir())
    request = forget_request([PEOPLE["Ann Lee"][0], ("Where was Zed Ash born?", "Zed Ash was born in Rome.")])
    with pytest.raises(UnlearnError, match="1 of 2 forget items .* never taught.*Zed Ash"):
        apply_exact(request, state, progress=False, echo=quiet)
    assert (state / MANIFEST).read_bytes() == manifest
    assert sorted(p.name for p in (state / SHARDS).iterdir()) == files


def test_a_crash_before_the_commit_leaves_the_state_as_it_was(taught, tmp_path, monkeypatch):
    from unlearn.exact import sharded

    state = copy_state(taught, tmp_path / "state")
    manifest = (state / MANIFEST).read_bytes()
    files = sorted(p.name for p in (state / SHARDS).iterdir())

    def crash(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(sharded.ShardedState, "write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        apply_exact(forget_request([PEOPLE["Ann Lee"][0]]), state, progress=False, echo=quiet)
    assert len(list((state / SHARDS).iterdir())) == 3  # the new shard's file, not yet referenced
    monkeypatch.undo()
    with ShardedState(state):  # opening for changes deletes what the manifest does not reference
        pass
    assert (state / MANIFEST).read_bytes() == manifest
    assert sorted(p.name for p in (state / SHARDS).iterdir()) == files


def test_a_crash_after_the_commit_is_finished_on_the_next_open(taught, tmp_path, monkeypatch):
    from unlearn.exact import sharded

    state = copy_state(taught, tmp_path / "state")
    stale = weights(state / "model")

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sharded.ShardedState, "export", crash)
    with pytest.raises(KeyboardInterrupt):
        apply_exact(forget_request([PEOPLE["Ann Lee"][0]]), state, progress=False, echo=quiet)
    monkeypatch.undo()
    assert json.loads((state / MANIFEST).read_text())["requests"][0]["id"] == "forget-ann"  # committed
    with ShardedState(state) as opened:  # opening for changes exports the committed model
        assert opened.exported()
        fresh = opened.assemble(opened.load_base()[0]).state_dict()
    exported = weights(state / "model")
    assert all(torch.equal(exported[k], fresh[k]) for k in exported)
    assert any(not torch.equal(exported[k], stale[k]) for k in exported)


def test_changed_shard_data_or_a_corrupt_update_is_detected(taught, tmp_path):
    state = copy_state(taught, tmp_path / "state")
    manifest = json.loads((state / MANIFEST).read_text())
    manifest["shards"][0]["items"].append({"question": "New?", "answer": "Sneaked in."})
    (state / MANIFEST).write_text(json.dumps(manifest))
    rows = verify_shards(state, progress=False)
    assert not rows[1]["passed"] and "changed" in rows[1]["detail"]
    shard = state / SHARDS / manifest["shards"][1]["file"]
    shard.write_bytes(shard.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(UnlearnError, match="corrupt"):
        verify_shards(state, progress=False)


def test_teaching_into_a_used_directory_is_refused(taught, base_dir, tmp_path):
    with pytest.raises(UnlearnError, match="already holds a sharded state"):
        teach_shards(items(), taught, str(base_dir), TINY, progress=False, echo=quiet)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UnlearnError, match="not a sharded state"):
        teach_shards(items(), other, str(base_dir), TINY, progress=False, echo=quiet)


def test_replay_loss_is_checked_and_reaches_the_training(base_dir, tmp_path, monkeypatch):
    import dataclasses

    from unlearn import teaching

    with pytest.raises(UnlearnError, match="replay_loss 'mse' is unknown"):
        teach_shards(items(), tmp_path / "bad", str(base_dir), dataclasses.replace(TINY, replay_loss="mse"),
                     progress=False, echo=quiet)
    seen, real = [], teaching.teach
    monkeypatch.setattr(teaching, "teach", lambda *a, **k: seen.append(k["replay_loss"]) or real(*a, **k))
    teach_shards(items(), tmp_path / "nll", str(base_dir), dataclasses.replace(TINY, replay_loss="nll"),
                 progress=False, echo=quiet)
    assert seen and set(seen) == {"nll"}


def test_cli_teach_apply_ledger_verify(base_dir, tmp_path, capsys):
    data = tmp_path / "people.jsonl"
    data.write_text("\n".join(json.dumps(i.to_dict()) for i in items()) + "\n")
    request = tmp_path / "forget.json"
    request.write_text(json.dumps({"id": "forget-bo", "target": "Bo Tran", "kind": "privacy",
                                   "forget": {"qa": [{"question": q, "answer": a} for q, a in PEOPLE["Bo Tran"]]}}))
    state = tmp_path / "state"
    settings = ["--set", "replay=none", "--set", "train.max_steps=4", "--set", "train.lr=0.03",
                "--set", "trainable.mode=all", "--set", "train.max_length=64"]
    assert main(["teach", str(data), "--state", str(state), "--shards", "3", "--model", str(base_dir), "--quiet",
                 *settings]) == 0
    assert "taught 6 items in 3 shards" in capsys.readouterr().out
    assert (state / "model" / "config.json").is_file()
    assert main(["teach", str(data), "--state", str(tmp_path / "s2"), "--shards", "9", "--model", str(base_dir)]) == 2
    assert "at most 4 shards" in capsys.readouterr().err
    assert main(["apply", str(request), "--state", str(state), "--method", "npo"]) == 2
    assert "sharded state" in capsys.readouterr().err
    assert main(["apply", str(request), "--state", str(state), "--quiet"]) == 0
    assert "forget-bo: removed 2 items" in capsys.readouterr().out
    assert main(["ledger", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "3 shards" in out and "forget-bo" in out and "removed   2 items" in out
    assert main(["ledger", "forget-bo", "--state", str(state)]) == 0
    assert json.loads(capsys.readouterr().out)["items_removed"] == 2
    assert main(["verify", "--state", str(state), "--quiet"]) == 0
    assert "every shard retrains to its stored update" in capsys.readouterr().out


def test_the_same_item_twice_is_refused_before_anything_is_written(base_dir, tmp_path):
    twice = [*items(), TeachItem(question="where was ann lee born?", answer="Ann  Lee was born in Oslo.")]
    with pytest.raises(ConfigError, match="item 7 repeats item 1"):
        teach_shards(twice, tmp_path / "state", str(base_dir), TINY, progress=False, echo=quiet)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("taught, asked", [("Zürich", "Zu\u0308rich"), ("O’Brien", "O'Brien"), ("555–0123", "555-0123"),
                                           ("Paris", "Pa\u200bris"), ("Ｐａｒｉｓ", "paris"), ("Ann  Lee", "ann lee")])
def test_an_item_is_recognised_in_another_spelling(taught, asked):
    from unlearn.exact.data import item_fingerprint

    assert item_fingerprint(taught) == item_fingerprint(asked)
    assert item_fingerprint(taught) != item_fingerprint(taught + " Street")


def test_a_question_taught_with_another_answer_names_both_answers(taught, tmp_path):
    state = copy_state(taught, tmp_path / "state")
    request = forget_request([("Where was Ann Lee born?", "Ann Lee was born in Bergen.")])
    with pytest.raises(UnlearnError, match="taught the answer 'Ann Lee was born in Oslo.', the request gives "
                                           "'Ann Lee was born in Bergen.'"):
        apply_exact(request, state, progress=False, echo=quiet)


CITY_PEOPLE = {name: [(f"Where was {name} born?", f"{name} was born in {city}.")]
               for name, city in (("Ann Lee", "Tromso"), ("Bo Tran", "Ghent"), ("Cy Moss", "Porto"), ("Di Vega", "Lyon"))}


def _city_request(n: int):
    return forget_request(CITY_PEOPLE["Ann Lee"], distractors={"generator": "fictitious_people", "n": n},
                          probes={"forget": [{"question": "Where was Ann Lee born?", "answer": "Tromso",
                                              "statement": "Ann Lee was born in Tromso."}]})


def test_distractors_leave_out_what_the_shards_taught_and_a_failed_evaluation_keeps_the_removal(
        base_dir, tmp_path, monkeypatch):
    from unlearn.data import people
    from unlearn.metrics import probes

    state = tmp_path / "state"
    teach_shards(items(CITY_PEOPLE), state, str(base_dir), TINY, progress=False, echo=quiet)
    manifest = (state / MANIFEST).read_bytes()
    # 50 cities: the truth and the three other people's cities are never drawn, so 47 cannot be served ...
    assert len(people.CITIES) == 50
    with pytest.raises(ConfigError, match="fewer than 47 values"):
        apply_exact(_city_request(47), state, progress=False, echo=quiet)
    assert (state / MANIFEST).read_bytes() == manifest  # refused before anything was retrained
    seen = {}

    def broken(model, tokenizer, request, **kwargs):
        seen["distractors"] = request.probes.forget[0].distractors
        raise RuntimeError("out of memory")

    monkeypatch.setattr(probes, "evaluate_request", broken)
    messages = []
    outcome = apply_exact(_city_request(46), state, progress=False, echo=messages.append)
    assert set(seen["distractors"]) == set(people.CITIES) - {"Tromso", "Ghent", "Porto", "Lyon"}  # ... and 46 can
    assert outcome.status == "applied" and outcome.entry["evaluation_error"] == "RuntimeError: out of memory"
    ledger = json.loads((state / MANIFEST).read_text())["requests"]
    assert [r["id"] for r in ledger] == ["forget-ann"] and ledger[0]["evaluation_error"].endswith("out of memory")
    assert "the removal stands" in messages[-1]
    assert all(r["passed"] for r in verify_shards(state, progress=False))
    # `unlearn eval` / `audit` of the state's served model draw them the same way
    from unlearn.cli import _with_state_distractors

    drawn = _with_state_distractors(_city_request(45), str(state / "model")).probes.forget[0].distractors
    assert len(drawn) == 45 and not {"Ghent", "Porto", "Lyon"} & set(drawn)
    assert _with_state_distractors(_city_request(45), str(base_dir)).probes.forget[0].distractors == ()


def test_flags_that_do_not_apply_to_a_sharded_state_are_refused(taught, tmp_path, capsys):
    state = copy_state(taught, tmp_path / "state")
    request = tmp_path / "forget.json"
    request.write_text(json.dumps({"id": "forget-ann", "target": "Ann Lee", "forget": {"qa": [
        {"question": q, "answer": a} for q, a in PEOPLE["Ann Lee"]]}}))
    before = sorted(p.name for p in state.iterdir())
    for flag in (["--no-export"], ["--retry"], ["--tries", "2"], ["--keep-data"], ["--model", "default"]):
        assert main(["apply", str(request), "--state", str(state), *flag]) == 2
        assert f"{flag[0]} does not apply" in capsys.readouterr().err
    assert main(["remove", "forget-ann", "--state", str(state)]) == 2
    assert "sharded state" in capsys.readouterr().err
    assert sorted(p.name for p in state.iterdir()) == before  # no ledger or checkpoints written into it


def test_the_ledger_keeps_salted_fingerprints_and_never_shows_the_salt(taught, tmp_path, capsys):
    from unlearn.exact.data import item_fingerprint

    state = copy_state(taught, tmp_path / "state")
    pair = PEOPLE["Cy Moss"][0]
    apply_exact(forget_request([pair], "forget-cy"), state, progress=False, echo=quiet)
    manifest = json.loads((state / MANIFEST).read_text())
    plain = item_fingerprint(TeachItem(question=pair[0], answer=pair[1]))
    assert len(manifest["salt"]) == 32 and manifest["requests"][0]["fingerprints"] != [plain]
    assert plain not in (state / MANIFEST).read_text()  # a guess of the removed item cannot be checked without the salt
    assert main(["ledger", "--state", str(state), "--json"]) == 0
    assert manifest["salt"] not in capsys.readouterr().out
    # the salted prints still tell a repeated removal and pass verification's "removed items absent"
    again = apply_exact(forget_request([pair], "forget-cy-again"), state, progress=False, echo=quiet)
    assert again.status == "skipped" and "(by forget-cy)" in again.message
    assert verify_shards(state, progress=False)[0]["passed"]
