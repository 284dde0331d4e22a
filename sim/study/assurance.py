"""Assurance: the probability that the trial succeeds averaged over what is known about its inputs (O'Hagan,
Stevens & Campbell, Pharm Stat 2005;4:187), and which uncertain input its fate hangs on.

Each replicate r draws its own parameter set from the scenario's distributions (sim/scenario/priors.py),
each distribution from its own stream, stream(seed, r, "prior " + key) (a Dirichlet: "prior
section.dirichlet"), so adding or removing one leaves the others' draws unchanged. The post-HSCT hazards
are calibrated for that draw (batched over the chunk: sim/scenario/calibrate_many.py), and the trial is
simulated and analysed exactly as the sweep does (primary endpoint, every n of the grid from one
pathway). Next to it the same replicate runs at the point values (the distributions' means): the sweep's
own design arm, from the same patient streams, so assurance and power at the point come from paired
trials (common random numbers). When only post-HSCT inputs are uncertain, the point arm reuses the drawn
pathway and redraws only the post-HSCT events. Each draw's true 18-month RFS (from its calibration) says
whether rejecting H0 was the correct decision.

Chunks are resumable and independent of jobs, chunk size and backend, like the sweep's (runner.run_study
runs them; this module supplies the study and its chunk function). Summaries: assurance_table (per n,
every measure with its MCSE) and importance_table (first-order variance-based indices of success and of
trial duration, sim/stats/sensitivity.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from sim.model.streams import stream
from sim.scenario.calibrate import PostTransplantModel, calibrate
from sim.scenario.calibrate_many import calibrate_many
from sim.scenario.priors import Priors, drawn_data
from sim.scenario.schema import Scenario, ScenarioError, _validate
from sim.stats.sensitivity import first_order_indices
from sim.study.oc import proportion, quantile_mcse
from sim.study.runner import Study, _pathways, _with_post, analysed_columns

PRIOR_STREAM = "prior "          # + the dotted key (a Dirichlet: section.dirichlet): one stream per distribution
ARMS = ("point", "prior")
DRAW_PREFIX = "draw:"            # columns holding each replicate's drawn inputs
POST_ONLY_SECTIONS = ("post_transplant", "off_pathway")   # inputs that leave the pathway (SimPy part) unchanged


@dataclass(frozen=True)
class AssuranceStudy:
    """A sizing study over uncertain inputs: the point scenario, its distributions, the n grid."""

    scenario: Scenario           # every distribution at its mean
    priors: Priors
    ns: tuple[int, ...]
    reps: int
    seed: int

    def identity(self) -> dict[str, object]:
        """What must match for existing chunks to be reused (not reps: a study can be extended)."""
        return {"study": "assurance", "scenario": self.scenario.model_dump(), "priors": self.priors.spec(),
                "ns": list(self.ns), "seed": self.seed}

    def chunk(self, models: dict[str, PostTransplantModel], start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows (replicate, n, arm) for replicates start..stop-1 (arm 'prior': drawn inputs; 'point': the means)."""
        return simulate_chunk(self, models, start, stop)


def point_models(study: AssuranceStudy) -> dict[str, PostTransplantModel]:
    """The point scenario's exactly calibrated post-HSCT model (every draw equal to it uses it as is)."""
    return {"point": calibrate(study.scenario)}


# --------------------------------------------------------------------------- draws


def draw_values(priors: Priors, seed: int, replicates: Iterable[int]) -> dict[str, np.ndarray]:
    """Each uncertain key's draw for each replicate, from the replicate's own stream per input."""
    replicates = list(replicates)
    uniforms = {name: np.array([stream(seed, r, PRIOR_STREAM + name).random(count) for r in replicates])
                for name, count in priors.streams().items()}
    return priors.values(uniforms)


def drawn_scenario(point: dict, values: dict[str, np.ndarray], k: int, where: str) -> Scenario:
    """The k-th draw as a validated scenario; ScenarioError naming the draw and the rule it breaks."""
    return _validate(drawn_data(point, {key: v[k] for key, v in values.items()}), {}, where)


