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

import numpy as np

from sim.analysis.endpoints import (
    CUTOFF_MARGIN_DAYS,
    SECONDARY,
    competing,
    death_days,
    efs_event_days,
    time_to_first,
)
from sim.model.draws import CR, CRI
from sim.model.pathway import BLINA_DEATH, DEATH_EXITS, EXIT_REASONS, INDUCTION_DEATH, TRANSPLANTED, TrialHistory
from sim.scenario.calibrate import AGVHD_WINDOW_DAYS
from sim.scenario.schema import DAYS_PER_MONTH, Analysis
from sim.stats.nested import (
    Estimates,
    PrefixKM,
    cif_masked,
    clopper_pearson_many,
    km_masked,
    km_prefix_members,
    landmark_tests,
)


def replicate_columns(history: TrialHistory, ns: tuple[int, ...], endpoints: str, flow: bool
                      ) -> dict[str, np.ndarray]:
    """runner.replicate_row(history, n, endpoints, flow) for every n in ns, as columns (one entry per n),
    from one analysis of the largest n."""
    return {key: value[0] for key, value in many_replicate_columns([(history, endpoints, flow)], ns).items()}


def many_replicate_columns(trials: list[tuple[TrialHistory, str, bool]], ns: tuple[int, ...]
                           ) -> dict[str, np.ndarray]:
    """replicate_columns(history, ns, endpoints, flow) for each (history, endpoints, flow) of one scenario's
    trials (a chunk's replicates and arms), as (trial x n) columns as trial_rows gives them: every trial is a
    row of (trial x patient) arrays, so each count, estimate and test of all of them is one batch of array
    operations."""
    a = trials[0][0].scenario.analysis
    landmark = a.landmark_months * DAYS_PER_MONTH
    sizes = np.asarray(ns, dtype=np.int64)
    batch = _Batch([history for history, _, _ in trials], sizes, landmark)
    too_few = batch.transplanted < a.min_transplanted
    reasons = _too_few_reasons(batch.transplanted, too_few, a.min_transplanted)
    every = batch.columns | _tested("rfs", batch.rfs_km(), landmark, a.p0, a, too_few, reasons)
    some = []                                       # (which trials, their columns) of the parts not every trial has
    with_itt = np.array([endpoints != "rfs" for _, endpoints, _ in trials])
    if with_itt.any():
        some.append((with_itt, _tested("itt", batch.itt_km(with_itt), landmark, a.itt_p0, a,
                                       np.zeros_like(too_few[with_itt]), reasons[with_itt])))
    with_flow = np.array([flow for _, _, flow in trials])
    if with_flow.any():
        some.append((with_flow, batch.flow(with_flow)))
    with_all = np.array([endpoints == "all" for _, endpoints, _ in trials])
    if with_all.any():
        some.append((with_all, _secondary_many([t[0] for t, keep in zip(trials, with_all, strict=True) if keep],
                                               sizes, batch.cutoff[with_all])))
    for keep, columns in some:
        every |= {key: _filled(value, keep) for key, value in columns.items()}
    return every


def _too_few_reasons(transplanted: np.ndarray, too_few: np.ndarray, minimum: int) -> np.ndarray:
    """endpoints._too_few_transplanted's reason where too few are transplanted ('' elsewhere: never read)."""
    messages = [f"{k} transplanted, fewer than analysis.min_transplanted = {minimum}"
                for k in transplanted[too_few].tolist()]
    reasons = np.full(too_few.shape, "", dtype=f"U{max(map(len, messages), default=1)}")
    reasons[too_few] = messages
    return reasons


def trial_rows(per_trial: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each trial's columns (one entry per n) as (trial x n) columns; a column a trial lacks (a twin's flow,
    say) is NaN there, in the type numpy gives a column with NaN added (float for counts and decisions)."""
    keys = list(dict.fromkeys(key for columns in per_trial for key in columns))
    size = len(next(iter(per_trial[0].values())))
    return {key: np.stack([columns[key] if key in columns else np.full(size, np.nan) for columns in per_trial])
            for key in keys}


def _filled(value: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The (kept trial x n) column as trial_rows gives it for all trials: NaN in the trials not kept."""
    if keep.all():
        return value
    out = np.full((keep.size, value.shape[1]), np.nan, dtype=np.concatenate([value[0, :0], [np.nan]]).dtype)
    out[keep] = value
    return out


