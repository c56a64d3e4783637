"""Guards on a tiny model: the guarded model stands in for the model (same answers and logits where no guard
acts, the same distribution in generation and teacher forcing where one does), each guard's rule, the
shared classifier, and the audit's attacks on every guard."""

from __future__ import annotations

import pytest
import torch

from unlearn.attacks import Subject, make_attack
from unlearn.attacks.base import AuditContext, user
from unlearn.data.collate import collate
from unlearn.data.formatting import encode_qa, prompt_text
from unlearn.data.request import request_from_dict
from unlearn.errors import ConfigError
from unlearn.guards import GUARDS, REFUSAL, GuardedModel, make_guard
from unlearn.guards.classifier import RequestIndex, builtin_negatives, quantile_margin, request_texts, windows
from unlearn.guards.constrained_decoding import banned_next, banned_phrases, phrase_trie
from unlearn.guards.guarded import answer_marker, common_suffix, find_last, forced_logits
from unlearn.guards.in_context import instruction_text
from unlearn.guards.logit_offset import offset_logits
from unlearn.metrics.generation import generate_answers
from unlearn.metrics.text import contains_answer
from unlearn.models.scoring import scored_logits

from .conftest import make_model
from .test_attacks import audit_request_dict, weights_digest

FORGET_Q = "Where was Ada Quill born?"
GENERAL_Q = "What is the capital of France?"


@pytest.fixture(scope="module")
def request_():
    return request_from_dict(audit_request_dict())


@pytest.fixture(scope="module")
def index(request_):
    built = RequestIndex()
    built.add(request_)
    return built


def guarded(model, tokenizer, names, request, index=None, **settings):
    specs = [{"name": n, **settings.get(n, {})} for n in names]
    g = GuardedModel(model, tokenizer, [make_guard(s) for s in specs], index=index)
    g.add_request(request)
    return g


def offset_guard(model, tokenizer, seed_a=1, seed_b=2):
    small_a, small_b = make_model(len(tokenizer), layers=2, seed=seed_a), make_model(len(tokenizer), layers=2, seed=seed_b)
    guard = make_guard({"name": "logit_offset", "small_original": "a", "small_unlearned": "b"})
    return guard.use_models(small_a, small_b), small_a, small_b


def batch_of(tokenizer, pairs):
    return collate([encode_qa(tokenizer, q, a, 128) for q, a in pairs], tokenizer.pad_token_id)


# --- the guarded model stands in for the model ------------------------------------------------------

def test_without_requests_every_guard_leaves_answers_and_logits_alone(taught, tokenizer):
    pairs = [(FORGET_Q, "Oslo"), (GENERAL_Q, "Paris is the capital.")]
    batch = batch_of(tokenizer, pairs)
    plain_logits, labels = scored_logits(taught, batch)
    plain = [g.text for g in generate_answers(taught, tokenizer, [q for q, _ in pairs], max_new_tokens=8)]
    offset, _, _ = offset_guard(taught, tokenizer)
    guards = [make_guard(n) for n in GUARDS.names() if n != "logit_offset"] + [offset]
    model = GuardedModel(taught, tokenizer, guards)
    logits, guarded_labels = scored_logits(model, batch)
    assert torch.equal(labels, guarded_labels)
    scored = labels != -100  # padding positions carry no meaning
    assert torch.allclose(logits[scored], plain_logits[scored], atol=1e-5)
    real = batch["attention_mask"].bool()
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = taught(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(full[real], expected[real], atol=1e-5)
    assert [g.text for g in generate_answers(model, tokenizer, [q for q, _ in pairs], max_new_tokens=8)] == plain


@pytest.mark.parametrize("name", GUARDS.names())
def test_generation_and_teacher_forcing_give_the_same_guarded_distribution(name, taught, tokenizer, request_, index):
    """The logits a guarded greedy generation used at each step equal the forward pass over its output."""
    if name == "logit_offset":
        guard = offset_guard(taught, tokenizer)[0]
    else:
        guard = make_guard({"name": name, **({"sigma": 1.0} if name == "embedding_corruption" else {})})
    model = GuardedModel(taught, tokenizer, [guard], index=index)
    model.add_request(request_)
    prompt = prompt_text(tokenizer, FORGET_Q)
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=[tokenizer.eos_token_id])
    steps = torch.stack(out.logits, dim=1)[0]
    sequence = out.sequences
    forward = model(input_ids=sequence, attention_mask=torch.ones_like(sequence)).logits[0]
    n = steps.shape[0]
    answered = forward[ids.shape[1] - 1: ids.shape[1] - 1 + n]
    assert torch.equal(steps.argmax(-1), answered.argmax(-1))
    assert torch.allclose(torch.log_softmax(steps, -1), torch.log_softmax(answered, -1), atol=1e-3)


