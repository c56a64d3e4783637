"""A synthetic TOFU directory in the published structure (tiny strings), for tests that need every split."""

from __future__ import annotations

import json
from pathlib import Path

from unlearn.benchmarks import tofu_data as td


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def qa(q: str) -> dict:
    return {"question": q, "answer": f"a:{q}"}


def perturbed(q: str, n: int = 5) -> dict:
    return {
        **qa(q),
        "paraphrased_question": f"pq:{q}",
        "paraphrased_answer": f"pa:{q}",
        "perturbed_answer": [f"wrong{i}:{q}" for i in range(n)],
    }


def write_synthetic_tofu(directory: Path) -> Path:
    """Every split, in the published structure (author order, prefixes, perturbed alignment), tiny strings."""
    directory.mkdir(exist_ok=True)
    full = [qa(f"author{a}-q{j}") for a in range(td.N_AUTHORS) for j in range(td.QA_PER_AUTHOR)]
    holdout = [qa(f"holdout{a}-q{j}") for a in range(20) for j in range(td.QA_PER_AUTHOR)]
    write_jsonl(directory / "full.jsonl", full)
    for p in td.PERCENTS:
        k = 40 * p
        write_jsonl(directory / f"forget{p:02d}.jsonl", full[-k:])
        write_jsonl(directory / f"retain{100 - p}.jsonl", full[:-k])
        write_jsonl(directory / f"holdout{p:02d}.jsonl", holdout[:k])
        write_jsonl(
            directory / f"forget{p:02d}_perturbed.jsonl", [perturbed(r["question"]) for r in full[-k:]]
        )
    write_jsonl(directory / "retain_perturbed.jsonl", [perturbed(r["question"]) for r in full[:400]])
    for name, n in (("real_authors", 100), ("world_facts", 117)):
        options = [{**qa(f"{name}{i}"), **{f"option{o}": f"opt{o}" for o in range(1, 5)}} for i in range(n)]
        write_jsonl(directory / f"{name}.jsonl", options)
        write_jsonl(directory / f"{name}_perturbed.jsonl", [perturbed(f"{name}{i}", 3) for i in range(n)])
    return directory
