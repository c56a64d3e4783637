"""The TOFU evaluation protocol: every metric of the TOFU summary for one model, from one set of splits.

Keys follow the names researchers use (OpenUnlearning's TOFU summary):

- forget split (forgetXX_perturbed): `forget_Q_A_Prob`, `forget_Q_A_ROUGE` (ROUGE-L recall of greedy
  answers), `forget_Q_A_PARA_Prob`, `forget_Q_A_PERT_Prob`, `forget_truth_ratio` (closer_to_1_better),
  `extraction_strength`, `exact_memorization`, and against a saved retain-model evaluation,
  `forget_quality` (KS p-value of the per-example truth ratios);
- without a retain model, where the setting has never-taught authors with published perturbations (mini
  settings): `unseen_forget_quality`, the same KS p-value between the model's forget truth ratios and its
  own truth ratios on those authors. A retrained model treats the forget authors as it treats authors it
  never saw, so this needs neither the retain model nor its evaluation;
- membership inference, forget vs holdout: `mia_loss`, `mia_zlib`, `mia_min_k`, `mia_min_k_plus_plus`
  (ROC-AUC) and, against the retain model's `mia_min_k`, `privleak`;
- utility: `retain_Q_A_Prob`, `retain_Q_A_ROUGE`, `retain_Truth_Ratio` (retain_perturbed);
  `ra_Q_A_Prob_normalised`, `ra_Q_A_ROUGE`, `ra_Truth_Ratio` (real authors); the same with `wf_` (world
  facts); `model_utility` (their harmonic mean).

Truth ratios on the forget and retain splits compare the perturbed answers with the *paraphrased* answer,
on real authors and world facts with the answer itself, all asked with the original question
(OpenUnlearning's TOFU configs). Every likelihood comes from one `AnswerStatsCache` pass per distinct
(question, answer) pair; ROUGE from one batched greedy generation per split.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ..errors import ConfigError
from ..metrics.base import MetricResult, mean_result
from ..metrics.cache import AnswerStatsCache
from ..metrics.generation import generate_answers
from ..metrics.memorization import exact_memorization, extraction_strength
from ..metrics.mia import auc_result
from ..metrics.privacy import privleak
from ..metrics.result import EvalResult, metric_entry
from ..metrics.text import rouge_l
from ..metrics.tofu import (
    MODEL_UTILITY_PARTS,
    forget_quality,
    model_utility,
    probability,
    probability_over_options,
    truth_ratio,
    truth_ratios,
)
from .tofu_data import TofuSplits

SCHEMA = "unlearn.tofu_eval/1"
# The registered metric behind each summary key (its higher_is_better and version go into the file).
REGISTERED = {
    "Q_A_Prob": "probability", "Q_A_PARA_Prob": "probability", "Q_A_PERT_Prob": "probability",
    "Q_A_Prob_normalised": "probability_w_options", "Q_A_ROUGE": "rouge_l_recall", "Truth_Ratio": "truth_ratio",
    "truth_ratio": "truth_ratio", "exact_memorization": "exact_memorization",
    "extraction_strength": "extraction_strength", "mia_loss": "mia_loss", "mia_zlib": "mia_zlib",
    "mia_min_k": "mia_min_k", "mia_min_k_plus_plus": "mia_min_k_plus_plus", "model_utility": "model_utility",
    "forget_quality": "forget_quality", "privleak": "privleak",
}
# Keys measured on the forget split whose registered direction (on data to keep) is reversed in this use.
FORGET_LOWER_IS_BETTER = ("forget_Q_A_Prob", "forget_Q_A_PARA_Prob", "forget_Q_A_ROUGE", "exact_memorization",
                          "extraction_strength")
MIA_KEYS = {"mia_loss": "loss", "mia_zlib": "zlib", "mia_min_k": "min_k", "mia_min_k_plus_plus": "min_k_plus_plus"}


def forget_fingerprint(splits: TofuSplits) -> str:
    """Hash of the forget questions and answers: two evaluations compare only on the same forget set."""
    rows = [[r.question, r.answer] for r in splits.forget_perturbed]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _rouge_recall(model, tokenizer, rows, batch_size: int, max_new_tokens: int, progress: str | None) -> MetricResult:
    generations = generate_answers(model, tokenizer, [r.question for r in rows], batch_size=batch_size,
                                   max_new_tokens=max_new_tokens, progress=progress)
    return mean_result([rouge_l(g.text, r.answer)[1] for g, r in zip(generations, rows, strict=True)])


def _score_split(cache: AnswerStatsCache, rows, paraphrased: bool, progress: str | None) -> None:
    """Score every answer the split's metrics read in one call, so that a question's answer, paraphrased answer
    and perturbed answers share the computation of its prompt."""
    cache.get([(r.question, a) for r in rows
               for a in (r.answer, *((r.paraphrased_answer,) if paraphrased else ()), *r.perturbed_answer)], progress)


def _para_pert(cache: AnswerStatsCache, rows, paraphrased: bool, progress: str | None):
    """(correct avg losses, perturbed avg losses (examples x answers)) for a truth ratio on `rows`."""
    correct = [(r.question, r.paraphrased_answer if paraphrased else r.answer) for r in rows]
    width = len(rows[0].perturbed_answer)
    wrong = [(r.question, w) for r in rows for w in r.perturbed_answer]
    para = cache.avg_losses(correct, progress)
    pert = np.asarray(cache.avg_losses(wrong, progress)).reshape(len(rows), width)
    return para, pert


def unseen_forget_quality(cache: AnswerStatsCache, splits: TofuSplits, forget_ratios, progress: str | None = None):
    """(MetricResult, the never-taught authors' truth ratios): the KS p-value between the model's forget truth
    ratios and its truth ratios on `splits.unseen_perturbed`, scored with the same cache."""
    _score_split(cache, splits.unseen_perturbed, True, progress)
    unseen = truth_ratios(*_para_pert(cache, splits.unseen_perturbed, True, progress))
    return forget_quality(list(forget_ratios), unseen.tolist()), unseen.tolist()


def lacks_unseen_forget_quality(result: EvalResult, splits: TofuSplits) -> bool:
    """Whether `result` was saved before `unseen_forget_quality` existed although `splits` has never-taught
    authors to compute it from."""
    return bool(splits.unseen_perturbed) and "unseen_forget_quality" not in result.summary


def add_unseen_forget_quality(result: EvalResult, model, tokenizer, splits: TofuSplits, batch_size: int = 16,
                              max_length: int = 512, progress: bool = True) -> bool:
    """Add `unseen_forget_quality` to an evaluation saved before it existed (its forget truth ratios are in
    the file); False when the setting has no never-taught authors or the value is already there."""
    if not lacks_unseen_forget_quality(result, splits):
        return False
    if result.details.get("forget_fingerprint") != forget_fingerprint(splits):
        raise ConfigError("the evaluation was made on a different forget set; evaluate the model again")
    cache = AnswerStatsCache(model, tokenizer, batch_size, max_length)
    value, unseen = unseen_forget_quality(cache, splits, result.details["forget_truth_ratios"],
                                          "TOFU never-taught authors" if progress else None)
    result.summary["unseen_forget_quality"] = value.value
    result.metrics["unseen_forget_quality"] = metric_entry(value, "forget_quality")
    result.details["unseen_truth_ratios"] = unseen
    return True


def perturbed_split_metrics(model, tokenizer, cache: AnswerStatsCache, rows, aggregation: str, generate: dict,
                            progress: str | None = None) -> dict[str, MetricResult]:
    """Q_A_Prob, Q_A_PARA_Prob, Q_A_PERT_Prob, Truth_Ratio (paraphrased vs perturbed, `aggregation`) and
    Q_A_ROUGE on a forgetXX_perturbed / retain_perturbed split."""
    _score_split(cache, rows, True, progress)
    prob = probability(cache.avg_losses([(r.question, r.answer) for r in rows], progress))
    para, pert = _para_pert(cache, rows, True, progress)
    return {
        "Q_A_Prob": prob,
        "Q_A_PARA_Prob": probability(para),
        "Q_A_PERT_Prob": mean_result(np.exp(-pert).mean(axis=1).tolist()),
        "Truth_Ratio": truth_ratio(para, pert, aggregation=aggregation),
        "Q_A_ROUGE": _rouge_recall(model, tokenizer, rows, progress=progress and f"{progress} answers", **generate),
    }


def options_split_metrics(model, tokenizer, cache: AnswerStatsCache, rows, generate: dict,
                          progress: str | None = None) -> dict[str, MetricResult]:
    """Q_A_Prob_normalised, Truth_Ratio (answer vs wrong options, true_better) and Q_A_ROUGE on a
    real_authors_perturbed / world_facts_perturbed split."""
    _score_split(cache, rows, False, progress)
    correct, wrong = _para_pert(cache, rows, False, progress)
    return {
        "Q_A_Prob_normalised": probability_over_options(correct, wrong),
        "Truth_Ratio": truth_ratio(correct, wrong, aggregation="true_better"),
        "Q_A_ROUGE": _rouge_recall(model, tokenizer, rows, progress=progress and f"{progress} answers", **generate),
    }


def evaluate_tofu(
    model, tokenizer, splits: TofuSplits, retain_eval: EvalResult | None = None, batch_size: int = 16,
    max_new_tokens: int = 64, max_length: int = 512, progress: bool = True, base_model: str | None = None,
) -> EvalResult:
    """The TOFU summary and per-example values for `model` (see the module docstring for the keys).

    `retain_eval` is a saved evaluation of the retain model on the same splits (for forget quality and
    privleak); `base_model` names the model both were fine-tuned from, recorded and checked against it."""
    _check_splits(splits)
    if retain_eval is not None:
        check_retain_eval(retain_eval, splits, base_model)
    bar = (lambda text: f"TOFU {text}") if progress else (lambda text: None)
    cache = AnswerStatsCache(model, tokenizer, batch_size, max_length)
    generate = dict(batch_size=batch_size, max_new_tokens=max_new_tokens)
    results: dict[str, MetricResult] = {}

    members = cache.get([(r.question, r.answer) for r in splits.forget], bar("forget (MIA)"), mia=True)
    holdout = cache.get([(r.question, r.answer) for r in splits.holdout], bar("holdout (MIA)"), mia=True)
    for key, score in MIA_KEYS.items():
        results[key] = auc_result([s.mia_score(score) for s in members], [s.mia_score(score) for s in holdout])

    forget = splits.forget_perturbed
    part = perturbed_split_metrics(model, tokenizer, cache, forget, "closer_to_1_better", generate, bar("forget"))
    results.update({f"forget_{k}": v for k, v in part.items() if k != "Truth_Ratio"})
    results["forget_truth_ratio"] = part["Truth_Ratio"]
    stats = cache.get([(r.question, r.answer) for r in forget])
    results["exact_memorization"] = exact_memorization([list(s.matches) for s in stats])
    results["extraction_strength"] = extraction_strength([list(s.matches) for s in stats])
    forget_ratios = truth_ratios(*_para_pert(cache, forget, True, None))
    unseen_ratios = None
    if splits.unseen_perturbed:
        results["unseen_forget_quality"], unseen_ratios = unseen_forget_quality(
            cache, splits, forget_ratios.tolist(), bar("never-taught authors"))

    part = perturbed_split_metrics(model, tokenizer, cache, splits.retain_perturbed, "true_better", generate,
                                   bar("retain"))
    results.update({f"retain_{k}": v for k, v in part.items() if k in ("Q_A_Prob", "Q_A_ROUGE", "Truth_Ratio")})
    for prefix, rows in (("ra", splits.real_authors), ("wf", splits.world_facts)):
        part = options_split_metrics(model, tokenizer, cache, rows, generate, bar(prefix))
        results.update({f"{prefix}_{k}": v for k, v in part.items()})
    results["model_utility"] = model_utility({k: results[k].value for k in MODEL_UTILITY_PARTS})
    if retain_eval is not None:
        results["forget_quality"] = forget_quality(forget_ratios.tolist(), retain_eval.details["forget_truth_ratios"])
        results["privleak"] = privleak(results["mia_min_k"].value, retain_eval.summary["mia_min_k"])

    details = {"forget_fingerprint": forget_fingerprint(splits), "base_model": base_model, "sizes": splits.describe(),
               "forget_truth_ratios": forget_ratios.tolist(), "tokens_scored": cache.tokens_scored}
    if unseen_ratios is not None:
        details["unseen_truth_ratios"] = unseen_ratios
    return EvalResult.from_metrics(SCHEMA, "tofu", results, {k: registered_metric(k) for k in results}, details,
                                   {k: False for k in FORGET_LOWER_IS_BETTER if k in results})


def registered_metric(key: str) -> str:
    """The registered metric behind a summary key (`forget_Q_A_Prob` -> `probability`)."""
    return REGISTERED.get(key) or REGISTERED[key.split("_", 1)[1]]


def _check_splits(splits: TofuSplits) -> None:
    for name in ("forget", "holdout", "forget_perturbed", "retain_perturbed", "real_authors", "world_facts"):
        if not getattr(splits, name):
            raise ConfigError(f"TOFU evaluation needs the '{name}' split, and it is empty")


def check_retain_eval(retain_eval: EvalResult, splits: TofuSplits, base_model: str | None = None) -> None:
    """Refuse a retain-model evaluation of another forget set or base model: forget quality would be
    meaningless."""
    if retain_eval.schema != SCHEMA or "forget_truth_ratios" not in retain_eval.details:
        raise ConfigError("the retain evaluation is not a TOFU evaluation file (schema "
                          f"{retain_eval.schema!r}); evaluate the retain model with this version")
    if retain_eval.details.get("forget_fingerprint") != forget_fingerprint(splits):
        raise ConfigError(
            "the retain evaluation was made on a different forget set (fingerprint "
            f"{retain_eval.details.get('forget_fingerprint')} vs {forget_fingerprint(splits)}); evaluate the "
            "retain model on the same split"
        )
    theirs = retain_eval.details.get("base_model")
    if base_model is not None and theirs is not None and theirs != base_model:
        raise ConfigError(
            f"the retain evaluation is of a model fine-tuned from {theirs!r}, this one from {base_model!r}; "
            "evaluate a retain model of the same base model"
        )