def check_draws(study: AssuranceStudy, source: str) -> None:
    """Draw every replicate's inputs and validate each drawn scenario before anything runs.

    Each key's range holds by construction; this catches rules that tie keys together (CR + CRi + early death
    <= 1, relapse + NRM < 1, ...). ScenarioError: how many draws break a rule, the first one's values and rule.
    """
    values = draw_values(study.priors, study.seed, range(study.reps))
    point = study.scenario.model_dump()
    broken: list[tuple[int, str]] = []
    for k in range(study.reps):
        try:
            drawn_scenario(point, values, k, "")
        except ScenarioError as exc:
            broken.append((k, str(exc).removeprefix(": ")))
    if broken:
        k, message = broken[0]
        drawn = ", ".join(f"{key} = {v[k]:.4g}" for key, v in values.items())
        raise ScenarioError(
            f"{source}: {len(broken)} of {study.reps} replicates draw inputs that break a rule of the scenario; the "
            f"first, replicate {k} ({drawn}): {message}. Draws are not silently rejected: give exclusive "
            "probabilities a joint Dirichlet distribution (e.g. response.dirichlet = { p_cr = 78, p_cri = 6, "
            "p_early_death = 1, rest = 15 }; scenarios/README.md), or narrower distributions")


def pathway_shared(priors: Priors) -> bool:
    """Whether every uncertain input acts only after HSCT (then drawn and point arms share the pathway)."""
    return all(key.split(".")[0] in POST_ONLY_SECTIONS for key in priors.keys)


# --------------------------------------------------------------------------- one chunk (runs on workers)


def simulate_chunk(study: AssuranceStudy, models: dict[str, PostTransplantModel], start: int, stop: int
                   ) -> dict[str, np.ndarray]:
    """Rows (replicate, n, arm) for replicates start..stop-1, as columns, in (replicate, arm, n) order."""
    replicates = list(range(start, stop))
    values = draw_values(study.priors, study.seed, replicates)
    point_dump = study.scenario.model_dump()
    scenarios = [drawn_scenario(point_dump, values, k, f"replicate {r}") for k, r in enumerate(replicates)]
    labels = [f"replicate {r} (" + ", ".join(f"{key} = {v[k]:.4g}" for key, v in values.items()) + ")"
              for k, r in enumerate(replicates)]
    point = (study.scenario, models["point"])
    calibrated = calibrate_many(scenarios, point, labels)
    point_truth = calibrate_many([study.scenario], point)[0].true_rfs
    point_values = study.priors.means()
    shared = pathway_shared(study.priors)
    point_study = Study(study.scenario, study.ns, study.reps, study.seed, "rfs", ("design",))
    blocks: list[dict[str, np.ndarray]] = []
    for k, r in enumerate(replicates):
        drawn = {key: v[k] for key, v in values.items()}
        drawn_study = replace(point_study, scenario=scenarios[k])
        point_histories = []
        for ns, history in _pathways(drawn_study, calibrated[k].model, r):
            blocks.append(_rows(r, ns, "prior", history, calibrated[k].true_rfs, drawn))
            if shared:
                point_histories.append((ns, replace(_with_post(history, models["point"]), scenario=study.scenario)))
        if not shared:
            point_histories = list(_pathways(point_study, models["point"], r))
        for ns, history in point_histories:
            blocks.append(_rows(r, ns, "point", history, point_truth, point_values))
    blocks.sort(key=lambda b: (int(b["replicate"][0]), str(b["arm"][0]), int(b["n"][0])))
    return {key: np.concatenate([block[key] for block in blocks]) for key in blocks[0]}


def _rows(r: int, ns: tuple[int, ...], arm: str, history, truth: float, drawn: dict[str, float]
          ) -> dict[str, np.ndarray]:
    size = len(ns)
    return ({"replicate": np.full(size, r), "n": np.asarray(ns), "arm": np.full(size, arm)}
            | {key: value[0] for key, value in analysed_columns([(history, "rfs", False)], ns).items()}
            | {"true_rfs": np.full(size, truth)}
            | {DRAW_PREFIX + key: np.full(size, float(value)) for key, value in drawn.items()})


# --------------------------------------------------------------------------- summaries