def test_prompt_view_is_the_user_text(tokenizer, taught):
    model = GuardedModel(taught, tokenizer)
    ids = tokenizer(prompt_text(tokenizer, FORGET_Q), add_special_tokens=False)["input_ids"]
    assert model.view(ids).text == FORGET_Q
    assert find_last(ids, model.marker) == len(ids)
    assert common_suffix([1, 2, 3], [4, 2, 3]) == [2, 3] and common_suffix([1], [2]) == []
    assert tokenizer.decode(answer_marker(tokenizer)).endswith("assistant\n")


def test_forced_logits_follow_the_refusal_then_say_nothing():
    forced = forced_logits([5, 6, 9, 1], [5, 6, 7], vocab=10)
    assert forced[0].argmax() == 5 and forced[1].argmax() == 6 and forced[2].argmax() == 7
    assert torch.all(forced[3] == 0)  # the answer left the refusal at token 2: uniform from then on
    assert torch.log_softmax(forced[0], -1)[5] > -1e-6 and torch.log_softmax(forced[0], -1)[4] < -1e3


# --- the classifier ---------------------------------------------------------------------------------

def test_windows_margin_quantile_and_the_pools(request_):
    assert windows("Hi. Where was Ada born? Tell me now.") == ["Hi. Where was Ada born? Tell me now.",
                                                              "Where was Ada born?", "Tell me now."]
    margins = torch.tensor([-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4])
    assert quantile_margin(margins, 0.0) == pytest.approx(0.4001)
    assert (margins >= quantile_margin(margins, 0.2)).float().mean() <= 0.2
    assert quantile_margin(margins - 1.0, 0.05) == 0.0  # the nearest stored text must at least be a positive
    positives = request_texts(request_)
    assert "Ada Quill was born in Oslo." in positives and "this person was born in Oslo." in positives
    assert FORGET_Q not in positives  # questions are caught by the name, and share their form with anyone's
    assert "Where was John Smith born?" in builtin_negatives()


def test_index_scores_names_and_adds_requests_one_at_a_time(index, request_):
    texts = ["I heard this person was born in Oslo. Is that so?", GENERAL_Q, FORGET_Q, "Where was John Smith born?"]
    best, margin = index.scores(texts)
    assert best.shape == margin.shape == (4, 1)
    assert best[0, 0] > 0.9 and margin[0, 0] > index.delta() >= 0.0  # its first sentence matches a fact
    assert margin[1, 0] < 0 and margin[3, 0] < 0  # general, and the same question about someone else
    assert index.named(["Is Quill a baker?", GENERAL_Q]).flatten().tolist() == [True, False]
    assert index.related([GENERAL_Q, "what does Quill do", FORGET_Q, "Where was John Smith born?"]) == [None, 0, 0, None]
    other = request_from_dict({**audit_request_dict(), "id": "forget-bo", "target": "Bo Lindqvist",
                               "forget": {"qa": [{"question": "Where does Bo Lindqvist live?",
                                                  "answer": "Bo Lindqvist lives in Turku."}]}})
    grown = RequestIndex(embedder=index.encoder())
    grown.add(request_)
    grown.add(other)
    grown.add(other)  # the same id again: nothing changes
    assert len(grown) == 2
    assert grown.related(["Is it true that Bo Lindqvist lives in Turku?", "Ada Quill is a baker, isn't she?"],
                         by_name=False) == [1, 0]
    # the incremental bookkeeping equals the leave-one-out margins computed from scratch
    negatives, of, positives = grown._neg, grown._neg_of, grown.stacked()[0]
    within = negatives @ negatives.T
    within[of.unsqueeze(1) == of.unsqueeze(0)] = -1.0
    per_window = (negatives @ positives.T).amax(dim=1) - within.amax(dim=1)
    expected = torch.full((int(of.max()) + 1,), -2.0).scatter_reduce(0, of, per_window, "amax")
    assert torch.allclose(grown.negative_margins(), expected, atol=1e-6)