class _Batch:
    """Several trials' first max(sizes) patients as (trial x patient) arrays, cut at each n's data cutoff, with
    the per-n counts (columns, trial x n) and the samples of the primary and ITT analyses."""

    def __init__(self, histories: list[TrialHistory], sizes: np.ndarray, landmark: float) -> None:
        self.sizes, self.landmark = sizes, landmark
        self.patients = patients = _PatientArrays(histories, int(sizes.max()))
        s = patients.scenario
        self.enroll = patients.rows(lambda h: h.draws.enroll_day)
        self.exit_day = patients.rows(lambda h: h.days["exit_day"])
        self.why = patients.rows(lambda h: h.exit_reason)
        self.hsct_day = patients.rows(lambda h: h.days["hsct_day"])
        self.cutoff = self._cutoffs(s)                                          # trial x n
        self.in_prefix = np.arange(patients.width)[None, :] < sizes[:, None]   # n x patient
        # Observed at the largest n (endpoints.observe): the patients transplanted by its cutoff and their data.
        last = self.cutoff[:, [int(np.argmax(sizes))]]
        self.last_cutoff = last
        self.transplanted_by_last = self.hsct_day <= last
        self.ltfu = patients.since("ltfu_day")[:, 0, :]
        self.follow_end = _follow_end(patients, last[:, :, None])[:, 0, :]
        self.time, self.event = time_to_first(self.follow_end, patients.since("relapse_day")[:, 0, :],
                                              patients.since("death_day")[:, 0, :])
        tr = self.transplanted_by_last
        self.evaluable = tr & ((self.event & (self.time <= landmark)) | (self.time >= landmark))
        self.transplanted = self._prefix_counts(tr)
        enrolled = (self.in_prefix[None] & (self.enroll[:, None, :] <= self.cutoff[:, :, None])).sum(axis=2)
        self.columns = {
            "n_enrolled": enrolled, "n_transplanted": self.transplanted,
            "n_evaluable": self._prefix_counts(self.evaluable),
            "duration_months": (self.cutoff - self.enroll[:, [0]]) / DAYS_PER_MONTH,
        }

    def _cutoffs(self, s) -> np.ndarray:
        """cutoff_days of every trial (trial x n)."""
        if s.analysis.cutoff == "calendar":
            cutoff = self.enroll[:, 0] + s.analysis.calendar_cutoff_months * DAYS_PER_MONTH
            return np.repeat(cutoff[:, None], self.sizes.size, axis=1)
        ends = np.where(self.why == TRANSPLANTED, self.hsct_day + self.landmark, self.exit_day)
        return np.maximum.accumulate(ends, axis=1)[:, self.sizes - 1] + CUTOFF_MARGIN_DAYS

    def _prefix_counts(self, flags: np.ndarray) -> np.ndarray:
        """How many of the first n patients of each trial are flagged (trial x n)."""
        return np.concatenate([np.zeros((flags.shape[0], 1), dtype=np.int64), np.cumsum(flags, axis=1)],
                              axis=1)[:, self.sizes]

    def rfs_km(self) -> PrefixKM:
        """Kaplan-Meier of RFS after HSCT for the transplanted among each trial's first n."""
        return km_prefix_members(self.time, self.event, self.transplanted_by_last, self.sizes, self.landmark)

    def itt_km(self, keep: np.ndarray) -> PrefixKM:
        """endpoints.itt_data's sample of the kept trials, Kaplan-Meier for each trial's first n."""
        last, enroll = self.last_cutoff[keep], self.enroll[keep]
        exit_day, why, tr = self.exit_day[keep], self.why[keep], self.transplanted_by_last[keep]
        left = (why != TRANSPLANTED) & (exit_day <= last)
        time = np.minimum(last, np.where(np.isnan(exit_day), np.inf, exit_day)) - enroll
        time = np.where(tr, self.hsct_day[keep] - enroll + self.time[keep], time)
        event = np.where(tr, self.event[keep], left)
        return km_prefix_members(time, event, enroll <= last, self.sizes, self.landmark)

    def flow(self, keep: np.ndarray) -> dict[str, np.ndarray]:
        """analysis.flow.flow_counts of the kept trials for every n (trial x n)."""
        cutoff = self.cutoff[keep][:, :, None]
        enrolled = self.in_prefix[None] & (self.enroll[keep][:, None, :] <= cutoff)
        exited = enrolled & (self.exit_day[keep][:, None, :] <= cutoff)
        why = self.why[keep][:, None, :]
        out = {"flow_enrolled": enrolled.sum(axis=2), "flow_on_pathway": (enrolled & ~exited).sum(axis=2)}
        for code, name in enumerate(EXIT_REASONS):
            out[f"flow_{name}"] = (exited & (why == code)).sum(axis=2)
        tr, evaluable = self.transplanted_by_last[keep], self.evaluable[keep]
        lost = tr & ~evaluable & (self.follow_end[keep] == self.ltfu[keep])
        out["flow_evaluable"] = self._prefix_counts(evaluable)
        out["flow_lost_to_follow_up"] = self._prefix_counts(lost)
        out["flow_in_follow_up"] = self._prefix_counts(tr & ~evaluable & ~lost)
        return out


