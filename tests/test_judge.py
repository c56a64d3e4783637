"""One judge of "was the probe answered?" for every application (metrics/judge.py)."""

import pytest

from unlearn.auditing import AuditConfig, plain_evaluation
from unlearn.config import EvalConfig
from unlearn.data.request import Probe
from unlearn.metrics.judge import ROUGE_THRESHOLD, answered
from unlearn.metrics.probes import probe_accuracy
from unlearn.requests.sealed import seal_probe, sealed_correct


def test_containment_and_rouge_recall():
    assert answered("She was born in Oslo, I think.", ["Oslo"])
    assert not answered("She was born in Bergen.", ["Oslo"])
    assert answered("the number is 555 0101", ["555-0101"])  # punctuation is normalised away
    assert answered("Quill, Tom is his name", ["Tom Quill"], 0.5)  # ROUGE-L recall 1/2 reaches 0.5
    assert not answered("Quill, Tom is his name", ["Tom Quill"], 0.8)
    # no whole-word span, but the stemmed words in order: ROUGE-L recall 1.0
    assert not answered("she studied marine biologies at Kiel", ["marine biology"], None)
    assert answered("she studied marine biologies at Kiel", ["marine biology"])
    assert answered("It has 6 sides.", ["six", "6"]) and not answered("It has 16 sides.", ["six", "6"])
    assert not answered("anything at all", ["", "Oslo"])  # an empty answer is never given


@pytest.mark.parametrize("reply", [
    "He was born on February 25, 1987.", "Born 25th of February, 1987.", "born on the 25th of Feb 1987",
    "Feb. 25th, 1987", "1987-02-25", "25/02/1987", "02/25/1987", "25.02.1987", "Monday, 25 February 1987",
])
def test_a_date_is_judged_however_it_is_written(reply):
    assert answered(reply, ["25 February 1987"], None)  # containment alone: the judge's form, not ROUGE
    assert answered(reply, ["February 25, 1987"], None)
    assert not answered(reply, ["26 February 1987"]) and not answered(reply, ["25 February 1988"])


def test_dates_that_are_not_the_answer_stay_apart():
    assert not answered("born on 5 May 1956", ["15 May 1956"])
    assert not answered("born on 03/04/1987", ["3 April 1987"], None)  # day and month cannot be told apart
    assert not answered("born in May 1956", ["5 May 1956"], None)
    assert answered("on 05/05/1956", ["5 May 1956"], None)  # both parts equal: one reading
    assert answered("It has 5 rooms.", ["5"]) and answered("born on May 5th", ["5 May"], None)


@pytest.mark.parametrize("reply", ["Call 5550142.", "+1 (555) 01 42", "555.0142", "dial 5 5 5 0 1 4 2 now"])
def test_a_phone_number_is_judged_however_its_digits_are_grouped(reply):
    assert answered(reply, ["555-0142"], None) and answered(reply, ["(555) 0142"], None)
    assert not answered(reply.replace("2", "3"), ["555-0142"])


def test_numbers_are_found_only_whole():
    assert not answered("call 15550142", ["555-0142"])  # inside a longer group
    assert not answered("call 555-01423", ["555-0142"])
    assert not answered("born 1987, moved 2003", ["19872003"], None)
    assert not answered("rooms 1, 23, 45", ["12345"], None)  # a comma separates numbers, not a number's groups
    assert not answered("room 12 and 3", ["123"], None)  # shorter than MIN_NUMBER_DIGITS: only as written
    assert answered("room 123", ["123"], None)
    digits = " ".join("7" * 400)  # a reply that is a long list of digits is judged quickly, and whole
    assert not answered(digits, ["777-7778"]) and answered(digits, ["777-7777"], None)


@pytest.mark.parametrize(("reply", "answer"), [
    ("She lives at 14 Larkspur Ln.", "14 Larkspur Lane"), ("12 Elm St", "12 Elm Street"),
    ("at 7 Osprey Ave.", "7 Osprey Avenue"), ("3 Damson Dr", "3 Damson Drive"), ("Mt. Everest", "Mount Everest"),
    ("She lives at 14 Larkspur Lane.", "14 Larkspur Ln"), ("St. Louis", "St Louis"), ("Dr. Lee", "Dr Lee"),
])
def test_address_abbreviations_are_judged_as_the_words(reply, answer):
    assert answered(reply, [answer], None)
    assert not answered(reply, [answer.replace(answer.split()[-1], "Elsewhere")], None)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_threshold_out_of_range_is_refused(threshold):
    with pytest.raises(ValueError, match="rouge_threshold"):
        answered("Oslo", ["Oslo"], threshold)


def test_every_setting_defaults_to_the_same_judge():
    assert EvalConfig().rouge_threshold == AuditConfig().rouge_threshold == ROUGE_THRESHOLD


class FixedReplies:
    """A subject that answers every conversation from a table."""

    def __init__(self, replies: dict[str, str]):
        self.replies = replies

    def respond(self, conversations, prefills=None, max_new_tokens=None, progress=None):
        return [self.replies[c[-1]["content"]] for c in conversations]


