"""MMLU loading and evaluation: real files when present, validation on small synthetic ones."""

from __future__ import annotations

import pytest

from unlearn.benchmarks.mmlu import default_source, evaluate_subject, load_subject, subjects
from unlearn.errors import ConfigError


def write(tmp_path, split: str, subject: str, text: str):
    folder = tmp_path / split
    folder.mkdir(exist_ok=True)
    (folder / f"{subject}_{split}.csv").write_text(text)


def test_real_files_load():
    if not (default_source() / "test").is_dir():
        pytest.skip("../shared/datasets/mmlu is absent")
    assert len(subjects(split="test")) == 57
    questions = load_subject("anatomy", "dev")
    assert len(questions) == 5 and all(len(q.choices) == 4 for q in questions)
    assert questions[0].answer == 3  # the first anatomy dev answer is D


def test_bad_files_are_named(tmp_path):
    write(tmp_path, "test", "algebra", "Q?,a,b,c\n")
    with pytest.raises(ConfigError, match=r"algebra_test.csv:1: expected 6 fields"):
        load_subject("algebra", "test", tmp_path)
    write(tmp_path, "test", "algebra", "Q?,a,b,c,d,E\n")
    with pytest.raises(ConfigError, match="answer must be one of A, B, C, D"):
        load_subject("algebra", "test", tmp_path)
    with pytest.raises(ConfigError, match="Did you mean 'algebra'"):
        load_subject("algebr", "test", tmp_path)
    with pytest.raises(ConfigError, match="split 'train'"):
        load_subject("algebra", "train", tmp_path)
    with pytest.raises(ConfigError, match="MMLU directory not found"):
        load_subject("algebra", "test", tmp_path / "nope")


def test_evaluate_subject_few_shot(tmp_path, tiny_model, tokenizer):
    write(tmp_path, "dev", "algebra", "1+1?,2,3,4,5,A\n")
    write(tmp_path, "test", "algebra", "2+2?,3,4,5,6,B\n3+3?,6,7,8,9,A\n")
    result = evaluate_subject(tiny_model, tokenizer, "algebra", shots=1, source=tmp_path, batch_size=2)
    assert len(result.per_example) == 2 and set(result.per_example) <= {0.0, 1.0}
    with pytest.raises(ConfigError, match="only 1 dev questions for 5 shots"):
        evaluate_subject(tiny_model, tokenizer, "algebra", shots=5, source=tmp_path)
