"""The likelihood knowledge test: ranking maths, candidate texts, distractor validation and generation."""

from __future__ import annotations

import math
import random

import pytest

from tests.conftest import tiny_request_dict
from unlearn.data.distractors import fictitious_people, mentioned_in, taught_texts, with_distractors
from unlearn.data.request import QA, Probe, request_from_dict
from unlearn.errors import ConfigError
from unlearn.io import sha256_json
from unlearn.metrics.knowledge import (
    candidates_of,
    cloze_parts,
    likelihood_check,
    likelihood_checks,
    likelihood_knowledge,
    likelihood_top1,
    score_rows,
    statement_of,
    substitute,
    summarize,
    truth_last,
    truth_rank,
    truth_share,
    truth_top1,
)


def test_truth_top1_rank_and_share_by_hand():
    assert truth_top1([-1.0, -2.0, -3.0]) == 1.0
    assert truth_top1([-2.0, -1.0, -3.0]) == 0.0
    assert truth_top1([-1.0, -1.0, -3.0]) == 0.5  # a tie with one distractor: first half the time
    assert truth_last([-3.0, -2.0, -1.0]) == 1.0
    assert truth_last([-2.0, -1.0, -3.0]) == 0.0
    assert truth_last([-3.0, -3.0, -1.0]) == 0.5  # tied for last with one distractor
    assert truth_rank([-1.0, -2.0, -3.0]) == 1.0
    assert truth_rank([-3.0, -2.0, -1.0]) == 3.0
    assert truth_rank([-1.0, -1.0, -3.0]) == 1.5
    # exp(0) / (exp(0) + exp(-ln 3)) = 1 / (1 + 1/3) = 0.75
    assert truth_share([0.0, -math.log(3.0)]) == pytest.approx(0.75)
    assert likelihood_top1([[0.0, -1.0], [-1.0, 0.0]]).value == 0.5


def test_summary_averages_wordings_and_states_chance():
    probes = [Probe("Where was Ann born?", "Ghent", distractors=("Porto", "Lyon", "Graz"))]
    rows = {(0, "cloze", 0): [-1.0, -2.0, -3.0, -4.0],       # truth first
            (0, "question", 0): [-5.0, -2.0, -3.0, -4.0],    # truth last (rank 4)
            (0, "paraphrase", 0): [-1.0, -2.0, -3.0, -4.0],
            (0, "paraphrase", 1): [-3.0, -2.0, -3.0, -4.0]}  # one ahead, one tie: rank 2.5
    s = summarize(rows, probes)
    assert s["wordings"]["cloze"]["top1"] == 1.0 and s["wordings"]["question"]["top1"] == 0.0
    assert s["wordings"]["paraphrase"]["top1"] == 0.5
    assert s["wordings"]["question"]["last"] == 1.0 and s["wordings"]["cloze"]["last"] == 0.0
    assert s["last"] == pytest.approx((0.0 + 1.0 + 0.0) / 3) and s["per_probe"][0]["last"] == pytest.approx(0.25)
    assert s["top1"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert s["worst_top1"] == 1.0
    assert s["wordings"]["paraphrase"]["mean_rank"] == pytest.approx((1.0 + 2.5) / 2)
    assert s["chance_top1"] == pytest.approx(0.25) and s["chance_rank"] == pytest.approx(2.5)
    assert s["n_probes"] == 1 and s["per_probe"][0]["n_candidates"] == 4


def test_likelihood_check_against_retain_then_chance():
    unlearned = {"top1": 0.2, "chance_top1": 0.1}
    assert likelihood_check(unlearned, {"top1": 0.175})["passed"]
    assert not likelihood_check(unlearned, {"top1": 0.1})["passed"]
    assert not likelihood_check(unlearned)["passed"]            # against chance 0.1 + 0.05
    assert likelihood_check({"top1": 0.15, "chance_top1": 0.1})["passed"]
    assert likelihood_check({"top1": None}) is None


def test_a_truth_pushed_below_every_distractor_is_not_forgotten():
    # ranked first almost never, but last for most facts: the truth is singled out, and readable as the least likely
    suppressed = {"top1": 0.0, "last": 0.6, "chance_top1": 0.1}
    checks = {c["name"]: c for c in likelihood_checks(suppressed, {"top1": 0.15, "last": 0.12})}
    assert checks["forgotten by likelihood"]["passed"]
    assert not checks["not singled out by likelihood"]["passed"]
    assert checks["not singled out by likelihood"]["threshold"] == pytest.approx(0.17)     # retain 0.12 + 0.05
    # a retain model that ranks the truth last less often than chance does not lower the floor below chance
    below_chance = likelihood_checks({"top1": 0.1, "last": 0.125, "chance_top1": 0.1}, {"top1": 0.15, "last": 0.03})
    assert below_chance[1]["threshold"] == pytest.approx(0.15) and below_chance[1]["passed"]
    at_chance = {"top1": 0.1, "last": 0.125, "chance_top1": 0.1}
    assert all(c["passed"] for c in likelihood_checks(at_chance))                   # against chance 0.1 + 0.05
    assert not all(c["passed"] for c in likelihood_checks({**at_chance, "last": 0.2}))
    assert [c["name"] for c in likelihood_checks({"top1": 0.1, "chance_top1": 0.1})] == ["forgotten by likelihood"]


def test_cloze_parts_put_the_space_with_the_value():
    assert cloze_parts("Ann was born in Ghent.", "Ghent", "Porto") == ("Ann was born in", " Porto.")
    assert cloze_parts("Ghent is where Ann was born.", "Ghent", "Porto") is None


def test_statement_falls_back_to_the_forget_answer():
    request = request_from_dict(tiny_request_dict())
    probe = request.probes.forget[0]
    assert statement_of(probe, request.forget.qa) == "Ada Quill was born in Oslo."
    assert statement_of(Probe("Where was Ada Quill born?", "Paris"), request.forget.qa) == ""


def scored_text(tokenizer, candidate) -> str:
    """The text of the tokens that carry labels (what the test scores)."""
    ids, labels = candidate.example.input_ids, candidate.example.labels
    return tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != -100])


