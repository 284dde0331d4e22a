"""Every sample size of one simulated trial analysed at once: the sizing study's fast path.

replicate_rows(history, ns, ...) gives, for each n in ns, exactly the row that analysing the first n
patients on their own gives (runner.replicate_row), but from one pass over the largest trial. It rests
on two facts about the data cutoff. Under the landmark rule the cutoff for n is reached only when every
transplanted patient among the first n has been followed to the landmark, so each patient's time and
status up to the landmark are the same for every n that includes them (only follow-up beyond the
landmark grows with n, and no landmark estimate or test looks there); under the calendar rule the cutoff
is the same day for every n. The patients analysed at n are therefore a prefix of those analysed at the
largest n, and stats/nested.py estimates every prefix from one sort. Counts that do depend on n (the
cutoff day, the duration, who was enrolled by it, the patient flow) are computed for each n exactly.
Secondary endpoints are computed per n with the scalar estimators. tests/test_nested_rows.py checks
the rows against replicate_row for every n.
"""

from __future__ import annotations

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
from sim.scenario.schema import DAYS_PER_MONTH
from sim.stats.nested import PrefixKM, PrefixTest, km_prefixes, landmark_tests


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
    a = history.scenario.analysis
    landmark = a.landmark_months * DAYS_PER_MONTH
    sizes = np.asarray(ns, dtype=np.int64)
    cutoff = cutoff_days(history, sizes)
    obs = observe(history, int(sizes.max()))
    enroll = history.draws.enroll_day
    index = np.arange(history.n)
    in_prefix = index[None, :] < sizes[:, None]                                  # n x patient
    enrolled = (in_prefix & (enroll[None, :] <= cutoff[:, None])).sum(axis=1)

    time, event = time_to_first(obs, obs.relapse, obs.death)
    transplanted = np.searchsorted(obs.hsct, sizes)                             # obs.hsct is sorted
    km = km_prefixes(time, event, landmark, transplanted)
    evaluable = (event & (time <= landmark)) | (time >= landmark)
    n_evaluable = np.concatenate([[0], np.cumsum(evaluable)])[transplanted]
    tests = landmark_tests(km, landmark, a.p0, a.alpha, a.test)
    too_few = transplanted < a.min_transplanted
    columns = {
        "n_enrolled": enrolled, "n_transplanted": transplanted, "n_evaluable": n_evaluable,
        "duration_months": (cutoff - float(enroll[0])) / DAYS_PER_MONTH, "rfs_events": km.events,
    }
    reasons = np.array([f"{k} transplanted, fewer than analysis.min_transplanted = {a.min_transplanted}"
                        for k in transplanted])
    columns |= _tested("rfs", km, tests, too_few, reasons)
    if endpoints != "rfs":
        itt_time, itt_event = itt_data(history, obs=obs)
        members = np.flatnonzero(enroll[: history.n] <= obs.cutoff_day)
        itt_km = km_prefixes(itt_time, itt_event, landmark, np.searchsorted(members, sizes))
        itt_tests = landmark_tests(itt_km, landmark, a.itt_p0, a.alpha, a.test)
        columns |= _tested("itt", itt_km, itt_tests, np.zeros(sizes.size, dtype=bool), reasons)
    if flow:
        columns |= _flow(history, obs, sizes, cutoff, in_prefix, evaluable, transplanted)
    if endpoints == "all":
        secondary = [secondary_estimates(history, obs=observe(history, n)) for n in ns]
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
    nan = np.full(km.n.size, np.nan)
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


def _flow(history: TrialHistory, obs: Observed, sizes: np.ndarray, cutoff: np.ndarray, in_prefix: np.ndarray,
          evaluable: np.ndarray, transplanted: np.ndarray) -> dict[str, np.ndarray]:
    """analysis.flow.flow_counts for every n."""
    enroll = history.draws.enroll_day
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