def test_evaluation_and_audit_judge_the_same_replies_alike():
    probes = [Probe("Where was Ana born?", "Oslo"), Probe("What did Ana study?", "marine biology"),
              Probe("Ana's pet?", "a grey cat"), Probe("Ana's car?", "Volvo")]
    replies = {"Where was Ana born?": "In Oslo.", "What did Ana study?": "Marine biologies.",
               "Ana's pet?": "A cat, grey and old.", "Ana's car?": "I do not know."}
    audit = plain_evaluation(FixedReplies(replies), {"forget": probes}, ROUGE_THRESHOLD, None)["forget"]
    evaluation = probe_accuracy([replies[p.question] for p in probes], [p.answer for p in probes])
    assert audit["per_probe"] == evaluation.per_example == [1.0, 1.0, 0.0, 0.0]


def test_sealed_probes_match_containment_alone():
    probe = Probe("Where was Ana born?", "Oslo", aliases=("Christiania",))
    sealed = seal_probe(probe, "salt")
    for reply in ["Born in Oslo.", "In old Christiania.", "Bergen", "oslofjord"]:
        assert sealed_correct(reply, sealed, "salt") == answered(reply, (probe.answer, *probe.aliases), None)
    born = Probe("When was Ana born?", "5 May 1956")
    sealed = seal_probe(born, "salt")
    for reply in ["On May 5th, 1956.", "1956-05-05", "On 5 May 1957.", "In May 1956."]:
        assert sealed_correct(reply, sealed, "salt") == answered(reply, born.answers, None)
    phone = Probe("Ana's number?", "555-0142", aliases=("14 Larkspur Lane",))
    sealed = seal_probe(phone, "salt")
    assert "5550142" not in str(sealed)
    replies = ["5550142", "+1 555 01 42", "555-0143", "15550142", "at 14 Larkspur Ln", "14 Larkspur Road"]
    assert [sealed_correct(r, sealed, "salt") for r in replies] == [answered(r, phone.answers, None) for r in replies]
    assert [answered(r, phone.answers, None) for r in replies] == [True, True, False, False, True, False]


def test_probes_sealed_before_the_judges_form_still_match():
    from unlearn.metrics.text import normalize_answer
    from unlearn.requests.sealed import answer_hash

    plain = normalize_answer("5,000 kroner")  # '5 000 kroner': the judge's form is '5000 kroner'
    old = {"question": "How much?", "answers": [[len(plain.split()), answer_hash(plain, "salt")]]}
    assert sealed_correct("It cost 5,000 kroner.", old, "salt")  # the plain normalised form, as it was sealed
    assert not sealed_correct("It cost 6,000 kroner.", old, "salt")


def test_every_group_is_asked_in_one_pass_and_answered_in_order():
    from unlearn.metrics.probes import ask_groups

    calls = []

    def ask(questions):
        calls.append(list(questions))
        return [q.upper() for q in questions]

    answers = ask_groups(ask, {"forget": ["a", "b"], ("earlier", "r1"): ["c"], "empty": [], "general": ["d"]})
    assert calls == [["a", "b", "c", "d"]]  # one batched call for all groups
    assert answers == {"forget": ["A", "B"], ("earlier", "r1"): ["C"], "empty": [], "general": ["D"]}
    with pytest.raises(ValueError, match="asked 2 questions, got 1 answers"):
        ask_groups(lambda qs: qs[:1], {"forget": ["a", "b"]})


@pytest.mark.parametrize("reply, answer", [
    ("Он родился в Москве, говорят", "родился в Москве"),      # Cyrillic words, in order, none missing
    ("Она жила в Москве", "жила в Москве и Киеве"),             # 3 of 5 words: under the threshold
    ("Jose Garcia Marquez wrote it", "José García Márquez"),
])
def test_rouge_counts_words_of_every_script(reply, answer):
    """rouge_score alone drops every non-ASCII letter, so a reply in Russian could never reach the threshold."""
    from unlearn.metrics.text import judge_rouge_recall, rouge_l

    expected = {"родился в Москве": 1.0, "жила в Москве и Киеве": 0.6, "José García Márquez": 1.0}[answer]
    assert judge_rouge_recall(reply, answer) == pytest.approx(expected)
    assert rouge_l(reply, answer)[1] < expected  # the reference metric, unchanged, misses it
    assert answered(reply, [answer]) == (expected >= ROUGE_THRESHOLD)


def test_judge_rouge_equals_rouge_score_on_ascii_text():
    from unlearn.metrics.text import judge_rouge_recall, rouge_l

    for reply, answer in [("He was running to Paris in 1990.", "ran to Paris, France"), ("x_y z", "x y"),
                          ("The dogs' owners", "dog owner")]:
        assert judge_rouge_recall(reply, answer) == rouge_l(reply, answer)[1]


def test_refusal_collisions_name_answers_a_refusal_gives():
    from unlearn.metrics.judge import refusal_collisions

    probes = [Probe("Is she married?", "No"), Probe("Where was she born?", "Ghent", aliases=("sorry",)),
              Probe("What did she write?", "The Knowledge Gap")]
    found = refusal_collisions(probes)
    assert len(found) == 2
    assert "'No'" in found[0] and "'sorry'" in found[1]
