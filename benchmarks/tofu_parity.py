"""TOFU and MUSE metric parity: the batched engine against a slow, one-example-at-a-time recomputation.

    python benchmarks/tofu_parity.py [--model default] [--limit 0] [--max-new-tokens 32] [--only all|tofu|muse]
                                     [--json out.json]

The engine side is `unlearn.benchmarks.tofu` (AnswerStatsCache in padded, length-sorted batches; the
metric functions of `unlearn.metrics`). The independent side shares none of that code: for each
(question, answer) it builds the chat text with the tokenizer's template, masks the prompt, and takes
the model's own `labels=` loss (transformers' cross-entropy) as the average loss; token statistics come
from a plain log-softmax of that one unpadded sequence; answers are generated one question at a time
without padding; and every formula is written out again below from the papers (TOFU, Min-K%, Min-K%++,
exact memorization, extraction strength) in plain Python. Splits: forget01_perturbed (with
holdout01 for the membership-inference AUCs), retain_perturbed, real_authors_perturbed,
world_facts_perturbed. `--limit N` keeps the first N rows of each split (0 = all).

MUSE memorization on TOFU text (the shared datasets hold no MUSE corpus): verbatim memorization on the
forget01 answers (the first 16 tokens as the prompt, at most 128 new tokens; the same (prompt, continuation)
pairs go to both sides, as MUSE's data files hold them), knowledge memorization on the forget01 QA pairs
with the first 3 retain_perturbed pairs as in-context examples (at most 32 new tokens). The independent
side generates one prompt at a time and scores with `rouge_score` (no stemming), cutting answers as
MUSE's evaluation code does.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import zlib
from pathlib import Path

import torch

from unlearn.benchmarks.tofu import options_split_metrics, perturbed_split_metrics
from unlearn.benchmarks.tofu_data import load_split
from unlearn.metrics.cache import AnswerStatsCache
from unlearn.metrics.memorization import exact_memorization, extraction_strength
from unlearn.metrics.mia import auc_result
from unlearn.metrics.muse import knowledge_memorization, split_prefix, verbatim_memorization
from unlearn.models.loading import load_model

EPS = 1e-10


# ------------------------------------------------------------------ independent, one example at a time


def encode(tokenizer, question: str, answer: str) -> tuple[torch.Tensor, int]:
    user = [{"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": answer}], tokenize=False)
    full = full.rstrip("\n")
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    return torch.tensor([ids]), n_prompt


class Slow:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.memo: dict[tuple[str, str], dict] = {}

    @torch.no_grad()
    def stats(self, question: str, answer: str) -> dict:
        key = (question, answer)
        if key not in self.memo:
            ids, n_prompt = encode(self.tokenizer, question, answer)
            labels = ids.clone()
            labels[0, :n_prompt] = -100
            out = self.model(input_ids=ids, labels=labels)
            logp = torch.log_softmax(out.logits[0].double(), dim=-1)
            targets = ids[0, n_prompt:]
            rows = logp[n_prompt - 1 : -1]  # position t predicts token t+1
            token_logp = [float(rows[i, int(t)]) for i, t in enumerate(targets)]
            argmax_hit = [int(rows[i].argmax()) == int(t) for i, t in enumerate(targets)]
            probs = rows.exp()
            mu = (probs * rows).sum(-1)
            sigma = ((probs * rows * rows).sum(-1) - mu * mu).clamp(min=1e-6).sqrt()
            z = [float((rows[i, int(t)] - mu[i]) / sigma[i]) for i, t in enumerate(targets)]
            text = self.tokenizer.decode(targets.tolist(), skip_special_tokens=True)
            self.memo[key] = {"avg_loss": float(out.loss), "token_logp": token_logp, "hits": argmax_hit,
                              "z": z, "text": text}
        return self.memo[key]

    def loss(self, question: str, answer: str) -> float:
        return self.stats(question, answer)["avg_loss"]

    @torch.no_grad()
    def answer(self, question: str, max_new_tokens: int) -> str:
        user = [{"role": "user", "content": question}]
        prompt = self.tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        ids = torch.tensor([self.tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                  do_sample=False, temperature=None, top_p=None, top_k=None,
                                  pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def mean(xs) -> float:
    return sum(xs) / len(xs)


def rouge_recall(scorer, answer: str, generation: str) -> float:
    return scorer.score(answer, generation)["rougeL"].recall


def truth_ratio_value(para_loss: float, pert_losses: list[float]) -> float:
    """TOFU (code): geometric mean of the perturbed normalised probabilities over the paraphrased one."""
    return math.exp(-mean(pert_losses)) / (math.exp(-para_loss) + EPS)


def lowest_mean(values: list[float], k: float) -> float:
    m = max(1, int(len(values) * k))
    return mean(sorted(values)[:m])


def auc(members: list[float], nonmembers: list[float]) -> float:
    """Share of (member, non-member) pairs where the non-member scores higher; ties count one half."""
    wins = sum(1.0 if h > f else 0.5 if h == f else 0.0 for f in members for h in nonmembers)
    return wins / (len(members) * len(nonmembers))


def slow_perturbed(slow: Slow, rows, aggregation: str, scorer, max_new_tokens: int) -> dict[str, float]:
    ratios = [truth_ratio_value(slow.loss(r.question, r.paraphrased_answer),
                                [slow.loss(r.question, w) for w in r.perturbed_answer]) for r in rows]
    if aggregation == "closer_to_1_better":
        tr = mean([min(r, 1 / (r + EPS)) for r in ratios])
    else:
        tr = mean([max(0.0, 1 - r) for r in ratios])
    return {
        "Q_A_Prob": mean([math.exp(-slow.loss(r.question, r.answer)) for r in rows]),
        "Q_A_PARA_Prob": mean([math.exp(-slow.loss(r.question, r.paraphrased_answer)) for r in rows]),
        "Q_A_PERT_Prob": mean([mean([math.exp(-slow.loss(r.question, w)) for w in r.perturbed_answer]) for r in rows]),
        "Truth_Ratio": tr,
        "Q_A_ROUGE": mean([rouge_recall(scorer, r.answer, slow.answer(r.question, max_new_tokens)) for r in rows]),
    }


def slow_options(slow: Slow, rows, scorer, max_new_tokens: int) -> dict[str, float]:
    normalised, ratios = [], []
    for r in rows:
        p = math.exp(-slow.loss(r.question, r.answer))
        wrong = [math.exp(-slow.loss(r.question, w)) for w in r.perturbed_answer]
        normalised.append(p / (p + sum(wrong) + EPS))
        ratios.append(truth_ratio_value(slow.loss(r.question, r.answer), [slow.loss(r.question, w)
                                                                          for w in r.perturbed_answer]))
    return {
        "Q_A_Prob_normalised": mean(normalised),
        "Truth_Ratio": mean([max(0.0, 1 - x) for x in ratios]),
        "Q_A_ROUGE": mean([rouge_recall(scorer, r.answer, slow.answer(r.question, max_new_tokens)) for r in rows]),
    }


def slow_memorization_and_mia(slow: Slow, forget, holdout) -> dict[str, float]:
    em, es = [], []
    for r in forget:
        hits = slow.stats(r.question, r.answer)["hits"][:-1]  # the end-of-turn token is left out
        em.append(sum(hits) / len(hits))
        k = len(hits)
        while k > 0 and hits[k - 1]:
            k -= 1
        es.append(1 - k / len(hits))
    out = {"exact_memorization": mean(em), "extraction_strength": mean(es)}
    scores = {
        "mia_loss": lambda s: s["avg_loss"],
        "mia_zlib": lambda s: s["avg_loss"] / len(zlib.compress(s["text"].encode("utf-8"))),
        "mia_min_k": lambda s: -lowest_mean(s["token_logp"][:-1], 0.4),
        "mia_min_k_plus_plus": lambda s: -lowest_mean(s["z"][:-1], 0.4),
    }
    for name, score in scores.items():
        out[name] = auc([score(slow.stats(r.question, r.answer)) for r in forget],
                        [score(slow.stats(r.question, r.answer)) for r in holdout])
    return out


@torch.no_grad()
def raw_continuation(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=True)["input_ids"]])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False, temperature=None, top_p=None, top_k=None,
                         pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True, clean_up_tokenization_spaces=True)


def slow_muse(model, tokenizer, muse_data: dict) -> dict[str, float]:
    """MUSE VerbMem and KnowMem (mean ROUGE-L F1, rouge_score without stemming), one prompt at a time."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    verb = [scorer.score(gt, raw_continuation(model, tokenizer, prompt, 128))["rougeL"].fmeasure
            for prompt, gt in muse_data["verbmem"]]
    context = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in muse_data["shots"])
    know = []
    for q, a in muse_data["knowmem"]:
        output = raw_continuation(model, tokenizer, context + f"Question: {q}\nAnswer: ", 32)
        for stop in ("\n\n", "\nQuestion", "Question:"):
            output = output.split(stop)[0]
        know.append(scorer.score(a, output)["rougeL"].fmeasure)
    return {"MUSE forget01/verbmem_rouge": mean(verb), "MUSE forget01/knowmem_rouge": mean(know)}


