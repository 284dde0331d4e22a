"""Operating characteristics of a design over replicates, each with its Monte Carlo standard error.

Performance measures and their MCSEs follow Morris, White & Crowther (Stat Med 2019;38:2074), table 6:
power / type I error / coverage / P(not evaluable) are proportions over all R replicates
(sqrt(p(1-p)/R)); bias, empirical SE, RMSE and CI half-width use the replicates where the estimate
exists (n_estimable), which are counted and reported, never dropped silently. A trial whose
endpoint is not evaluable counts as "H0 not rejected" in power and type I error.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


def proportion(x: np.ndarray) -> tuple[float, float]:
    """Mean of 0/1 outcomes and its MCSE sqrt(p(1-p)/R)."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return np.nan, np.nan
    p = float(x.mean())
    return p, float(np.sqrt(p * (1 - p) / x.size))


def estimation_measures(est: np.ndarray, lower: np.ndarray, upper: np.ndarray, truth: float) -> dict[str, float]:
    """Mean, bias, empirical SE, RMSE, coverage and CI half-width of an estimator, each with its MCSE."""
    ok = np.isfinite(est)
    e, lo, hi = est[ok], lower[ok], upper[ok]
    k = int(ok.sum())
    out: dict[str, float] = {"n_estimable": k}
    if k < 2:
        return out | dict.fromkeys(("mean", "bias", "bias_mcse", "empse", "empse_mcse", "rmse", "rmse_mcse",
                                    "coverage", "coverage_mcse", "halfwidth_mean", "halfwidth_mean_mcse",
                                    "halfwidth_p90", "halfwidth_p90_mcse"), np.nan)
    mean = float(e.mean())
    empse = float(e.std(ddof=1))
    sq = (e - truth) ** 2
    mse = float(sq.mean())
    rmse = float(np.sqrt(mse))
    mse_mcse = float(np.sqrt(np.sum((sq - mse) ** 2) / (k * (k - 1))))
    covered, covered_mcse = proportion((lo <= truth) & (truth <= hi))
    half = (hi - lo) / 2
    return out | {
        "mean": mean, "bias": mean - truth, "bias_mcse": empse / np.sqrt(k),
        "empse": empse, "empse_mcse": empse / np.sqrt(2 * (k - 1)),
        "rmse": rmse, "rmse_mcse": mse_mcse / (2 * rmse) if rmse > 0 else 0.0,
        "coverage": covered, "coverage_mcse": covered_mcse,
        "halfwidth_mean": float(half.mean()), "halfwidth_mean_mcse": float(half.std(ddof=1) / np.sqrt(k)),
        "halfwidth_p90": float(np.quantile(half, 0.9)), "halfwidth_p90_mcse": quantile_mcse(half, 0.9),
    }


def quantile_mcse(x: np.ndarray, q: float) -> float:
    """MCSE of a sample quantile from the order statistics one binomial SE either side of it."""
    k = x.size
    step = np.sqrt(q * (1 - q) / k)
    lo, hi = np.quantile(x, [max(q - step, 0.0), min(q + step, 1.0)])
    return float((hi - lo) / 2)


def spread(x: np.ndarray, name: str) -> dict[str, float]:
    """Mean and 10th/50th/90th percentiles of a per-replicate quantity."""
    p10, p50, p90 = np.quantile(x, [0.1, 0.5, 0.9])
    return {f"{name}_mean": float(np.mean(x)), f"{name}_p10": float(p10), f"{name}_p50": float(p50),
            f"{name}_p90": float(p90)}


def by_n(replicates: pd.DataFrame) -> Iterator[tuple[int, pd.DataFrame]]:
    """(n, its rows in their order) for each n, ascending; like groupby("n"), without first copying the whole
    table in n order (a large study's rows are the largest object the client holds)."""
    n = replicates["n"].to_numpy()
    order = np.argsort(n, kind="stable")
    values, starts = np.unique(n[order], return_index=True)
    for value, rows in zip(values.tolist(), np.split(order, starts[1:]), strict=True):
        yield value, replicates.take(rows)


ARMS = ("design", "null", "alt")


def arms_by_n(replicates: pd.DataFrame, columns: list[str]) -> Iterator[tuple[int, dict[str, dict[str, np.ndarray]]]]:
    """(n, {arm: {column: values in replicate order}}) for each n, ascending, for the given columns only: what
    operating_characteristics reads, gathered once per n and arm (a frame per n and arm cost twice as much)."""
    n = replicates["n"].to_numpy()
    codes, names = pd.factorize(replicates["arm"])
    code = {name: i for i, name in enumerate(names)}
    replicate = replicates["replicate"].to_numpy()
    values = {column: replicates[column].to_numpy() for column in columns}
    order = np.argsort(n, kind="stable")
    levels, starts = np.unique(n[order], return_index=True)
    for level, rows in zip(levels.tolist(), np.split(order, starts[1:]), strict=True):
        rows = rows[np.lexsort((replicate[rows], codes[rows]))]
        arm_of_row = codes[rows]
        arms = {}
        for arm in ARMS:
            at = rows[arm_of_row == code.get(arm, -2)]
            arms[arm] = {column: value[at] for column, value in values.items()}
        yield level, arms