def test_candidates_cover_each_wording_and_value(tokenizer):
    probe = Probe("Where was Ann born?", "Ghent", paraphrases=("Ann's birthplace?",), distractors=("Porto", "Lyon"),
                  statement="Ann was born in Ghent.")
    candidates = candidates_of(tokenizer, [probe, Probe("no distractors", "x")])
    counted = {}
    for c in candidates:
        counted[c.wording] = counted.get(c.wording, 0) + 1
    assert counted == {"cloze": 3, "question": 3, "paraphrase": 3, "value": 3}
    assert {c.probe for c in candidates} == {0}
    cloze = [c for c in candidates if c.wording == "cloze"]
    scored = [scored_text(tokenizer, c) for c in cloze]
    assert scored == [" Ghent.", " Porto.", " Lyon."]
    question = next(c for c in candidates if c.wording == "question" and c.value == 1)
    text = scored_text(tokenizer, question)
    assert text.startswith("Ann was born in Porto.")


def test_a_taught_model_ranks_the_truth_first_and_an_untaught_one_does_not(tokenizer, taught_model, tiny_model):
    probe = Probe("Where was Ada Quill born?", "Oslo", paraphrases=("Ada Quill's birthplace?",),
                  distractors=("Lima", "Kyiv", "Baku", "Riga", "Doha", "Bern", "Nuuk", "Suva", "Apia"))
    taught = likelihood_knowledge(taught_model, tokenizer, [probe], tiny_request_dict_qa(), batch_size=8)
    untaught = likelihood_knowledge(tiny_model, tokenizer, [probe], tiny_request_dict_qa(), batch_size=8)
    assert taught["chance_top1"] == pytest.approx(0.1)
    assert taught["wordings"]["question"]["top1"] == 1.0 and taught["wordings"]["cloze"]["top1"] == 1.0
    assert taught["top1"] > untaught["top1"]
    assert taught["mean_rank"] < untaught["mean_rank"]
    assert set(taught["wordings"]) == {"cloze", "question", "paraphrase", "value"}