def muse_inputs(tokenizer, data: dict) -> dict:
    forget, retain = data["forget01_perturbed"], data["retain_perturbed"]
    return {
        "verbmem": split_prefix(tokenizer, [r.answer for r in forget], prefix_tokens=16, continuation_tokens=128),
        "knowmem": [(r.question, r.answer) for r in forget],
        "shots": [(r.question, r.answer) for r in retain[:3]],
    }


# ------------------------------------------------------------------------------------------ engine side


def engine_muse(model, tokenizer, data: dict, batch_size: int) -> dict[str, float]:
    muse = muse_inputs(tokenizer, data)
    prompts, continuations = zip(*muse["verbmem"], strict=True)
    questions, answers = zip(*muse["knowmem"], strict=True)
    return {
        "MUSE forget01/verbmem_rouge": verbatim_memorization(model, tokenizer, prompts, continuations, 128,
                                                             batch_size).value,
        "MUSE forget01/knowmem_rouge": knowledge_memorization(model, tokenizer, questions, answers, muse["shots"],
                                                              32, batch_size).value,
    }


def engine_values(model, tokenizer, data: dict, batch_size: int, max_new_tokens: int) -> tuple[dict, int]:
    cache = AnswerStatsCache(model, tokenizer, batch_size=batch_size)
    generate = {"batch_size": batch_size, "max_new_tokens": max_new_tokens}
    out = {}
    for name, aggregation in (("forget01_perturbed", "closer_to_1_better"), ("retain_perturbed", "true_better")):
        part = perturbed_split_metrics(model, tokenizer, cache, data[name], aggregation, generate, name)
        out |= {f"{name}/{k}": v.value for k, v in part.items()}
    for name in ("real_authors_perturbed", "world_facts_perturbed"):
        part = options_split_metrics(model, tokenizer, cache, data[name], generate, name)
        out |= {f"{name}/{k}": v.value for k, v in part.items()}
    forget = cache.get([(r.question, r.answer) for r in data["forget01_perturbed"]], mia=True)
    holdout = cache.get([(r.question, r.answer) for r in data["holdout01"]], mia=True)
    out["forget01_perturbed/exact_memorization"] = exact_memorization([list(s.matches) for s in forget]).value
    out["forget01_perturbed/extraction_strength"] = extraction_strength([list(s.matches) for s in forget]).value
    for key, score in (("mia_loss", "loss"), ("mia_zlib", "zlib"), ("mia_min_k", "min_k"),
                       ("mia_min_k_plus_plus", "min_k_plus_plus")):
        out[f"forget01 vs holdout01/{key}"] = auc_result([s.mia_score(score) for s in forget],
                                                         [s.mia_score(score) for s in holdout]).value
    return out, cache.tokens_scored