def operating_characteristics(replicates: pd.DataFrame, truths: dict[str, dict[str, float]],
                              analyses: tuple[str, ...]) -> pd.DataFrame:
    """One row per (n, analysis): power and type I error (tested analyses) and estimation measures."""
    monitored = "stopped" in replicates
    columns = ["n_enrolled", "n_transplanted", "n_evaluable", "duration_months"]
    columns += [f"{a}_{part}" for a in analyses for part in ("reject", "est", "lower", "upper")
                if f"{a}_{part}" in replicates]
    columns += list(MONITORING_COLUMNS) if monitored else []
    rows = []
    for n, arms in arms_by_n(replicates, columns):
        design, null, alt = (arms[arm] for arm in ARMS)
        counts = (spread(design["n_enrolled"], "enrolled")
                  | spread(design["n_transplanted"], "transplanted")
                  | spread(design["n_evaluable"], "evaluable")
                  | spread(design["duration_months"], "duration_months"))
        if monitored:
            counts |= monitoring_measures(design, null, alt)
        for analysis in analyses:
            row: dict[str, object] = {"n": int(n), "analysis": analysis, "reps": len(design["n_enrolled"])}
            if f"{analysis}_reject" in design:
                row["power"], row["power_mcse"] = proportion(design[f"{analysis}_reject"])
                row["type1"], row["type1_mcse"] = proportion(null[f"{analysis}_reject"])
                row["power_alt"], row["power_alt_mcse"] = proportion(alt[f"{analysis}_reject"])
            est = design[f"{analysis}_est"].astype(float)
            row["p_not_evaluable"], row["p_not_evaluable_mcse"] = proportion(~np.isfinite(est))
            row["true"] = truths["design"][analysis]
            row |= estimation_measures(est, design[f"{analysis}_lower"].astype(float),
                                       design[f"{analysis}_upper"].astype(float), row["true"])
            rows.append(row | counts)
    return pd.DataFrame(rows)


MONITORING_RULES = ("induction_death", "nrm_day100", "simon", "futility")


MONITORING_COLUMNS = ("stopped", "stop_rule", "stop_month", "rfs_reject_no_rules", "n_enrolled_no_rules")


def monitoring_measures(design: dict[str, np.ndarray], null: dict[str, np.ndarray], alt: dict[str, np.ndarray]
                        ) -> dict[str, float]:
    """With interim rules: P(stop) overall and by rule (scenario as given) with MCSE, when (months from the
    first enrollment, among stopped trials), and power and type I error without the rules from the same
    replicates (the rules' cost in power), each with its MCSE; P(stop) under the null and p1 twins too.
    Each arm is its columns (MONITORING_COLUMNS) at one n."""
    out: dict[str, float] = {}
    for arm, frame in (("", design), ("_null", null), ("_alt", alt)):
        if len(frame["stopped"]):
            out[f"p_stop{arm}"], out[f"p_stop{arm}_mcse"] = proportion(frame["stopped"].astype(bool))
    rule = design["stop_rule"].astype(str)
    for name in MONITORING_RULES:
        out[f"p_stop_{name}"], out[f"p_stop_{name}_mcse"] = proportion(rule == name)
    months = design["stop_month"][design["stopped"].astype(bool)].astype(float)
    out |= spread(months, "stop_month") if months.size else dict.fromkeys(
        ("stop_month_mean", "stop_month_p10", "stop_month_p50", "stop_month_p90"), np.nan)
    for name, frame in (("power", design), ("type1", null), ("power_alt", alt)):
        if len(frame["stopped"]):
            out[f"{name}_no_rules"], out[f"{name}_no_rules_mcse"] = proportion(frame["rfs_reject_no_rules"])
    out |= spread(design["n_enrolled_no_rules"], "enrolled_no_rules")
    return out


# The truths a required n is given at: the scenario's own implied RFS, and the protocol's p1.
POWER_COLUMNS = {"scenario": "power", "p1": "power_alt"}