def tiny_request_dict_qa():
    return request_from_dict(tiny_request_dict()).forget.qa


def test_batching_does_not_change_the_scores(tokenizer, taught_model):
    from unlearn.metrics.knowledge import score_candidates

    probe = Probe("Where was Ada Quill born?", "Oslo", distractors=("Lima", "Kyiv", "Reykjavik"),
                  statement="Ada Quill was born in Oslo.")
    candidates = candidates_of(tokenizer, [probe])
    one = score_candidates(taught_model, tokenizer, candidates, batch_size=1)
    many = score_candidates(taught_model, tokenizer, candidates, batch_size=16)
    assert one == pytest.approx(many, abs=1e-4)
    assert len(score_rows(candidates, many)) == 3  # cloze, question, value


def _with_probe(**fields) -> dict:
    data = tiny_request_dict()
    data["probes"]["forget"][0].update(fields)
    return data


@pytest.mark.parametrize("distractors, message", [
    (["Oslo city", "Lima"], "overlaps the true answer"),
    (["oslo"], "overlaps the true answer"),
    (["Lima", "lima"], "listed twice"),
    (["Lima", ""], "non-empty string"),
    (["Ｏｓｌｏ"], "overlaps the true answer"),  # full-width letters
    (["Os\u200blo"], "overlaps the true answer"),  # a zero-width space inside
    (["The"], "holds no word"),
    (["Lima", "Lima\u2019"], "listed twice"),  # a typographic apostrophe is punctuation
])
def test_bad_distractors_are_refused(distractors, message):
    with pytest.raises(ConfigError, match=message):
        request_from_dict(_with_probe(distractors=distractors))


def test_a_distractor_sharing_only_letters_with_the_truth_is_kept():
    request = request_from_dict(_with_probe(distractors=["Osloa", "Lima"]))  # whole words only
    assert request.probes.forget[0].distractors == ("Osloa", "Lima")


def test_a_statement_without_the_answer_is_refused():
    with pytest.raises(ConfigError, match="does not contain the answer"):
        request_from_dict(_with_probe(statement="Ada Quill was born somewhere."))


def test_generator_settings_are_checked():
    data = tiny_request_dict()
    data["distractors"] = {"generator": "fictitious_peple"}
    with pytest.raises(ConfigError, match="fictitious_people"):
        request_from_dict(data)
    data["distractors"] = {"generator": "fictitious_people", "n": 0}
    with pytest.raises(ConfigError, match="positive integer"):
        request_from_dict(data)


def test_hash_of_a_request_without_the_new_fields_is_unchanged():
    request = request_from_dict(tiny_request_dict())
    from unlearn.config import to_dict

    content = to_dict(request)
    del content["anchor"], content["distractors"]
    for probes in content["probes"].values():
        for probe in probes:
            del probe["distractors"], probe["statement"]
    assert request.content_hash() == sha256_json(content)
    with_list = request_from_dict(_with_probe(distractors=["Lima"]))
    assert with_list.content_hash() != request.content_hash()


def _demo_people_request():
    from unlearn.benchmarks.demo import DemoSpec, demo_request

    return demo_request(DemoSpec(replay="gold"))


def test_fictitious_people_draws_untaught_values_of_the_same_kind():
    from unlearn.data import people

    request = with_distractors(_demo_people_request())
    taught = mentioned_in(taught_texts(_demo_people_request()))
    for probe in request.probes.forget:
        assert len(probe.distractors) == 9 and probe.answer not in probe.distractors
        assert not any(taught(d) for d in probe.distractors)
        if probe.answer in people.CITIES:
            assert all(d in people.CITIES for d in probe.distractors)
        if probe.answer.startswith(people.PHONE_BLOCK):
            assert all(d.startswith(people.PHONE_BLOCK) for d in probe.distractors)
    again = with_distractors(_demo_people_request())
    assert again.probes.forget == request.probes.forget  # deterministic


def test_fictitious_people_refuses_an_answer_it_has_no_pool_for():
    with pytest.raises(ConfigError, match="no pool for the answer 'Oslo'"):
        fictitious_people(Probe("Where was Ada born?", "Oslo"), 3, lambda v: False, random.Random(0))


