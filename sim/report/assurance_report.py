"""The self-contained HTML report of an assurance study, for a steering committee.

Reads an assurance output folder (manifest.json, assurance.csv, importance.csv, priors.csv and the drawn
inputs in replicates.parquet) and writes report.html: the answer in words, assurance next to power at the
central values against n, what success and the trial's duration hang on, every uncertain input's
distribution with its source, the scenario as run, how to read the report, and reproducibility.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from sim.report.assurance_figures import assurance_figure, importance_figure, priors_figure
from sim.report.headline import percent
from sim.report.html import DOCS_NOTE, img, page, section, table, write_page
from sim.scenario.priors import Dirichlet, Marginal, Priors
from sim.scenario.schema import Scenario
from sim.study.provenance import read_manifest


def write_assurance_report(out: Path) -> Path:
    """Build OUT/report.html from an assurance study's outputs; returns its path."""
    manifest = read_manifest(out)
    results = pd.read_csv(out / "assurance.csv")
    importance = pd.read_csv(out / "importance.csv")
    priors_rows = pd.read_csv(out / "priors.csv", keep_default_na=False)
    scenario = Scenario.model_validate(manifest["scenario"])
    priors = priors_from_spec(manifest["priors"], priors_rows)
    a = scenario.analysis
    at_n, reps = int(manifest["at_n"]), int(manifest["reps"])
    labels = dict(zip(priors_rows["input"], priors_rows["label"], strict=True))
    keys = [k for k, u in zip(priors_rows["input"], priors_rows["uncertain"], strict=True) if str(u) == "True"]
    draws = _draws(out, at_n, keys)
    name = f"Assurance: {scenario.name}"
    sections = [
        f"<h1>{html.escape(name)}</h1><p>{html.escape(scenario.description)}</p>"
        f"<div class=\"summary\"><p class=\"headline\">{html.escape(manifest['summary'])}</p>"
        f"<p class=\"note\">Primary endpoint: {a.landmark_months:g}-month relapse-free survival after allo-HSCT, "
        f"H0: RFS &le; {percent(a.p0)}, one-sided alpha {a.alpha:g} ({html.escape(a.test)} test). Each of the "
        f"{reps} simulated trials per sample size draws its own values of the {len(keys)} uncertain inputs from "
        "the distributions below (a 'plausible world'), then enrolls, treats, transplants and analyses its "
        "patients. The same trial is also run at the central values (the distributions' means), so the two "
        "answers differ by paired trials.</p></div>",
        section("Probability of success against n", img(assurance_figure(
            results, a, tuple(manifest["target_power"]), reps, at_n), "Assurance and power against n")
            + _results_table(results)),
        section(f"What the trial's fate hangs on (n = {at_n})",
                img(importance_figure(importance, at_n, labels, reps), "First-order indices")
                + _importance_table(importance, at_n, labels)),
        section("The uncertain inputs and their sources",
                img(priors_figure(priors, keys, labels, draws), "Distributions of the uncertain inputs")
                + _priors_table(priors_rows)),
        section("The scenario as run (central values), and its files", _files(manifest)),
        section("How to read this report", _how_to_read(reps)),
        section("Reproducibility (STRESS-DES 5.1-5.4)", _reproducibility(manifest)),
    ]
    return write_page(out, page(name, sections))


def priors_from_spec(spec: list[dict], rows: pd.DataFrame) -> Priors:
    """The Priors a manifest recorded (Priors.spec()), with each distribution's text as written."""
    written = dict(zip(rows["input"], rows["written"], strict=True))
    marginals, groups = [], []
    for item in spec:
        if "dirichlet" in item:
            keys = tuple(item["keys"])
            groups.append(Dirichlet(item["dirichlet"], keys, tuple(item["counts"]), item["rest"],
                                    written.get(keys[0], "")))
        else:
            lo, hi = item["range"]
            marginals.append(Marginal(item["key"], item["family"], tuple(item["params"]), lo, hi,
                                      *item.get("open", (False, False)), written=written.get(item["key"], "")))
    return Priors(tuple(marginals), tuple(groups))


def _draws(out: Path, n: int, keys: list[str]) -> pd.DataFrame | None:
    path = out / "replicates.parquet"
    if not path.is_file():
        return None
    columns = ["n", "arm", *(f"draw:{k}" for k in keys)]
    frame = pd.read_parquet(path, columns=columns)
    return frame[(frame["n"] == n) & (frame["arm"] == "prior")]


def _results_table(results: pd.DataFrame) -> str:
    rows = []
    for r in results.itertuples(index=False):
        rows.append([f"{r.n}", f"{r.transplanted_prior_mean:.1f}", f"{r.assurance:.3f} ({r.assurance_mcse:.3f})",
                     f"{r.power_point:.3f} ({r.power_point_mcse:.3f})",
                     f"{r.difference:+.3f} ({r.difference_mcse:.3f})", f"{r.p_correct:.3f} ({r.p_correct_mcse:.3f})",
                     f"{r.p_reject_if_effective:.3f} ({r.p_reject_if_effective_mcse:.3f})",
                     f"{r.p_reject_if_not:.3f} ({r.p_reject_if_not_mcse:.3f})",
                     f"{r.duration_months_prior_p50:.0f} ({r.duration_months_prior_p10:.0f}-"
                     f"{r.duration_months_prior_p90:.0f})",
                     f"{r.duration_months_point_p50:.0f}"])
    first = results.iloc[0]
    return (table(["n enrolled", "transplanted (mean)", "assurance (MCSE)", "power at the central values (MCSE)",
                   "difference (paired MCSE)", "P(correct decision)", "P(success | treatment beats p0)",
                   "P(success | it does not)", "months to final analysis, median (10th-90th pct)",
                   "same, at the central values (median)"], rows)
            + f"<p class=\"note\">The true {percent(first.point_true_rfs)} 18-month RFS of the central values is "
              f"one world among many: under the distributions the treatment beats p0 in {first.p_effective:.3f} "
              f"(MCSE {first.p_effective_mcse:.3f}) of them, the ceiling for assurance as n grows. P(success | it "
              "does not) is the chance of a false claim averaged over the worlds where the treatment is no better "
              "than p0.</p>")