def required_n(oc: pd.DataFrame, targets: tuple[float, ...], analysis: str = "rfs", at: str = "scenario"
               ) -> pd.DataFrame:
    """Smallest simulated n reaching each target power at one truth (POWER_COLUMNS), with its Monte
    Carlo range: the smallest n whose power + 1.96 MCSE, and whose power - 1.96 MCSE, reach the target."""
    column = POWER_COLUMNS[at]
    rows = oc[oc["analysis"] == analysis].sort_values("n")
    n, power, mcse = rows["n"].to_numpy(), rows[column].to_numpy(), rows[f"{column}_mcse"].to_numpy()

    def first(mask: np.ndarray) -> float:
        hits = np.flatnonzero(mask)
        return float(n[hits[0]]) if hits.size else np.nan

    return pd.DataFrame([{
        "target_power": target,
        "at": at,
        "required_n": first(power >= target),
        "required_n_low": first(power + Z95 * mcse >= target),
        "required_n_high": first(power - Z95 * mcse >= target),
        "smallest_n": int(n.min()),
        "largest_n": int(n.max()),
    } for target in targets])


def required_n_both(oc: pd.DataFrame, targets: tuple[float, ...], analysis: str = "rfs") -> pd.DataFrame:
    """required_n at the scenario's own truth and at p1 (where the alternative arm was simulated)."""
    ats = [at for at, column in POWER_COLUMNS.items() if column in oc and oc[column].notna().any()]
    return pd.concat([required_n(oc, targets, analysis, at) for at in ats], ignore_index=True)


def refinement_ns(oc: pd.DataFrame, targets: tuple[float, ...], analysis: str = "rfs") -> tuple[int, ...]:
    """Every integer n between grid points not yet simulated where a required n or its Monte Carlo
    range could lie: from the last grid n whose power + 1.96 MCSE is below a target to the first whose
    power - 1.96 MCSE reaches it, at each truth. Empty when the grid answers to the patient already."""
    rows = oc[oc["analysis"] == analysis].sort_values("n")
    grid = rows["n"].to_numpy()
    wanted: set[int] = set()
    for column in (c for c in POWER_COLUMNS.values() if c in rows and rows[c].notna().any()):
        power, mcse = rows[column].to_numpy(), rows[f"{column}_mcse"].to_numpy()
        for target in targets:
            below = np.flatnonzero(power + Z95 * mcse < target)
            above = np.flatnonzero(power - Z95 * mcse >= target)
            lo = grid[below[-1]] if below.size else grid[0]
            hi = grid[above[0]] if above.size else grid[-1]
            wanted |= set(range(int(lo) + 1, int(hi)))
    return tuple(sorted(wanted - set(int(n) for n in grid)))


def expected_flow(replicates: pd.DataFrame) -> pd.DataFrame:
    """The expected CONSORT diagram: per n and box, mean and 10th/50th/90th percentile of the count."""
    boxes = [c for c in replicates.columns if c.startswith("flow_")]
    design = replicates.loc[(replicates["arm"] == "design").to_numpy(), ["n", *boxes]]
    rows = []
    for n, at_n in by_n(design):
        for box in boxes:
            values = at_n[box].to_numpy(dtype=float)
            rows.append({"n": int(n), "box": box.removeprefix("flow_")} | {
                k.removeprefix("count_"): v for k, v in spread(values, "count").items()})
    return pd.DataFrame(rows)


def non_monotone_power(replicates: pd.DataFrame, analysis: str = "rfs") -> pd.DataFrame:
    """Adjacent sample sizes where power falls as n grows, with the paired MCSE of the drop."""
    design = replicates[replicates["arm"] == "design"]
    table = design.pivot(index="replicate", columns="n", values=f"{analysis}_reject").astype(float)
    ns = list(table.columns)
    rows = []
    for a, b in zip(ns[:-1], ns[1:], strict=True):
        diff = (table[b] - table[a]).to_numpy()
        change = float(diff.mean())
        if change < 0:
            mcse = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else np.nan
            rows.append({"n_from": a, "n_to": b, "power_change": change, "change_mcse": mcse,
                         "beyond_2_mcse": bool(change < -2 * mcse)})
    return pd.DataFrame(rows, columns=["n_from", "n_to", "power_change", "change_mcse", "beyond_2_mcse"])


def required_n_text(row) -> str:
    """'n = 73 enrolled (Monte Carlo range 70-76)' or 'not reached by n = 100' for a row of required_n()."""
    if row.required_n != row.required_n:
        return f"not reached by n = {row.largest_n} enrolled (the largest simulated)"
    low = f"{row.required_n_low:.0f}"
    if row.required_n_high != row.required_n_high:
        return f"n = {row.required_n:.0f} enrolled (Monte Carlo range {low} to more than {row.largest_n})"
    return f"n = {row.required_n:.0f} enrolled (Monte Carlo range {low}-{row.required_n_high:.0f})"
