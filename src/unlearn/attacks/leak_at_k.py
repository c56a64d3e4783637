"""leak@k: the chance that at least one of k sampled answers gives the forgotten fact away.

Reisizadeh et al. 2025, "Leak@k: Unlearning Does Not Make LLMs Forget Under Probabilistic Decoding"
(arXiv 2511.04934): greedy
answers can look forgotten while sampling still produces the fact. With n samples per probe of which c
leak, the unbiased estimate of leak@k (the pass@k estimator of Chen et al. 2021, "Evaluating Large Language
Models Trained on Code", Sec. 2.1) is

    leak@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n - c + 1}^{n} (1 - k / i),

averaged over probes; the product form avoids large binomials.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError


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