def slow_values(model, tokenizer, data: dict, max_new_tokens: int) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    slow = Slow(model, tokenizer)
    out = {}
    for name, aggregation in (("forget01_perturbed", "closer_to_1_better"), ("retain_perturbed", "true_better")):
        out |= {f"{name}/{k}": v for k, v in slow_perturbed(slow, data[name], aggregation, scorer,
                                                             max_new_tokens).items()}
    for name in ("real_authors_perturbed", "world_facts_perturbed"):
        out |= {f"{name}/{k}": v for k, v in slow_options(slow, data[name], scorer, max_new_tokens).items()}
    mem = slow_memorization_and_mia(slow, data["forget01_perturbed"], data["holdout01"])
    for key, value in mem.items():
        prefix = "forget01 vs holdout01" if key.startswith("mia") else "forget01_perturbed"
        out[f"{prefix}/{key}"] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--source", default=None, help="TOFU directory (default: ../shared/datasets/tofu)")
    parser.add_argument("--limit", type=int, default=0, help="first N rows of each split (0 = all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", choices=["all", "tofu", "muse"], default="all", help="which metrics to compare")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model(args.model)
    names = ("forget01_perturbed", "retain_perturbed", "real_authors_perturbed", "world_facts_perturbed", "holdout01")
    data = {n: load_split(args.source, n)[: args.limit or None] for n in names}
    engine, slow, tokens = {}, {}, 0
    start = time.perf_counter()
    if args.only in ("all", "tofu"):
        engine, tokens = engine_values(model, tokenizer, data, args.batch_size, args.max_new_tokens)
    if args.only in ("all", "muse"):
        engine |= engine_muse(model, tokenizer, data, args.batch_size)
    engine_s = time.perf_counter() - start
    start = time.perf_counter()
    if args.only in ("all", "tofu"):
        slow = slow_values(model, tokenizer, data, args.max_new_tokens)
    if args.only in ("all", "muse"):
        slow |= slow_muse(model, tokenizer, muse_inputs(tokenizer, data))
    slow_s = time.perf_counter() - start
    print(f"rows: {', '.join(f'{n} {len(v)}' for n, v in data.items())}; engine {engine_s:.0f} s "
          f"({tokens} tokens scored), one-at-a-time {slow_s:.0f} s\n")
    print("| split / metric | engine | independent | abs. difference |")
    print("|---|---|---|---|")
    rows = []
    for key, value in engine.items():
        diff = abs(value - slow[key])
        rows.append({"metric": key, "engine": value, "independent": slow[key], "difference": diff})
        print(f"| {key} | {value:.6f} | {slow[key]:.6f} | {diff:.1e} |")
    worst = max(r["difference"] for r in rows)
    print(f"\nlargest difference: {worst:.1e} ({'within' if worst <= 1e-4 else 'OUTSIDE'} 1e-4)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "engine_s": engine_s, "slow_s": slow_s}, indent=2))


if __name__ == "__main__":
    main()