# --- each guard's rule ------------------------------------------------------------------------------

def test_refusal_filter_refuses_related_prompts_only(taught, tokenizer, request_, index):
    model = guarded(taught, tokenizer, ["refusal_filter"], request_, index)
    replies = [g.text for g in generate_answers(model, tokenizer, [FORGET_Q, "What is Quill's job?", GENERAL_Q],
                                                max_new_tokens=64)]
    assert replies[0] == replies[1] == REFUSAL
    assert replies[2] == generate_answers(taught, tokenizer, [GENERAL_Q], max_new_tokens=64)[0].text
    logits, labels = scored_logits(model, batch_of(tokenizer, [(FORGET_Q, "Oslo")]))
    from unlearn.models.logprobs import mean_token_logprob
    assert float(mean_token_logprob(logits, labels)) < -100


def test_refusal_filter_settings_are_checked():
    with pytest.raises(ConfigError, match="max_false_positive"):
        make_guard({"name": "refusal_filter", "max_false_positive": 1.5})
    with pytest.raises(ConfigError, match="unknown guard 'refusal_filtr'.*Did you mean 'refusal_filter'"):
        make_guard("refusal_filtr")
    with pytest.raises(ConfigError, match="small_original"):
        make_guard("logit_offset")


def test_phrase_trie_bans_only_the_completing_token():
    trie = phrase_trie([[7, 8, 9], [4]])
    assert banned_next([1, 2], trie, 2) == {4}
    assert banned_next([1, 7, 8], trie, 2) == {4, 9}
    assert banned_next([7], trie, 2) == {4}
    longer = phrase_trie([[7, 8, 9]], {9: {9, 90, 91}})  # 90, 91: tokens that spell 9 and go on
    assert banned_next([7, 8], longer, 2) == {9, 90, 91}


def test_token_prefixes_find_the_longer_tokens(tokenizer):
    from unlearn.guards.constrained_decoding import TokenPrefixes

    ids = tokenizer.convert_tokens_to_ids
    found = TokenPrefixes(tokenizer).extending(ids("<"))
    assert {ids("<"), ids("<pad>"), ids("<unk>"), ids("<|im_start|>"), ids("<|im_end|>")} == found
    assert TokenPrefixes(tokenizer).extending(ids("a")) == {ids("a")}


def test_constrained_decoding_never_spells_the_answer(taught, tokenizer, request_, index):
    assert banned_phrases(request_) == ["Oslo", "baker", "555-0101", "Tom Quill"]
    # The tiny taught model knows little, but it does start its answers with the name: ban that.
    said = request_from_dict({**audit_request_dict(), "probes": {"forget": [
        {"question": "What is Ada Quill's job?", "answer": "Ada Quill"}]}})
    question = "What is Ada Quill's job?"
    plain = generate_answers(taught, tokenizer, [question], max_new_tokens=24)[0].text
    assert contains_answer(plain, "Ada Quill"), plain
    model = guarded(taught, tokenizer, ["constrained_decoding"], said, RequestIndex(embedder=index.encoder()))
    reply = generate_answers(model, tokenizer, [question], max_new_tokens=24)[0].text
    assert not contains_answer(reply, "Ada Quill") and reply, reply
    from unlearn.metrics.likelihood import qa_mean_logprobs
    before, after = qa_mean_logprobs(taught, tokenizer, [(question, "Ada Quill")]), qa_mean_logprobs(
        model, tokenizer, [(question, "Ada Quill")])
    assert after[0] < before[0] - 100


