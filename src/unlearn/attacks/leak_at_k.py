"""leak@k: the chance that at least one of k sampled answers gives the forgotten fact away.

Reisizadeh et al. 2025, "Leak@k: Unlearning Does Not Make LLMs Forget Under Probabilistic Decoding"
(arXiv 2511.04934): greedy
answers can look forgotten while sampling still produces the fact. With n samples per probe of which c
leak, the unbiased estimate of leak@k (the pass@k estimator of Chen et al. 2021, "Evaluating Large Language
Models Trained on Code", Sec. 2.1) is

    leak@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n - c + 1}^{n} (1 - k / i),

averaged over probes; the product form avoids large binomials.

The attack (`leak_at_k`) samples n answers to each forget probe at the given temperature and top-p (our
defaults: n = 16, temperature 1.0, top-p 1.0, i.e. the model's own distribution; the paper sweeps both) and
judges each sample with the audit's judge (answer span or ROUGE-L recall). A probe counts as leaked when any
of its n samples leaks (leak@n); the curve k = 1, 2, 4, ..., n is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..metrics.judge import answered
from .base import ATTACKS, Attack, AttackOutcome, AuditContext, Sampling, Subject, user


def leak_at_k_one(n: int, leaked: int, k: int) -> float:
    """Unbiased leak@k of one probe with `leaked` of `n` samples leaking."""
    if not 0 <= leaked <= n:
        raise ConfigError(f"leaked samples ({leaked}) must be between 0 and the number of samples ({n})")
    if not 1 <= k <= n:
        raise ConfigError(f"k must be between 1 and the number of samples ({n}), got {k}")
    if n - leaked < k:
        return 1.0
    miss = 1.0
    for i in range(n - leaked + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def leak_at_k(leaked_per_probe: Sequence[int], n: int, k: int) -> float:
    """Mean leak@k over probes, each sampled `n` times."""
    if not leaked_per_probe:
        raise ConfigError("leak@k needs at least one probe")
    return sum(leak_at_k_one(n, c, k) for c in leaked_per_probe) / len(leaked_per_probe)


def leak_curve(leaked_per_probe: Sequence[int], n: int) -> dict[int, float]:
    """leak@k for k = 1, 2, 4, ... up to n (and n itself)."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    ks.append(n)
    return {k: leak_at_k(leaked_per_probe, n, k) for k in ks}


@ATTACKS.register("leak_at_k")
@dataclass
class LeakAtK(Attack):
    """n sampled answers per forget probe; leaked when any sample gives the answer (leak@n), with the leak@k curve."""

    kind = "decoding"
    summary = "n sampled answers per probe at temperature / top-p; the unbiased leak@k curve"

    n: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    examples_per_probe: int = 2

    def validate(self) -> None:
        if self.n < 1 or self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ConfigError(f"leak_at_k: needs n >= 1, temperature > 0 and 0 < top_p <= 1 "
                              f"(got n={self.n}, temperature={self.temperature}, top_p={self.top_p})")

    def run(self, subject: Subject, ctx: AuditContext) -> AttackOutcome:
        sampling = Sampling(self.n, self.temperature, self.top_p, self.seed)
        samples = subject.sample([user(p.question) for p in ctx.probes], sampling, progress=ctx.bar("leak@k sampling"))
        counts, examples = [], []
        for i, (probe, replies) in enumerate(zip(ctx.probes, samples, strict=True)):
            hits = [answered(r, probe.answers, ctx.rouge_threshold) for r in replies]
            counts.append(sum(hits))
            shown = list(dict.fromkeys(r for r, h in zip(replies, hits, strict=True) if h)) or list(dict.fromkeys(replies))
            examples += [{"probe": i, "variant": f"leak@{self.n}", "prompt": probe.question, "turns": 1, "prefill": "",
                          "expected": probe.answer, "reply": r, "leaked": any(hits), "leaked_samples": sum(hits)}
                         for r in shown[: self.examples_per_probe]]
        curve = {f"leak@{k}": v for k, v in leak_curve(counts, self.n).items()}
        per_probe: list[float | None] = [float(c > 0) for c in counts]
        return AttackOutcome({f"leak@{self.n}": per_probe}, examples, curve=curve,
                             notes=[f"{self.n} samples per probe, temperature {self.temperature}, top-p {self.top_p}"])
