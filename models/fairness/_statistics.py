"""Intervals, tests, multiple-comparison corrections and the verdict rule."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import gammaln, ndtr, ndtri

from models.fairness._config import DISPARITY, INSUFFICIENT, WITHIN


def safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where b is positive, NaN elsewhere (no warnings)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, np.asarray(a, dtype=float) / np.where(b > 0, b, 1), np.nan)


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion; NaN where there are no trials."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = float(ndtri(1 - (1 - level) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        phat = k / n
        denom = 1 + z * z / n
        centre = (phat + z * z / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
        lower, upper = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    bad = ~(n > 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone); NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up, monotone); NaN stays NaN, not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    """Adjust p-values by Holm ('holm') or Benjamini–Hochberg ('bh')."""
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"correction must be 'holm' or 'bh', not {method!r}")


def verdicts(
    estimate: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    p_adjusted: np.ndarray,
    tolerance: np.ndarray | float,
    alpha: float = 0.05,
) -> np.ndarray:
    """Disparity, within tolerance, or insufficient evidence, for differences from a reference.

    Disparity: the corrected test rejects "no difference" and the estimate is beyond the
    tolerance. Within tolerance: the whole interval of the difference lies inside ±tolerance.
    Anything else, including an undefined estimate, is insufficient evidence.
    """
    d = np.asarray(estimate, dtype=float)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=float), d.shape)
    with np.errstate(invalid="ignore"):
        disparity = (np.asarray(p_adjusted) < alpha) & (np.abs(d) > tol)
        within = (np.asarray(lower) >= -tol) & (np.asarray(upper) <= tol) & ~disparity
    out = np.full(d.shape, INSUFFICIENT, dtype=object)
    out[within] = WITHIN
    out[disparity] = DISPARITY
    return out


def two_proportion(
    k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newcombe hybrid-score interval of p1 − p2 (from Wilson intervals) and a test's p-value.

    The test is the pooled two-proportion z-test, or Fisher's exact test where an expected
    cell count is below 5 (the normal approximation misleads there).
    """
    p1, p2 = safe_div(k1, n1), safe_div(k2, n2)
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p1 - p2
    lower = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    pooled = safe_div(k1 + k2, n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = np.where(se > 0, np.abs(d) / se, np.where(d == 0, 0.0, np.inf))
        expected = np.minimum.reduce(
            [n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled)]
        )
    p_value = 2 * (1 - ndtr(z))
    for i in np.flatnonzero((expected < 5) & (n1 > 0) & (n2 > 0)):
        # Effective counts need not be whole: Fisher's test takes them rounded.
        a, b = round(k1[i]), max(round(n1[i]), 1)
        c, d = round(k2[i]), max(round(n2[i]), 1)
        p_value[i] = fisher_exact_p(min(a, b), b, min(c, d), d)
    return lower, upper, p_value