def _tested(prefix: str, km: PrefixKM, landmark: float, p0: float, a: Analysis, too_few: np.ndarray,
            too_few_reason: np.ndarray) -> dict[str, np.ndarray]:
    """Estimate and test columns with the analysis's rules: too few transplanted -> nothing is estimated;
    an estimate that is not evaluable -> not tested (H0 not rejected, the estimate's reason). The primary
    also carries its event count, as replicate_row does."""
    tests = landmark_tests(km, landmark, p0, a.alpha, a.test)
    evaluable = km.reason == ""
    nan = np.full(km.n.shape, np.nan)
    est_reason = np.where(too_few, too_few_reason, km.reason)
    test_reason = np.where(too_few, too_few_reason, np.where(evaluable, tests.reason, km.reason))
    tested = ~too_few & evaluable
    return ({"rfs_events": km.events} if prefix == "rfs" else {}) | {
        f"{prefix}_est": np.where(too_few, nan, km.estimate), f"{prefix}_se": np.where(too_few, nan, km.se),
        f"{prefix}_lower": np.where(too_few, nan, km.lower), f"{prefix}_upper": np.where(too_few, nan, km.upper),
        f"{prefix}_stat": np.where(tested, tests.statistic, nan), f"{prefix}_p": np.where(tested, tests.p_value, nan),
        f"{prefix}_reject": tested & tests.reject,
        f"{prefix}_reason": np.where(est_reason != "", est_reason, test_reason),
    }


def _secondary_many(histories: list[TrialHistory], sizes: np.ndarray, cutoff: np.ndarray) -> dict[str, np.ndarray]:
    """endpoints.secondary_estimates of the first n patients, for every n of every trial, as (trial x n) columns.

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
    return {f"{key}_{name}": getattr(estimates[key], field).reshape(trials, q)
            for key in SECONDARY for field, name in (("estimate", "est"), ("lower", "lower"), ("upper", "upper"))}


class _PatientArrays:
    """Per-patient arrays of several trials' first `width` patients, stacked."""

    def __init__(self, histories: list[TrialHistory], width: int) -> None:
        self.histories, self.width = histories, width
        self.scenario = histories[0].scenario
        self.batches = _batches(histories, width)

    def rows(self, get) -> np.ndarray:
        """get(history) of every trial, one row each (trial x patient); from the trials' shared arrays where they
        were simulated together (pathway.simulate_trials: a gather per batch instead of a stack of slices)."""
        if self.batches is None:
            return np.stack([np.asarray(get(h))[: self.width] for h in self.histories])
        parts = [(np.asarray(get(whole)).reshape(trials, -1)[rows, : self.width], where)
                 for whole, trials, rows, where in self.batches]
        out = np.empty((len(self.histories), self.width), dtype=parts[0][0].dtype)
        for part, where in parts:
            out[where] = part
        return out

    def of(self, get) -> np.ndarray:
        return self.rows(get)[:, None, :]

    def since(self, name: str) -> np.ndarray:
        """Days from HSCT to the post-HSCT event `name` (endpoints.Observed._since: inf where none), (trial x 1 x
        patient); NaN-free only for the transplanted."""
        days = self.of(lambda h: h.post[name]) - self.of(lambda h: h.days["hsct_day"])
        return np.where(np.isnan(days), np.inf, days)


def _batches(histories: list[TrialHistory], width: int
             ) -> list[tuple[TrialHistory, int, np.ndarray, np.ndarray]] | None:
    """(shared history, its number of trials, the rows of these histories in it, their places in the list) per
    batch the histories were simulated in (TrialHistory.batch); None unless every history has one and at least
    `width` patients."""
    if any(h.batch is None or h.n < width for h in histories):
        return None
    groups: dict[int, tuple[TrialHistory, int, list[int], list[int]]] = {}
    for place, h in enumerate(histories):
        whole, trials, rows, places = groups.setdefault(id(h.batch.whole), (h.batch.whole, h.batch.trials, [], []))
        rows.append(h.batch.row)
        places.append(place)
    return [(whole, trials, np.asarray(rows), np.asarray(places)) for whole, trials, rows, places in groups.values()]


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
    horizon = patients.scenario.post_transplant.horizon_months * DAYS_PER_MONTH
    return np.minimum(np.minimum(cut - patients.of(lambda h: h.days["hsct_day"]), patients.since("ltfu_day")), horizon)


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

    relapse, death, agvhd, cgvhd = (patients.since(name)
                                    for name in ("relapse_day", "death_day", "agvhd_day", "cgvhd_day"))
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
