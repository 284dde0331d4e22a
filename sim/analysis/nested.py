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
of Kaplan-Meier estimates and tests. The secondary endpoints are not all nested (follow-up from
enrollment grows with the cutoff, and acute GVHD's 100 days may pass a short landmark), so they are
estimated on one (trial, n) row each, masked to that n's patients and cut at its cutoff, all rows of
the chunk in one batch. tests/test_nested_rows.py checks the rows against replicate_row for every n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.analysis.endpoints import (
    CUTOFF_MARGIN_DAYS,
    SECONDARY,
    Observed,
    competing,
    death_days,
    efs_event_days,
    itt_data,
    observe,
    time_to_first,
)
from sim.model.draws import CR, CRI
from sim.model.pathway import BLINA_DEATH, DEATH_EXITS, EXIT_REASONS, INDUCTION_DEATH, TRANSPLANTED, TrialHistory
from sim.scenario.calibrate import AGVHD_WINDOW_DAYS
from sim.scenario.schema import DAYS_PER_MONTH, Analysis
from sim.stats.nested import (
    Estimates,
    PrefixKM,
    PrefixTest,
    cif_masked,
    clopper_pearson_many,
    km_masked,
    km_prefixes_many,
    landmark_tests,
)


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
    with_all = [b for b, (_, endpoints, _) in enumerate(trials) if endpoints == "all"]
    secondary = _secondary_many([trials[b][0] for b in with_all], sizes, np.stack([parts[b].cutoff for b in with_all])
                                ) if with_all else []
    secondary_of = dict(zip(with_all, secondary, strict=True))
    out = []
    for b, ((history, _, flow), part) in enumerate(zip(trials, parts, strict=True)):
        columns = part.columns | rfs[b] | itt_of.get(b, {})
        if flow:
            columns |= _flow(history, part.obs, sizes, part.cutoff, part.evaluable, part.transplanted)
        out.append(columns | secondary_of.get(b, {}))
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
    time, event = time_to_first(obs.follow_end, obs.relapse, obs.death)
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


def _secondary_many(histories: list[TrialHistory], sizes: np.ndarray, cutoff: np.ndarray
                    ) -> list[dict[str, np.ndarray]]:
    """endpoints.secondary_estimates of the first n patients, for every n of every trial, as columns.

    One row per (trial, n) holds the largest n's patients, masked to the first n and cut at that n's data
    cutoff (cutoff is trial x n), so every endpoint of every row is one batch of array operations; nothing
    assumes that the samples of successive n are nested (follow-up from enrollment is not).
    """
    trials, q = len(histories), sizes.size
    width = int(sizes.max())
    cut = cutoff[:, :, None]                                            # trial x n x 1
    prefix = (np.arange(width)[None, :] < sizes[:, None])[None]         # 1 x n x patient
    patients = _PatientArrays(histories, width)
    estimates = (_response_rows(patients, prefix, cut) | _enrollment_rows(patients, prefix, cut)
                 | _post_hsct_rows(patients, prefix, cut))
    columns = {f"{key}_{name}": getattr(estimates[key], field).reshape(trials, q)
               for key in SECONDARY for field, name in (("estimate", "est"), ("lower", "lower"), ("upper", "upper"))}
    return [{key: value[b] for key, value in columns.items()} for b in range(trials)]


class _PatientArrays:
    """Per-patient arrays of several trials' first `width` patients, stacked as (trial x 1 x patient)."""

    def __init__(self, histories: list[TrialHistory], width: int) -> None:
        self.histories, self.width = histories, width
        self.scenario = histories[0].scenario

    def of(self, get) -> np.ndarray:
        return np.stack([np.asarray(get(h))[: self.width] for h in self.histories])[:, None, :]


def _rows(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(trial x n x patient) as (row x patient), broadcasting what does not vary with n."""
    return np.broadcast_to(x, shape).reshape(-1, shape[-1])


def _response_rows(patients: _PatientArrays, prefix: np.ndarray, cut: np.ndarray) -> dict[str, Estimates]:
    """endpoints._response_estimates for every (trial, n)."""
    turnaround = patients.scenario.assay.turnaround_days
    exit_day, response_day = patients.of(lambda h: h.days["exit_day"]), patients.of(lambda h: h.days["response_day"])
    died_before = np.isin(patients.of(lambda h: h.exit_reason), (INDUCTION_DEATH, BLINA_DEATH)) & (exit_day <= cut)
    assessed = prefix & (response_day <= cut)
    crc = assessed & np.isin(patients.of(lambda h: h.draws.response), (CR, CRI))
    mrd1 = crc & (response_day + turnaround <= cut)
    mrd2 = prefix & (patients.of(lambda h: h.days["mrd2_sample_day"]) + turnaround <= cut)
    count = lambda flags: flags.sum(axis=2).ravel()  # noqa: E731
    return {
        "crc": clopper_pearson_many(count(crc), count(assessed | (prefix & died_before))),
        "mrd1": clopper_pearson_many(count(mrd1 & patients.of(lambda h: h.draws.mrd1_negative)), count(mrd1)),
        "mrd2": clopper_pearson_many(count(mrd2 & patients.of(lambda h: h.draws.mrd2_negative)), count(mrd2)),
    }


def _follow_end(patients: _PatientArrays, cut: np.ndarray) -> np.ndarray:
    """endpoints.Observed.follow_end of every patient at every n's cutoff (days since HSCT; NaN: no HSCT)."""
    hsct_day = patients.of(lambda h: h.days["hsct_day"])
    ltfu = patients.of(lambda h: h.post["ltfu_day"]) - hsct_day
    horizon = patients.scenario.post_transplant.horizon_months * DAYS_PER_MONTH
    return np.minimum(np.minimum(cut - hsct_day, np.where(np.isnan(ltfu), np.inf, ltfu)), horizon)


def _enrollment_rows(patients: _PatientArrays, prefix: np.ndarray, cut: np.ndarray) -> dict[str, Estimates]:
    """endpoints._enrollment_estimates (OS and EFS from enrollment) for every (trial, n)."""
    shape = np.broadcast_shapes(prefix.shape, cut.shape, (1, 1, patients.width))
    if not patients.scenario.off_pathway.followed:
        nan = np.full(shape[0] * shape[1], np.nan)
        return {key: Estimates(nan, nan, nan, nan, nan, nan, nan) for key in ("os_enroll", "efs_enroll")}
    enroll = patients.of(lambda h: h.draws.enroll_day)
    end = _enrollment_follow_up_end(patients, prefix, cut)
    member = _rows(prefix & (enroll <= cut), shape)
    landmark = patients.scenario.analysis.landmark_months * DAYS_PER_MONTH
    out = {}
    for key, latent in (("os_enroll", death_days), ("efs_enroll", efs_event_days)):
        day = patients.of(latent)
        day = np.where(np.isnan(day), np.inf, day)
        event = day <= end
        out[key] = km_masked(_rows(np.where(event, day, end) - enroll, shape), _rows(event, shape), member, landmark)
    return out


def _enrollment_follow_up_end(patients: _PatientArrays, prefix: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """endpoints.follow_up_end_days at every n's cutoff."""
    why, exit_day = patients.of(lambda h: h.exit_reason), patients.of(lambda h: h.days["exit_day"])
    off_ltfu = patients.of(lambda h: h.off["ltfu_day"])
    horizon = patients.scenario.post_transplant.horizon_months * DAYS_PER_MONTH
    left_alive = (why != TRANSPLANTED) & ~np.isin(why, DEATH_EXITS) & (exit_day <= cut)
    end = np.where(left_alive, np.minimum(np.minimum(cut, np.where(np.isnan(off_ltfu), np.inf, off_ltfu)),
                                          exit_day + horizon), cut)
    hsct_day = patients.of(lambda h: h.days["hsct_day"])
    return np.where(prefix & (hsct_day <= cut), hsct_day + _follow_end(patients, cut), end)


def _post_hsct_rows(patients: _PatientArrays, prefix: np.ndarray, cut: np.ndarray) -> dict[str, Estimates]:
    """The post-HSCT part of endpoints.secondary_estimates for every (trial, n): NaN below min_transplanted."""
    a = patients.scenario.analysis
    hsct_day = patients.of(lambda h: h.days["hsct_day"])
    shape = np.broadcast_shapes(prefix.shape, cut.shape, hsct_day.shape)
    member = _rows(prefix & (hsct_day <= cut), shape)
    follow_end = _follow_end(patients, cut)

    def since(name: str) -> np.ndarray:
        days = patients.of(lambda h: h.post[name]) - hsct_day
        return np.where(np.isnan(days), np.inf, days)

    relapse, death, agvhd, cgvhd = (since(name) for name in ("relapse_day", "death_day", "agvhd_day", "cgvhd_day"))
    agvhd34 = np.where(patients.of(lambda h: h.post["agvhd_grade34"]), agvhd, np.inf)
    systemic = np.where(patients.of(lambda h: h.post["cgvhd_systemic"]), cgvhd, np.inf)
    landmark = a.landmark_months * DAYS_PER_MONTH
    relapse_or_death = np.minimum(relapse, death)

    def km(*days: np.ndarray) -> PrefixKM:
        time, event = time_to_first(follow_end, *days)
        return km_masked(_rows(time, shape), _rows(event, shape), member, landmark)

    def cif(event_day: np.ndarray, competing_days: np.ndarray, k: int, t: float) -> Estimates:
        time, cause = competing(follow_end, event_day, competing_days)
        return cif_masked(_rows(time, shape), _rows(cause, shape), member, k, t)

    out = {"os": km(death), "relapse": cif(relapse, death, 1, landmark), "nrm": cif(relapse, death, 2, landmark),
           "agvhd24": cif(agvhd, relapse_or_death, 1, AGVHD_WINDOW_DAYS),
           "agvhd34": cif(agvhd34, relapse_or_death, 1, AGVHD_WINDOW_DAYS),
           "cgvhd": cif(cgvhd, relapse_or_death, 1, landmark), "grfs": km(relapse, death, agvhd34, systemic)}
    too_few = member.sum(axis=1) < a.min_transplanted
    return {key: _blanked(est, too_few) for key, est in out.items()}


def _blanked(est: Estimates | PrefixKM, rows: np.ndarray) -> Estimates:
    """The estimate, with nothing estimated in the given rows (NaN)."""
    nan = lambda x: np.where(rows, np.nan, x)  # noqa: E731
    return Estimates(nan(est.estimate), nan(est.se), nan(est.lower), nan(est.upper), est.n, est.events, est.reason)


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