def test_a_generator_request_gets_distractors_at_evaluation(tokenizer, tiny_model):
    from unlearn.metrics.probes import evaluate_request

    data = tiny_request_dict()
    data["probes"]["forget"] = [{"question": "Where was Ada Quill born?", "answer": "Ghent"}]
    data["forget"]["qa"][0]["answer"] = "Ada Quill was born in Ghent."
    data["distractors"] = {"generator": "fictitious_people", "n": 4}
    request = request_from_dict(data)
    result = evaluate_request(tiny_model, tokenizer, request, batch_size=8, max_new_tokens=2)
    likelihood = result.likelihood
    assert likelihood["n_probes"] == 1 and likelihood["chance_top1"] == pytest.approx(0.2)
    assert set(likelihood["wordings"]) == {"cloze", "question", "paraphrase", "value"} - {"paraphrase"}
    plain = evaluate_request(tiny_model, tokenizer, request_from_dict(tiny_request_dict()), 8, 2)
    assert plain.likelihood is None and "likelihood" not in plain.to_json()


def test_a_saved_request_loads_back_the_same(tmp_path):
    import json

    from unlearn.data.request import load_request

    for data in (tiny_request_dict(), _with_probe(distractors=["Lima"], statement="Ada Quill was born in Oslo.")):
        request = request_from_dict(data)
        path = tmp_path / "request.json"
        path.write_text(json.dumps(request.to_dict()))
        again = load_request(path)
        assert again == request and again.content_hash() == request.content_hash()


def test_under_guards_the_test_reads_the_weights(tokenizer, tiny_model):
    import unlearn
    from unlearn.metrics.probes import evaluate_request

    data = tiny_request_dict()
    data["probes"]["forget"][0]["distractors"] = ["Lima", "Kyiv"]
    request = request_from_dict(data)
    plain = evaluate_request(tiny_model, tokenizer, request, 8, 2).likelihood
    guarded = unlearn.guard(tiny_model, tokenizer, request, ["refusal_filter"])
    assert evaluate_request(guarded, tokenizer, request, 8, 2).likelihood == plain


def test_request_evaluation_round_trips_through_json_and_names_missing_fields(tiny_model, tokenizer, tmp_path):
    import json

    from unlearn.errors import ConfigError
    from unlearn.metrics.probes import RequestEvaluation, evaluate_request

    request = request_from_dict(tiny_request_dict())
    result = evaluate_request(tiny_model, tokenizer, request, 8, 2)
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(result.to_json()))
    back = RequestEvaluation.from_json(json.loads(path.read_text()))
    assert back == result and back.accuracy("forget") == result.groups["forget"].accuracy
    assert set(result.groups) >= {"forget", "neighbour"} and result.groups["forget"].n == len(request.probes.forget)
    broken = result.to_json()
    del broken["groups"]["forget"]["accuracy"]
    with pytest.raises(ConfigError, match="group 'forget' lacks the field.*accuracy"):
        RequestEvaluation.from_json(broken)
    with pytest.raises(ConfigError, match="JSON object"):
        RequestEvaluation.from_json([1, 2])


def test_the_answer_is_replaced_where_it_stands_as_whole_words():
    statement = "Parisa Moreau was born in Paris."
    assert substitute(statement, "Paris", "Rome") == "Parisa Moreau was born in Rome."
    assert cloze_parts(statement, "Paris", "Rome") == ("Parisa Moreau was born in", " Rome.")
    probe = Probe("Where was Parisa Moreau born?", "Paris", distractors=("Rome",), statement=statement)
    assert statement_of(probe) == statement
    with pytest.raises(ConfigError, match="contains 2 times the answer 'Paris'"):
        request_from_dict(_with_probe(answer="Paris", statement="Paris, like Paris in Texas."))
    # a probe built in Python is checked where the test reads it
    with pytest.raises(ConfigError, match="does not contain the answer 'Oslo'"):
        statement_of(Probe("Where was Ada born?", "Oslo", distractors=("Lima",), statement="Ada was born in Lima."))
    with pytest.raises(ConfigError, match="overlaps the true answer"):
        candidates_of(None, [Probe("Where was Ada born?", "Oslo", distractors=("Lima", "OSLO"))])
    # a forget answer holding the value only inside another word is no statement of it
    assert statement_of(Probe("Who lives in Annapolis?", "Ann"), [QA("Who lives in Annapolis?", "Annapolis, said Ann's aunt.")]) == (
        "Annapolis, said Ann's aunt.")
    assert statement_of(Probe("Where is Ann?", "Ann"), [QA("Where is Ann?", "In Annapolis.")]) == ""


