"""Every sample size of one simulated trial analysed at once: the sizing study's fast path.

replicate_columns(history, ns, ...) gives, for each n in ns, exactly the row that analysing the first n
patients on their own gives (runner.replicate_row), but from one pass over the largest trial. It rests
on two facts about the data cutoff. Under the landmark rule the cutoff for n is reached only when every
transplanted patient among the first n has been followed to the landmark, so each patient's time and
status up to the landmark are the same for every n that includes them (only follow-up beyond the
landmark grows with n, and no landmark estimate or test looks there); under the calendar rule the cutoff
is the same day for every n. The patients analysed at n are therefore a prefix of those analysed at the
largest n, and stats/nested.py estimates every prefix from one sort. Counts that do depend on n (the
cutoff day, the duration, who was enrolled by it, the patient flow) are computed for each n exactly.
many_replicate_columns does this for all trials of a chunk (its replicates and arms) with one batch
of Kaplan-Meier estimates and tests. Secondary endpoints are computed per n with the scalar
estimators. tests/test_nested_rows.py checks the rows against replicate_row for every n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.analysis.endpoints import (
    CUTOFF_MARGIN_DAYS,
    Observed,
    itt_data,
    observe,
    secondary_estimates,
    time_to_first,
)
from sim.model.pathway import EXIT_REASONS, TRANSPLANTED, TrialHistory
from sim.scenario.schema import DAYS_PER_MONTH, Analysis
from sim.stats.nested import PrefixKM, PrefixTest, km_prefixes_many, landmark_tests


def cutoff_days(history: TrialHistory, ns: np.ndarray) -> np.ndarray:
    """The data cutoff of the first n patients, for every n (analysis.endpoints.cutoff_day, vectorised)."""
    s = history.scenario
    enroll = history.draws.enroll_day
    if s.analysis.cutoff == "calendar":
        return np.full(ns.size, float(enroll[0] + s.analysis.calendar_cutoff_months * DAYS_PER_MONTH))
    landmark = s.analysis.landmark_months * DAYS_PER_MONTH
    ends = np.where(history.exit_reason == TRANSPLANTED, history.days["hsct_day"] + landmark,
                    history.days["exit_day"])
    return np.maximum.accumulate(ends)[ns - 1] + CUTOFF_MARGIN_DAYS


def replicate_columns(history: TrialHistory, ns: tuple[int, ...], endpoints: str, flow: bool
                      ) -> dict[str, np.ndarray]:
    """runner.replicate_row(history, n, endpoints, flow) for every n in ns, as columns (one entry per n),
    from one analysis of the largest n."""
    return many_replicate_columns([(history, endpoints, flow)], ns)[0]


def many_replicate_columns(trials: list[tuple[TrialHistory, str, bool]], ns: tuple[int, ...]
                           ) -> list[dict[str, np.ndarray]]:
    """replicate_columns(history, ns, endpoints, flow) for each (history, endpoints, flow) of one scenario's
    trials (a chunk's replicates and arms), with the Kaplan-Meier estimates and tests of all of them computed
    in one batch."""
    a = trials[0][0].scenario.analysis
    landmark = a.landmark_months * DAYS_PER_MONTH
    sizes = np.asarray(ns, dtype=np.int64)
    parts = [_prefix_parts(history, sizes, landmark) for history, _, _ in trials]
    reasons = [np.array([f"{k} transplanted, fewer than analysis.min_transplanted = {a.min_transplanted}"
                         for k in part.transplanted]) for part in parts]
    rfs = _tested_many("rfs", [part.rfs for part in parts], landmark, a.p0, a,
                       [part.transplanted < a.min_transplanted for part in parts], reasons)
    with_itt = [b for b, (_, endpoints, _) in enumerate(trials) if endpoints != "rfs"]
    itt = _tested_many("itt", [_itt_sample(trials[b][0], parts[b].obs, sizes) for b in with_itt], landmark,
                       a.itt_p0, a, [np.zeros(sizes.size, dtype=bool) for _ in with_itt],
                       [reasons[b] for b in with_itt])
    itt_of = dict(zip(with_itt, itt, strict=True))
    out = []
    for b, ((history, endpoints, flow), part) in enumerate(zip(trials, parts, strict=True)):
        columns = part.columns | rfs[b] | itt_of.get(b, {})
        if flow:
            columns |= _flow(history, part.obs, sizes, part.cutoff, part.evaluable, part.transplanted)
        if endpoints == "all":
            columns |= _secondary_columns(history, ns)
        out.append(columns)
    return out


@dataclass(frozen=True)
class _Parts:
    """What one trial contributes before the batched estimates: its per-n counts and its primary sample."""

    obs: Observed
    cutoff: np.ndarray
    transplanted: np.ndarray
    evaluable: np.ndarray
    rfs: tuple[np.ndarray, np.ndarray, np.ndarray]     # time, event, prefix sizes
    columns: dict[str, np.ndarray]


def _prefix_parts(history: TrialHistory, sizes: np.ndarray, landmark: float) -> _Parts:
    cutoff = cutoff_days(history, sizes)
    obs = observe(history, int(sizes.max()))
    enroll = history.draws.enroll_day
    in_prefix = np.arange(history.n)[None, :] < sizes[:, None]                  # n x patient
    enrolled = (in_prefix & (enroll[None, :] <= cutoff[:, None])).sum(axis=1)
    time, event = time_to_first(obs, obs.relapse, obs.death)
    transplanted = np.searchsorted(obs.hsct, sizes)                             # obs.hsct is sorted
    evaluable = (event & (time <= landmark)) | (time >= landmark)
    n_evaluable = np.concatenate([[0], np.cumsum(evaluable)])[transplanted]
    columns = {
        "n_enrolled": enrolled, "n_transplanted": transplanted, "n_evaluable": n_evaluable,
        "duration_months": (cutoff - float(enroll[0])) / DAYS_PER_MONTH,
    }
    return _Parts(obs, cutoff, transplanted, evaluable, (time, event, transplanted), columns)


def _itt_sample(history: TrialHistory, obs: Observed, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    itt_time, itt_event = itt_data(history, obs=obs)
    members = np.flatnonzero(history.draws.enroll_day[: history.n] <= obs.cutoff_day)
    return itt_time, itt_event, np.searchsorted(members, sizes)


def _tested_many(prefix: str, samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], landmark: float, p0: float,
                 a: Analysis, too_few: list[np.ndarray], too_few_reason: list[np.ndarray]
                 ) -> list[dict[str, np.ndarray]]:
    """_tested for each sample (sample x n arrays in, one dict per sample out), from one batch of Kaplan-Meier
    estimates and tests; the primary row also carries its event count, as replicate_row does."""
    if not samples:
        return []
    km = km_prefixes_many([x[0] for x in samples], [x[1] for x in samples], landmark,
                          np.stack([x[2] for x in samples]))
    tests = landmark_tests(km, landmark, p0, a.alpha, a.test)
    columns = ({"rfs_events": km.events} if prefix == "rfs" else {}) \
        | _tested(prefix, km, tests, np.stack(too_few), np.stack(too_few_reason))
    return [{key: value[b] for key, value in columns.items()} for b in range(len(samples))]


def _secondary_columns(history: TrialHistory, ns: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Secondary endpoints, each n with the scalar estimators."""
    secondary = [secondary_estimates(history, obs=observe(history, n)) for n in ns]
    columns = {}
    for key in secondary[0]:
        for field in ("estimate", "lower", "upper"):
            name = "est" if field == "estimate" else field
            columns[f"{key}_{name}"] = np.array([getattr(s[key], field) for s in secondary], dtype=float)
    return columns


def _tested(prefix: str, km: PrefixKM, tests: PrefixTest, too_few: np.ndarray, too_few_reason: np.ndarray
            ) -> dict[str, np.ndarray]:
    """Estimate and test columns with the analysis's rules: too few transplanted -> nothing is estimated;
    an estimate that is not evaluable -> not tested (H0 not rejected, the estimate's reason)."""
    evaluable = km.reason == ""
    nan = np.full(km.n.shape, np.nan)
    est_reason = np.where(too_few, too_few_reason, km.reason)
    test_reason = np.where(too_few, too_few_reason, np.where(evaluable, tests.reason, km.reason))
    tested = ~too_few & evaluable
    return {
        f"{prefix}_est": np.where(too_few, nan, km.estimate), f"{prefix}_se": np.where(too_few, nan, km.se),
        f"{prefix}_lower": np.where(too_few, nan, km.lower), f"{prefix}_upper": np.where(too_few, nan, km.upper),
        f"{prefix}_stat": np.where(tested, tests.statistic, nan), f"{prefix}_p": np.where(tested, tests.p_value, nan),
        f"{prefix}_reject": tested & tests.reject,
        f"{prefix}_reason": np.where(est_reason != "", est_reason, test_reason),
    }


def _flow(history: TrialHistory, obs: Observed, sizes: np.ndarray, cutoff: np.ndarray, evaluable: np.ndarray,
          transplanted: np.ndarray) -> dict[str, np.ndarray]:
    """analysis.flow.flow_counts for every n."""
    enroll = history.draws.enroll_day
    in_prefix = np.arange(history.n)[None, :] < sizes[:, None]
    enrolled = in_prefix & (enroll[None, :] <= cutoff[:, None])
    exited = enrolled & (history.days["exit_day"][None, :] <= cutoff[:, None])
    out = {"flow_enrolled": enrolled.sum(axis=1), "flow_on_pathway": (enrolled & ~exited).sum(axis=1)}
    for code, name in enumerate(EXIT_REASONS):
        out[f"flow_{name}"] = (exited & (history.exit_reason == code)[None, :]).sum(axis=1)
    lost = ~evaluable & (obs.follow_end == obs.ltfu)
    cum = lambda flags: np.concatenate([[0], np.cumsum(flags)])[transplanted]  # noqa: E731
    out["flow_evaluable"] = cum(evaluable)
    out["flow_lost_to_follow_up"] = cum(lost)
    out["flow_in_follow_up"] = cum(~evaluable & ~lost)
    return out