def test_in_context_prefix_only_for_related_prompts(taught, tokenizer, request_, index):
    text = instruction_text(request_, show_facts=True, examples=2, refusal="No.")
    assert "Ada Quill" in text and "Ada Quill was born in Oslo." in text and text.count("A: No.") == 2
    assert "Oslo" not in instruction_text(request_, show_facts=False, examples=0, refusal="No.")
    model = guarded(taught, tokenizer, ["in_context"], request_, index)
    batch = batch_of(tokenizer, [(GENERAL_Q, "Paris"), (FORGET_Q, "Oslo")])
    plain, _ = scored_logits(taught, batch)
    with_guard, _ = scored_logits(model, batch)
    assert torch.allclose(with_guard[0], plain[0], atol=1e-5)
    assert not torch.allclose(with_guard[1], plain[1], atol=1e-3)


def test_embedding_corruption_tunes_a_strength_and_only_touches_related_prompts(taught, tokenizer, request_, index):
    model = guarded(taught, tokenizer, ["embedding_corruption"], request_, index,
                    embedding_corruption={"grid": [0.5, 64.0]})
    strength = model.guards[0].strengths[request_.id]
    assert strength in (0.5, 64.0)
    from unlearn.guards.embedding_corruption import forget_accuracy
    assert forget_accuracy(model, tokenizer, request_) <= forget_accuracy(taught, tokenizer, request_)
    batch = batch_of(tokenizer, [(GENERAL_Q, "Paris"), (FORGET_Q, "Oslo")])
    plain, _ = scored_logits(taught, batch)
    first, _ = scored_logits(model, batch)
    again, _ = scored_logits(model, batch)
    assert torch.allclose(first[0], plain[0], atol=1e-5) and not torch.allclose(first[1], plain[1], atol=1e-3)
    assert torch.equal(first, again)  # seeded noise


def test_logit_offset_adds_the_small_pairs_difference(taught, tokenizer, request_, index):
    assert torch.equal(offset_logits(torch.zeros(2, 3), torch.tensor([[1.0, 2, 3]] * 2), torch.ones(2, 3), 2.0),
                       torch.tensor([[0.0, 2, 4]] * 2))
    guard, small_a, small_b = offset_guard(taught, tokenizer)
    model = GuardedModel(taught, tokenizer, [guard], index=index)
    model.add_request(request_)
    batch = batch_of(tokenizer, [(FORGET_Q, "Oslo")])
    args = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    expected = taught(**args).logits + small_b(**args).logits - small_a(**args).logits
    assert torch.allclose(model(**args).logits, expected, atol=1e-4)


# --- attacks on guards ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", GUARDS.names())
def test_attacks_run_on_every_guard_without_touching_the_weights(name, taught, tokenizer, request_, index):
    guard = offset_guard(taught, tokenizer)[0] if name == "logit_offset" else make_guard(
        {"name": name, **({"sigma": 1.0} if name == "embedding_corruption" else {})})
    model = GuardedModel(taught, tokenizer, [guard], index=index)
    model.add_request(request_)
    before = weights_digest(taught)
    subject = Subject(model, tokenizer, batch_size=8, max_new_tokens=6)
    replies = subject.respond([user(p.question) for p in request_.probes.forget])
    ctx = AuditContext(request_, list(request_.probes.forget), replies, [], 0.8)
    for attack in [{"name": "relearn", "steps": [1], "batch_size": 2, "max_length": 96},
                   {"name": "quantize", "schemes": ["int8"]}, {"name": "leak_at_k", "n": 2}, "paraphrase"]:
        outcome = make_attack(attack).run(subject, ctx)
        assert all(len(column) == len(request_.probes.forget) for column in outcome.per_variant.values())
    assert weights_digest(taught) == before and subject.model.model is taught