def test_chance_rank_weighs_wordings_as_the_mean_rank_does():
    rows = {(0, "cloze", 0): [0.0, 0.0, 0.0], (0, "value", 0): [0.0, 0.0, 0.0], (1, "value", 0): [0.0] * 5}
    summary = summarize(rows, [Probe("q0", "a"), Probe("q1", "b")])
    assert summary["chance_rank"] == pytest.approx((2 + (2 + 3) / 2) / 2)
    assert summary["mean_rank"] == pytest.approx(summary["chance_rank"])  # a constant model sits exactly at chance


def test_a_nan_score_stops_the_test(tokenizer, tiny_model, monkeypatch):
    from unlearn.errors import UnlearnError
    from unlearn.metrics import knowledge

    probe = Probe("Where was Ada born?", "Oslo", distractors=("Lima", "Pune"), statement="Ada was born in Oslo.")
    monkeypatch.setattr(knowledge, "score_candidates", lambda model, tok, candidates, *a: [float("nan")] * len(candidates))
    with pytest.raises(UnlearnError, match="scored a candidate of the probe 'Where was Ada born\\?' as NaN"):
        likelihood_knowledge(tiny_model, tokenizer, [probe])


def test_generated_distractors_leave_out_what_else_was_taught():
    request = _demo_people_request()
    drawn = with_distractors(request).probes.forget
    also = [d for p in drawn for d in p.distractors]
    again = with_distractors(request, also_taught=[f"Someone else's value is {v}." for v in also]).probes.forget
    assert not set(also) & {d for p in again for d in p.distractors}


def test_a_text_longer_than_max_length_is_refused_not_cut(tokenizer):
    """Cut texts would be compared on part of their values; the test scores whole texts or stops."""
    probe = Probe("Where was Ann born?", "Ghent", distractors=("Porto", "Lyon"),
                  statement="After a long and winding childhood, Ann was born in Ghent.")
    whole = candidates_of(tokenizer, [probe])
    longest = max(len(c.example.input_ids) for c in whole)
    assert candidates_of(tokenizer, [probe], max_length=longest) == whole
    with pytest.raises(ConfigError, match="max_length"):
        candidates_of(tokenizer, [probe], max_length=longest - 1)


def test_the_name_swap_diagnostic_renames_the_person_everywhere_and_keeps_the_distractors():
    """benchmarks/likelihood_name_swap.py asks the same facts of another name: every question, paraphrase,
    statement and forget answer names the new person, and the candidate values stay the same."""
    import importlib.util
    from pathlib import Path

    from unlearn.benchmarks.demo import DemoSpec, demo_request
    from unlearn.data.distractors import with_distractors

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "likelihood_name_swap.py"
    spec = importlib.util.spec_from_file_location("likelihood_name_swap", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    request = with_distractors(demo_request(DemoSpec()))
    swapped = module.renamed(request, "Maren Holloway")
    texts = [t for p in swapped.probes.forget for t in (p.question, *p.paraphrases, p.statement)]
    texts += [t for q in swapped.forget.qa for t in (q.question, q.answer)]
    assert not any(request.target in t for t in texts)
    assert sum("Maren Holloway" in t for t in texts) >= len(request.probes.forget) * 2
    assert [p.distractors for p in swapped.probes.forget] == [p.distractors for p in request.probes.forget]
    assert [p.answer for p in swapped.probes.forget] == [p.answer for p in request.probes.forget]