def fisher_exact_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact p-value of k1/n1 against k2/n2 (as scipy's, without its overhead)."""
    total, successes = n1 + n2, k1 + k2
    x = np.arange(max(0, n1 - (total - successes)), min(successes, n1) + 1)
    log_pmf = (
        gammaln(successes + 1) - gammaln(x + 1) - gammaln(successes - x + 1)
        + gammaln(total - successes + 1) - gammaln(n1 - x + 1)
        - gammaln(total - successes - n1 + x + 1)
        - gammaln(total + 1) + gammaln(n1 + 1) + gammaln(total - n1 + 1)
    )  # fmt: skip
    observed = log_pmf[k1 - x[0]]
    # The relative tolerance is scipy's: tables as likely as the observed one count as extreme.
    return float(min(1.0, np.exp(log_pmf[log_pmf <= observed + 1e-7]).sum()))


def nan_percentiles(replicates: np.ndarray, probs: Sequence[float]) -> list[np.ndarray]:
    """Percentiles along axis 0 ignoring NaN (linear interpolation, as numpy's default)."""
    ordered = np.sort(replicates, axis=0)  # NaN sort last
    valid = (~np.isnan(replicates)).sum(0)
    out = []
    for q in probs:
        pos = q * np.maximum(valid - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(valid - 1, 0))
        frac = pos - lo
        a = np.take_along_axis(ordered, lo[None], 0)[0]
        b = np.take_along_axis(ordered, hi[None], 0)[0]
        out.append(np.where(valid > 0, a + frac * (b - a), np.nan))
    return out


def compare(
    est: np.ndarray,
    rep: np.ndarray,
    reference: np.ndarray,
    counts: list[tuple[np.ndarray, np.ndarray]] | None,
    level: float,
    tail: float,
    clustered: bool = False,
) -> dict[str, np.ndarray]:
    """Difference and ratio against each group's reference, with interval and p-value.

    Rates are compared on their counts (Newcombe interval, pooled two-proportion z-test), which
    stays honest at 0 or 1 where a bootstrap has no spread; other metrics use the bootstrap
    (percentile interval of the difference, z-test with its standard error). With a clustered
    (household) bootstrap the counts are divided by each group's design effect, the bootstrap
    variance over the binomial one (at least 1): Kish's effective sample size.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_rep = rep / rep[:, reference]
        ratio = est / est[reference]
    r_lower, r_upper = nan_percentiles(
        np.where(np.isfinite(ratio_rep), ratio_rep, np.nan), [tail, 1 - tail]
    )
    d_est = est - est[reference]
    if counts is not None:
        num, den = (np.concatenate(x) for x in zip(*counts, strict=True))
        if clustered:
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                binomial = est * (1 - est) / den
                effect = np.nanvar(rep, axis=0, ddof=1) / binomial
            effect = np.where(np.isfinite(effect) & (effect > 1), effect, 1.0)
            num, den = num / effect, den / effect
        d_lower, d_upper, p_value = two_proportion(num, den, num[reference], den[reference], level)
        method = "newcombe"
    else:
        diff = rep - rep[:, reference]
        d_lower, d_upper = nan_percentiles(diff, [tail, 1 - tail])
        valid = (~np.isnan(diff)).sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.nansum(diff, 0) / valid
            se = np.sqrt(np.nansum((diff - mean) ** 2, 0) / (valid - 1))
            # No spread and a non-zero difference means the bootstrap cannot judge it.
            stat = np.where(se > 0, np.abs(d_est) / se, np.where(d_est == 0, 0.0, np.nan))
        p_value = np.where(valid >= 0.5 * rep.shape[0], 2 * (1 - ndtr(stat)), np.nan)
        method = "bootstrap"
    return {
        "difference": d_est,
        "difference_lower": d_lower,
        "difference_upper": d_upper,
        "ratio": np.where(np.isfinite(ratio), ratio, np.nan),
        "ratio_lower": r_lower,
        "ratio_upper": r_upper,
        "p_value": np.where(np.isnan(d_est), np.nan, p_value),
        "method": np.full(est.size, method, dtype=object),
    }


def household_codes(clusters: np.ndarray) -> np.ndarray:
    """Household IDs as codes in sorted order of the IDs, so row order cannot change a draw."""
    # Hash first, then sort only the distinct IDs (as text): far fewer than rows to sort.
    values = np.asarray(clusters)
    found, distinct = pd.factorize(values, use_na_sentinel=False)
    # Each distinct ID as first written (factorize would turn None into NaN).
    where = np.zeros(len(distinct), dtype=np.int64)
    where[found[::-1]] = np.arange(found.size)[::-1]
    _, codes = np.unique(values[where].astype(str), return_inverse=True)
    return np.asarray(codes, dtype=np.int64)[found]


def design_effect(
    num: np.ndarray, den: np.ndarray, codes: np.ndarray, size: int, household: np.ndarray
) -> np.ndarray:
    """Per group, cluster-robust over binomial variance of the ratio Σnum/Σden (at least 1).

    The cluster-robust (linearised, Kish) variance of a ratio: Σ_h (num_h − r·den_h)² /
    den² · H/(H − 1) over the group's households h; siblings with one outcome count once.
    """
    n_households = int(household.max()) + 1 if household.size else 1
    key = codes * n_households + household
    pairs, inverse = np.unique(key, return_inverse=True)
    num_h = np.bincount(inverse, num)
    den_h = np.bincount(inverse, den)
    group_h = pairs // n_households
    total_num = np.bincount(group_h, num_h, size)
    total_den = np.bincount(group_h, den_h, size)
    rate = safe_div(total_num, total_den)
    residual = num_h - np.nan_to_num(rate)[group_h] * den_h
    clusters_in = np.bincount(group_h, (den_h > 0).astype(float), size)
    with np.errstate(divide="ignore", invalid="ignore"):
        robust = (
            np.bincount(group_h, residual**2, size) / total_den**2 * clusters_in / (clusters_in - 1)
        )
        binomial = rate * (1 - rate) / total_den
        effect = robust / binomial
    return np.where(np.isfinite(effect) & (effect > 1), effect, 1.0)
