"""First-order variance-based sensitivity indices from one sample ("given data"), with bootstrap intervals.

For an output Y and an input X_k drawn together (as in an assurance study, where each replicate draws its
inputs and then simulates), the first-order index S_k = Var(E[Y | X_k]) / Var(Y) is the share of Y's
variance that knowing X_k alone would remove. It is estimated by binning (Plischke, Reliab Eng Syst Saf
2010;95:354; Strong & Oakley for the same idea in value of information): the draws are split into B
equal-count bins of X_k, and the between-bin share of variance is corrected for the noise of the bin
means as in one-way ANOVA (Kelley's epsilon-squared),

    S_k = (SS_between - (B - 1) MS_within) / SS_total,

which is unbiased for the binned quantity when Y's noise does not depend on X_k (with B bins of a
smooth E[Y | X_k] the binning itself loses about 1/B^2 of it). The estimate can fall slightly below 0
when X_k does not matter. Intervals: the replicates are resampled with the bins kept (percentile
bootstrap), which covers the Monte Carlo noise of a study of this size.
"""

from __future__ import annotations

import numpy as np


def bin_count(size: int) -> int:
    """Bins for `size` draws: about 200 draws per bin, between 5 and 50 bins."""
    return int(min(50, max(5, size // 200)))


def bin_index(x: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count bin of each draw by rank (ties broken by position, so every bin has size // bins or one more)."""
    order = np.argsort(x, kind="stable")
    index = np.empty(x.size, dtype=np.int64)
    index[order] = np.arange(x.size) * bins // x.size
    return index


def first_order_index(y: np.ndarray, index: np.ndarray, bins: int) -> float:
    """S = (SS_between - (B - 1) MS_within) / SS_total for y grouped by `index` (0..bins-1); NaN if Var(y) = 0."""
    y = np.asarray(y, dtype=float)
    n = np.bincount(index, minlength=bins).astype(float)
    used = n > 0
    sums = np.bincount(index, weights=y, minlength=bins)
    squares = np.bincount(index, weights=y * y, minlength=bins)
    total_mean = y.mean()
    ss_total = float(np.sum((y - total_mean) ** 2))
    if ss_total <= 0:
        return float("nan")
    means = np.divide(sums, n, out=np.zeros(bins), where=used)
    ss_between = float(np.sum(n * (means - total_mean) ** 2))
    ss_within = float(np.sum(squares - n * means ** 2))
    groups = int(used.sum())
    ms_within = ss_within / (y.size - groups) if y.size > groups else 0.0
    return (ss_between - (groups - 1) * ms_within) / ss_total


def first_order_indices(inputs: dict[str, np.ndarray], y: np.ndarray, boot: int = 200, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """{input: (S, lower, upper)}: each input's first-order index for y with a percentile bootstrap interval.

    The bootstrap resamples replicates (the same resamples for every input, from numpy's Generator seeded
    with `seed`), so intervals are reproducible.
    """
    y = np.asarray(y, dtype=float)
    size = y.size
    bins = bin_count(size)
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, size, size=(boot, size))
    out = {}
    for name, x in inputs.items():
        index = bin_index(np.asarray(x, dtype=float), bins)
        estimate = first_order_index(y, index, bins)
        replicated = np.array([first_order_index(y[take], index[take], bins) for take in resamples])
        lo, hi = np.nanquantile(replicated, [(1 - level) / 2, (1 + level) / 2]) if boot else (np.nan, np.nan)
        out[name] = (estimate, float(lo), float(hi))
    return out
