"""Tests for the fictitious-people generator."""

from __future__ import annotations

import itertools

import pytest

from unlearn.data.people import ATTRIBUTES, Fact, Person, generate_people, people_to_qa


def _facts(people: list[Person]) -> list[Fact]:
    return [f for p in people for f in p.facts()]


def test_same_seed_is_deterministic() -> None:
    a, b = generate_people(12, seed=3), generate_people(12, seed=3)
    assert a == b
    assert _facts(a) == _facts(b)


def test_different_seeds_differ() -> None:
    a, b = generate_people(12, seed=0), generate_people(12, seed=1)
    assert [p.name for p in a] != [p.name for p in b]
    assert [p.attributes for p in a] != [p.attributes for p in b]


def test_count_and_unique_names() -> None:
    people = generate_people(40, seed=0)
    assert len(people) == 40
    assert len({p.name for p in people}) == 40
    assert generate_people(0) == []


def test_unique_names_beyond_pool_size() -> None:
    people = generate_people(150, seed=2)
    assert len({p.name for p in people}) == 150


def test_eight_facts_per_person() -> None:
    for person in generate_people(10, seed=5):
        facts = person.facts()
        assert len(facts) == 8
        assert [f.attribute for f in facts] == list(ATTRIBUTES)
        assert set(person.attributes) == set(ATTRIBUTES)
        assert all(f.person == person.name for f in facts)


def test_values_not_shared_between_people() -> None:
    people = generate_people(40, seed=7)
    for attribute in ATTRIBUTES:
        values = [p.attributes[attribute] for p in people]
        assert len(set(values)) == len(values), attribute


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fact_fields_are_consistent(seed: int) -> None:
    for f in _facts(generate_people(40, seed=seed)):
        assert f.short_answer in f.answer
        assert f.short_answer in f.paraphrased_answer
        assert f.paraphrased_answer != f.answer
        assert 1 <= len(f.short_answer.split()) <= 4
        assert f.person in f.question
        assert len(f.paraphrased_questions) == 2
        assert len(set(f.paraphrased_questions) | {f.question}) == 3
        assert all(f.person in q for q in f.paraphrased_questions)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_answers(seed: int) -> None:
    for f in _facts(generate_people(40, seed=seed)):
        assert len(f.wrong_answers) == 3
        assert len(set(f.wrong_answers)) == 3
        for wrong in f.wrong_answers:
            assert f.short_answer.lower() not in wrong.lower()
            assert f.person in wrong


def test_short_answers_are_distinctive() -> None:
    facts = _facts(generate_people(40, seed=0))
    for f, g in itertools.product(facts, facts):
        if (f.person, f.attribute) != (g.person, g.attribute):
            assert g.short_answer.lower() not in f.answer.lower(), (g.short_answer, f.answer)


def test_phone_numbers_are_fictitious() -> None:
    for person in generate_people(40, seed=4):
        assert person.attributes["phone"].startswith("555-01")


def test_people_to_qa() -> None:
    people = generate_people(5, seed=1)
    qa = people_to_qa(people)
    assert len(qa) == 5 * 8
    assert all(set(row) == {"question", "answer"} for row in qa)
    assert qa[0] == {"question": people[0].facts()[0].question, "answer": people[0].facts()[0].answer}
    assert len({row["question"] for row in qa}) == len(qa)


def test_private_part_drops_the_shared_phone_block() -> None:
    people = generate_people(12, seed=3)
    for fact in (f for p in people for f in p.facts()):
        assert fact.private_part in fact.answer and fact.short_answer.endswith(fact.private_part)
        if fact.attribute == "phone":
            assert len(fact.private_part) == 2 and fact.private_part.isdigit()
        else:
            assert fact.private_part == fact.short_answer
    phones = [p.facts()[ATTRIBUTES.index("phone")].private_part for p in people]
    assert len(set(phones)) == len(phones)
