"""TOFU data layer: the published files, every validation error, and the mini subsets' invariants."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from tofu_fixtures import perturbed, qa, write_jsonl, write_synthetic_tofu

from unlearn.benchmarks import tofu_data as td
from unlearn.errors import ConfigError

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tofu"
needs_real = pytest.mark.skipif(
    not (REAL_DIR / "full.jsonl").is_file(), reason=f"TOFU data not found at {REAL_DIR} (see DESIGN.md, Data)"
)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return write_synthetic_tofu(tmp_path_factory.mktemp("tofu"))


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------- the table


def test_split_table_matches_the_readme():
    assert len(td.SPLITS) == 18
    sizes = {name: spec.rows for name, spec in td.SPLITS.items()}
    assert sizes["full"] == 4000 and sizes["retain_perturbed"] == 400
    assert [sizes[f"forget{p:02d}"] for p in td.PERCENTS] == [40, 200, 400]
    assert [sizes[f"retain{100 - p}"] for p in td.PERCENTS] == [3960, 3800, 3600]
    assert sizes["world_facts"] == sizes["world_facts_perturbed"] == 117
    assert td.SPLITS["forget05_perturbed"].fields[-1] == "perturbed_answer"
    assert td.SPLITS["real_authors"].fields == (
        "question",
        "answer",
        "option1",
        "option2",
        "option3",
        "option4",
    )


def test_pairs():
    assert td.paired_splits("forget01") == ("retain99", "holdout01")
    assert td.paired_splits("forget10") == ("retain90", "holdout10")
    assert all(set(pair) <= set(td.SPLITS) for pair in td.PAIRS.values())
    assert "Did you mean 'forget05'" in one_line_error(td.paired_splits, "forget5")


def test_author_rows():
    assert td.author_rows(0) == range(0, 20) and td.author_rows(199) == range(3980, 4000)
    assert [td.forget_author_count(n, p) for n, p in ((20, 10), (20, 5), (10, 10), (200, 1), (200, 5))] == [
        2,
        1,
        1,
        2,
        10,
    ]


# ---------------------------------------------------------------------------------------------- real files


@needs_real
@pytest.mark.parametrize("name", list(td.SPLITS))
def test_real_split_counts(name):
    rows = td.load_split(REAL_DIR, name)
    spec = td.SPLITS[name]
    assert len(rows) == spec.rows
    assert all(type(r) is spec.row_type for r in rows)
    if spec.n_perturbed:
        assert {len(r.perturbed_answer) for r in rows} == {spec.n_perturbed}


@needs_real
def test_default_source_is_the_shared_directory(monkeypatch):
    monkeypatch.delenv(td.ENV_DIR, raising=False)
    assert td.default_source() == REAL_DIR
    assert len(td.load_split(None, "forget01")) == 40


@needs_real
def test_real_files_follow_full_in_author_order():
    """The facts the mini design rests on (module docstring)."""
    full = td.load_split(REAL_DIR, "full")
    pairs = lambda rows: [(r.question, r.answer) for r in rows]  # noqa: E731
    assert pairs(td.load_split(REAL_DIR, "retain_perturbed")) == pairs(full[:400])  # authors 0-19
    assert pairs(td.load_split(REAL_DIR, "forget10_perturbed")) == pairs(full[3600:])  # authors 180-199
    assert td.load_split(REAL_DIR, "holdout10")[:40] == td.load_split(REAL_DIR, "holdout01")


# ---------------------------------------------------------------------------------- sources and errors


def test_env_variable_overrides_the_default(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "forget01.jsonl", [qa("q1"), qa("q2")])
    monkeypatch.setenv(td.ENV_DIR, str(tmp_path))
    assert td.load_split(None, "forget01") == [td.QARow("q1", "a:q1"), td.QARow("q2", "a:q2")]
    monkeypatch.setenv(td.ENV_DIR, str(tmp_path / "gone"))
    message = one_line_error(td.load_split, None, "forget01")
    assert "not found" in message and td.ENV_DIR in message


def test_unknown_split_suggests_a_name(tmp_path):
    message = one_line_error(td.load_split, tmp_path, "forget_10")
    assert "unknown TOFU split 'forget_10'" in message and "Did you mean 'forget10'" in message
    assert "Valid splits: full, forget01" in message


def test_missing_directory(tmp_path):
    message = one_line_error(td.load_split, tmp_path / "nowhere", "full")
    assert f"TOFU directory not found: {tmp_path / 'nowhere'}" in message and td.HUB_ID in message


def test_missing_file_names_file_and_directory(tmp_path):
    message = one_line_error(td.load_split, tmp_path, "holdout05")
    assert str(tmp_path) in message and "holdout05.jsonl" in message and "question, answer" in message


def test_bad_json_names_the_line(tmp_path):
    path = tmp_path / "full.jsonl"
    path.write_text(json.dumps(qa("q")) + "\n\n{not json\n", encoding="utf-8")
    assert f"{path}:3: not valid JSON" in one_line_error(td.load_split, tmp_path, "full")


def test_row_that_is_not_an_object(tmp_path):
    path = write_jsonl(tmp_path / "full.jsonl", [qa("q"), ["q", "a"]])
    assert f"{path}:2: each row must be a JSON object" in one_line_error(td.load_split, tmp_path, "full")


def test_missing_field_names_line_and_field(tmp_path):
    path = write_jsonl(
        tmp_path / "retain_perturbed.jsonl", [perturbed("q1"), {**qa("q2"), "paraphrased_answer": "p"}]
    )
    message = one_line_error(td.load_split, tmp_path, "retain_perturbed")
    assert f"{path}:2: missing field 'paraphrased_question'" in message


def test_wrong_type_names_line_and_field(tmp_path):
    path = write_jsonl(
        tmp_path / "world_facts.jsonl",
        [{**qa("q"), "option1": "x", "option2": 2, "option3": "y", "option4": "z"}],
    )
    message = one_line_error(td.load_split, tmp_path, "world_facts")
    assert f"{path}:1: field 'option2' must be a string, got int" in message


@pytest.mark.parametrize(
    "name, row, expected",
    [
        ("forget01_perturbed", perturbed("q", 4), "must hold 5 answers in split 'forget01_perturbed', got 4"),
        (
            "real_authors_perturbed",
            perturbed("q", 5),
            "must hold 3 answers in split 'real_authors_perturbed', got 5",
        ),
        (
            "forget05_perturbed",
            {**perturbed("q"), "perturbed_answer": "one"},
            "must be a list of 5 strings, got str",
        ),
    ],
)
def test_perturbed_answer_shape(tmp_path, name, row, expected):
    path = write_jsonl(tmp_path / f"{name}.jsonl", [row])
    message = one_line_error(td.load_split, tmp_path, name)
    assert f"{path}:1: field 'perturbed_answer'" in message and expected in message


def test_empty_file(tmp_path):
    path = tmp_path / "holdout01.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    message = one_line_error(td.load_split, tmp_path, "holdout01")
    assert f"{path} is empty" in message and "40 rows" in message


def test_rows_are_typed(tmp_path):
    write_jsonl(tmp_path / "forget01_perturbed.jsonl", [perturbed("q")])
    write_jsonl(
        tmp_path / "real_authors.jsonl", [{**qa("q"), **{f"option{i}": f"o{i}" for i in range(1, 5)}}]
    )
    row = td.load_split(tmp_path, "forget01_perturbed")[0]
    assert (
        row.perturbed_answer == tuple(f"wrong{i}:q" for i in range(5)) and row.paraphrased_question == "pq:q"
    )
    assert td.load_split(tmp_path, "real_authors")[0] == td.ChoiceRow("q", "a:q", ("o1", "o2", "o3", "o4"))


# ---------------------------------------------------------------------------------------------- hub


def fake_datasets(monkeypatch, load_dataset) -> None:
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_hub_offline_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'locuslab/TOFU' on the Hub (LocalEntryNotFoundError)\ndetails")

    fake_datasets(monkeypatch, offline)
    message = one_line_error(td.load_split, td.HUB_ID, "forget01")
    assert "could not load 'locuslab/TOFU' config 'forget01'" in message and "local directory" in message


def test_hub_without_datasets_package(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    message = one_line_error(td.load_split, td.HUB_ID, "full")
    assert "pip install datasets" in message and "local directory" in message


def test_hub_rows_are_validated(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    calls = []

    def load_dataset(hub_id, name, split):
        calls.append((hub_id, name, split))
        return [perturbed("q", 3), {"question": "q2", "answer": "a", "perturbed_answer": ["x"]}]

    fake_datasets(monkeypatch, load_dataset)
    message = one_line_error(td.load_split, td.HUB_ID, "world_facts_perturbed")
    assert calls == [("locuslab/TOFU", "world_facts_perturbed", "train")]
    assert "locuslab/TOFU/world_facts_perturbed row 1: field 'perturbed_answer'" in message


# ---------------------------------------------------------------------------------------------- mini subsets


def check_mini(source: Path, n_authors: int, percent: int) -> None:
    splits = td.mini_authors(n_authors, percent, source)
    full = td.load_split(source, "full")
    k = td.forget_author_count(n_authors, percent)
    subset = full[-20 * n_authors :]
    assert not set(splits.forget) & set(splits.retain)
    assert splits.retain + splits.forget == subset
    assert splits.forget == full[-20 * k :]
    assert splits.forget_authors == tuple(range(200 - k, 200))
    assert splits.retain_authors == tuple(range(200 - n_authors, 200 - k))
    assert splits.holdout == td.load_split(source, f"holdout{percent:02d}")[: 20 * k]
    assert [(r.question, r.answer) for r in splits.forget_perturbed] == [
        (r.question, r.answer) for r in splits.forget
    ]
    retain_pairs = {(r.question, r.answer) for r in splits.retain}
    assert splits.retain_perturbed and all(
        (r.question, r.answer) in retain_pairs for r in splits.retain_perturbed
    )
    assert splits.describe() == {
        "forget_authors": k,
        "retain_authors": n_authors - k,
        "forget": 20 * k,
        "retain": 20 * (n_authors - k),
        "holdout": 20 * k,
        "forget_perturbed": 20 * k,
        "retain_perturbed": len(splits.retain_perturbed),
        "real_authors": 100,
        "world_facts": 117,
        "unseen_perturbed": 100,
    }
    # never-taught authors: the published retain_perturbed rows of authors 0-4, none of them in the subset
    assert splits.unseen_perturbed == td.load_split(source, "retain_perturbed")[:100]
    taught = {(r.question, r.answer) for r in subset}
    assert not any((r.question, r.answer) in taught for r in splits.unseen_perturbed)
    assert td.mini_authors(n_authors, percent, source) == splits  # deterministic


@pytest.mark.parametrize("n_authors, percent", [(20, 10), (20, 5), (10, 10), (2, 1), (40, 10)])
def test_mini_invariants_synthetic(synthetic_dir, n_authors, percent):
    check_mini(synthetic_dir, n_authors, percent)


@needs_real
@pytest.mark.parametrize("n_authors, percent", [(20, 10), (20, 5), (10, 10)])
def test_mini_invariants_real(n_authors, percent):
    check_mini(REAL_DIR, n_authors, percent)


@needs_real
def test_mini_20_authors_is_forget01():
    splits = td.mini_authors(20, 10, REAL_DIR, n_general=5)
    assert splits.forget == td.load_split(REAL_DIR, "forget01")
    assert splits.forget_perturbed == td.load_split(REAL_DIR, "forget01_perturbed")
    assert splits.holdout == td.load_split(REAL_DIR, "holdout01")
    assert splits.retain_perturbed == td.load_split(REAL_DIR, "forget10_perturbed")[:360]  # authors 180-197
    assert len(splits.real_authors) == len(splits.world_facts) == 5


def test_unseen_authors_are_the_first_untaught_ones():
    assert td.unseen_authors(list(range(170, 200)), list(range(20))) == [0, 1, 2, 3, 4]
    assert td.unseen_authors(list(range(3, 200)), list(range(20))) == [0, 1, 2]
    assert td.unseen_authors(list(range(200)), list(range(20))) == []
    assert td.unseen_authors([], list(range(20)), limit=2) == [0, 1]


@pytest.mark.parametrize("percent", td.PERCENTS)
def test_all_authors_reproduce_the_published_setting(synthetic_dir, percent):
    assert td.mini_authors(200, percent, synthetic_dir) == td.load_tofu(percent, synthetic_dir)


@needs_real
@pytest.mark.parametrize("percent", [5, 10])
def test_all_authors_reproduce_the_published_setting_real(percent):
    splits = td.load_tofu(percent, REAL_DIR)
    assert td.mini_authors(200, percent, REAL_DIR) == splits
    assert splits.describe()["retain_perturbed"] == 400


def test_mini_argument_errors(synthetic_dir):
    assert "from 2 to 200" in one_line_error(td.mini_authors, 1, 10, synthetic_dir)
    assert "from 2 to 200" in one_line_error(td.mini_authors, 201, 10, synthetic_dir)
    assert "one of 1, 5, 10" in one_line_error(td.mini_authors, 20, 3, synthetic_dir)


def test_mini_needs_the_published_full(tmp_path):
    write_jsonl(tmp_path / "full.jsonl", [qa(f"q{i}") for i in range(40)])
    assert "4000 rows" in one_line_error(td.mini_authors, 2, 10, tmp_path)


def test_mini_rejects_misaligned_perturbed_rows(tmp_path):
    directory = write_synthetic_tofu(tmp_path / "tofu")
    rows = (directory / "forget10_perturbed.jsonl").read_text(encoding="utf-8").splitlines()
    (directory / "forget10_perturbed.jsonl").write_text(
        "\n".join(rows[1:] + rows[:1]) + "\n", encoding="utf-8"
    )
    assert "does not follow 'full'" in one_line_error(td.mini_authors, 20, 10, directory)