def _importance_table(importance: pd.DataFrame, at_n: int, labels: dict[str, str]) -> str:
    at = importance[importance["n"] == at_n]
    parts = []
    for outcome, title in (("success", "Success (H0 rejected)"), ("duration", "Months to the final analysis")):
        rows = at[(at["outcome"] == outcome) & (at["input"] != "true_rfs")].sort_values("rank")
        body = [[f"{r.rank}", labels.get(r.input, r.input), r.input, f"{r.index:.3f}",
                 f"{r.lower:.3f} to {r.upper:.3f}"] for r in rows.itertuples()]
        parts.append(f"<h3>{title}</h3>" + table(["rank", "input", "key", "share explained alone",
                                                   "95% bootstrap interval"], body, text=True))
    truth = at[(at["outcome"] == "success") & (at["input"] == "true_rfs")]
    note = ""
    if len(truth):
        t = truth.iloc[0]
        note = (f"<p class=\"note\">For comparison, the true 18-month RFS of each world (a consequence of the "
                f"post-transplant inputs and the subgroups transplanted, not an input) explains {t['index']:.3f} "
                f"({t.lower:.3f} to {t.upper:.3f}) of the variance in success; what no input explains is the chance "
                "of a single trial of this size.</p>")
    return "".join(parts) + note + (
        "<p class=\"note\">A first-order index is the share of the variance in the outcome that knowing that input "
        "exactly would remove, the others still uncertain (variance-based sensitivity, estimated from the same "
        "simulated trials by binning). Inputs drawn together (a Dirichlet) share their influence. Small negative "
        "values are Monte Carlo noise around 0.</p>")


def _priors_table(rows: pd.DataFrame) -> str:
    body = [[r.label, r.input, r.written + (" (joint)" if r.joint else ""), f"{r.mean:.4g}",
             f"{r.p05:.4g} to {r.p95:.4g}", r.source] for r in rows.itertuples()]
    return table(["input", "key", "distribution as written", "mean (central value)", "90% interval", "source"],
                 body, text=True) + ("<p class=\"note\">The source is the comment on the distribution's line in the "
                                     "scenario file ([est] marks judgement); the spread of a rate is that of a study "
                                     "of the size of the series behind it ({ beta_mean = m, n = N }).</p>")


def _files(manifest: dict) -> str:
    from sim.scenario.schema import scenario_toml

    scenario = Scenario.model_validate(manifest["scenario"]).model_dump()
    parts = [f"<pre>{html.escape(scenario_toml(scenario))}</pre>"]
    for path, text in manifest.get("scenario_files", {}).items():
        parts.append(f"<details><summary><b>{html.escape(path)}</b></summary><pre>{html.escape(text)}</pre>"
                     "</details>")
    return "".join(parts)


def _how_to_read(reps: int) -> str:
    items = [
        ("Assurance", "the chance that the trial succeeds (rejects H0), averaged over the uncertainty in its "
                      "inputs: 'power' without pretending every assumption is known (O'Hagan, Stevens & Campbell, "
                      "Pharm Stat 2005;4:187)."),
        ("Power at the central values", "the usual power, if every input were exactly its central value."),
        ("Plausible world", f"one draw of all the uncertain inputs; {reps} per sample size."),
        ("Correct decision", "rejecting H0 when the world's true 18-month RFS beats p0, not rejecting when it does "
                             "not."),
        ("Share explained alone", "the first-order variance-based index: how much of the uncertainty in success (or "
                                  "duration) would go if that input were known exactly."),
        ("MCSE, Monte Carlo range, bootstrap interval", "the simulation's own uncertainty; more simulated trials "
                                                        "narrow them. They say nothing about whether the "
                                                        "distributions are right."),
    ]
    return ("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in items) + "</ul>"
            f"<p class=\"note\">{DOCS_NOTE}</p>")


def _reproducibility(manifest: dict) -> str:
    command = (f"run_sim.py assurance --scenario {manifest['scenario_file']} --n {' '.join(map(str, manifest['n']))} "
               f"--reps {manifest['reps']} --seed {manifest['seed']} --at-n {manifest['at_n']}"
               + "".join(f" --set '{o}'" for o in manifest.get("overrides", [])))
    rows = [
        ["5.1 model and code version", f"blina-hsct-sim {manifest['versions'].get('sim')}, commit "
                                       f"{manifest.get('code_version')}"],
        ["5.2 software", ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))],
        ["5.3 computing environment", ", ".join(f"{k}: {v}" for k, v in manifest.get("machine", {}).items())],
        ["5.4 how to run", command],
        ["run", f"{manifest['started']} to {manifest['finished']} ({manifest['wall_seconds']} s, backend "
                f"{manifest['backend']}, jobs {manifest['jobs']}); results do not depend on jobs, chunking or backend"],
    ]
    return table(["item", "value"], rows, text=True)