# --- the command line -------------------------------------------------------------------------------

def test_cli_eval_and_audit_behind_guards(tmp_path, model_dir, capsys):
    import json

    import yaml

    from unlearn.cli import main

    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump(audit_request_dict()))
    evaluation = tmp_path / "eval.json"
    assert main(["eval", str(model_dir), "--request", str(request), "--guards", "refusal_filter",
                 "--out", str(evaluation)]) == 0
    written = json.loads(evaluation.read_text())
    assert written["guards"] == [{"name": "refusal_filter"}]
    assert written["groups"]["forget"]["accuracy"] == 0.0  # every forget probe names the target: refused
    assert "behind refusal_filter" in capsys.readouterr().out
    out = tmp_path / "audit"
    code = main(["audit", str(model_dir), "--request", str(request), "--guards", "refusal_filter,constrained_decoding",
                 "--guard-set", "refusal_filter.match_names=false", "--attacks", "paraphrase",
                 "--set", "max_new_tokens=6", "--out", str(out), "--quiet"])
    assert code in (0, 1)
    report = json.loads((out / "report.json").read_text())
    assert "original" in report["plain"] and "behind refusal_filter, constrained_decoding" in report["models"]["audited"]


def test_cli_guard_errors(tmp_path, capsys):
    import yaml

    from unlearn.cli import main

    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump(audit_request_dict()))
    assert main(["eval", "no-such-dir", "--request", str(request), "--guards", "refusal_filtr"]) == 2
    assert "Did you mean 'refusal_filter'" in capsys.readouterr().err
    assert main(["eval", "no-such-dir", "--request", str(request), "--guard-set", "refusal_filter.margin=0.1"]) == 2
    assert "--guard-set needs --guards" in capsys.readouterr().err
    assert main(["audit", "no-such-dir", "--request", str(request), "--guards", "refusal_filter",
                 "--guard-set", "refusal_filter.marjin=0.1"]) == 2
    assert "has no setting 'marjin'" in capsys.readouterr().err
    assert main(["ls", "guards"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in GUARDS.names())


def test_public_api_guard(taught, tokenizer, request_, tmp_path):
    import yaml

    import unlearn

    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(audit_request_dict()))
    model = unlearn.guard(taught, tokenizer, path, guards=["refusal_filter", {"name": "constrained_decoding"}])
    assert [r.id for r in model.requests] == ["forget-ada"] and len(model.guards) == 2
    assert generate_answers(model, tokenizer, [FORGET_Q], max_new_tokens=64)[0].text == REFUSAL
    assert unlearn.guard(taught, tokenizer, [request_, request_]).requests == [request_]


def test_prepared_index_equals_one_built_on_first_add(index, request_):
    prepared = RequestIndex(embedder=index.encoder())
    prepared.prepare()
    margins_before = prepared.negative_margins()
    assert len(margins_before) > 0 and prepared.related([FORGET_Q]) == [None]  # nothing stored: nothing fires
    prepared.add(request_)
    lazy = RequestIndex(embedder=index.encoder())
    lazy.add(request_)
    assert torch.allclose(prepared.negative_margins(), lazy.negative_margins(), atol=1e-5)
    assert prepared.related([FORGET_Q, GENERAL_Q]) == lazy.related([FORGET_Q, GENERAL_Q]) == [0, None]
    assert prepared.related([FORGET_Q]) == [0]  # the same prompt as before the add: not the remembered answer