def assurance_table(replicates: pd.DataFrame, p0: float) -> pd.DataFrame:
    """Per n: assurance, power at the point values and their paired difference; P(true RFS > p0), P(correct
    decision), P(reject | true RFS > p0) and P(reject | not); duration and numbers transplanted; each with its
    Monte Carlo standard error (proportions sqrt(p(1-p)/R), paired differences sd / sqrt(R))."""
    rows = []
    for n, at_n in replicates.groupby("n", sort=True):
        prior = at_n[at_n["arm"] == "prior"].sort_values("replicate")
        point = at_n[at_n["arm"] == "point"].sort_values("replicate")
        reject = prior["rfs_reject"].to_numpy(dtype=bool)
        point_reject = point["rfs_reject"].to_numpy(dtype=bool)
        effective = prior["true_rfs"].to_numpy() > p0
        diff = reject.astype(float) - point_reject.astype(float)
        row: dict[str, float] = {"n": int(n), "reps": len(prior)}
        row["assurance"], row["assurance_mcse"] = proportion(reject)
        row["power_point"], row["power_point_mcse"] = proportion(point_reject)
        row["difference"] = float(diff.mean())
        row["difference_mcse"] = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else np.nan
        row["p_effective"], row["p_effective_mcse"] = proportion(effective)
        row["p_correct"], row["p_correct_mcse"] = proportion(reject == effective)
        row["p_reject_if_effective"], row["p_reject_if_effective_mcse"] = proportion(reject[effective])
        row["p_reject_if_not"], row["p_reject_if_not_mcse"] = proportion(reject[~effective])
        row["p_not_evaluable"], row["p_not_evaluable_mcse"] = proportion(~np.isfinite(prior["rfs_est"].to_numpy(
            dtype=float)))
        row["point_true_rfs"] = float(point["true_rfs"].iloc[0])
        for arm, frame in (("prior", prior), ("point", point)):
            row |= _spread(frame["duration_months"].to_numpy(dtype=float), f"duration_months_{arm}")
            row |= _spread(frame["n_transplanted"].to_numpy(dtype=float), f"transplanted_{arm}")
        rows.append(row)
    return pd.DataFrame(rows)


def _spread(x: np.ndarray, name: str) -> dict[str, float]:
    """Mean with its MCSE, and the 10th/50th/90th percentiles with theirs."""
    out = {f"{name}_mean": float(x.mean()), f"{name}_mean_mcse": float(x.std(ddof=1) / np.sqrt(x.size))}
    for q in (10, 50, 90):
        out[f"{name}_p{q}"] = float(np.quantile(x, q / 100))
        out[f"{name}_p{q}_mcse"] = quantile_mcse(x, q / 100)
    return out


OUTCOMES = {"success": "rfs_reject", "duration": "duration_months"}


def importance_table(replicates: pd.DataFrame, keys: list[str], boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per n and outcome (success = H0 rejected, duration in months), each uncertain input's first-order index
    with a 95% bootstrap interval, ranked; plus the true 18-month RFS (a consequence of the inputs, not one of
    them) as a reference row for success."""
    prior = replicates[replicates["arm"] == "prior"]
    rows = []
    for n, at_n in prior.groupby("n", sort=True):
        at_n = at_n.sort_values("replicate")
        inputs = {key: at_n[DRAW_PREFIX + key].to_numpy(dtype=float) for key in keys}
        for outcome, column in OUTCOMES.items():
            y = at_n[column].to_numpy(dtype=float)
            found = first_order_indices(inputs, y, boot=boot, seed=seed)
            ranked = sorted(found.items(), key=lambda item: -np.nan_to_num(item[1][0], nan=-np.inf))
            for rank, (key, (index, lo, hi)) in enumerate(ranked, start=1):
                rows.append({"n": int(n), "outcome": outcome, "input": key, "rank": rank, "index": index,
                             "lower": lo, "upper": hi})
            if outcome == "success":
                index, lo, hi = first_order_indices({"true_rfs": at_n["true_rfs"].to_numpy()}, y, boot=boot,
                                                    seed=seed)["true_rfs"]
                rows.append({"n": int(n), "outcome": outcome, "input": "true_rfs", "rank": 0, "index": index,
                             "lower": lo, "upper": hi})
    return pd.DataFrame(rows, columns=["n", "outcome", "input", "rank", "index", "lower", "upper"])


def uncertain_keys(priors: Priors) -> list[str]:
    """The inputs whose draws vary (point masses excluded), in the scenario's order."""
    return [key for key in priors.keys if not priors.marginal(key).degenerate]
