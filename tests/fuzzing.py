"""Generated inputs for the property tests and benchmarks/fuzz_cli.py, and the checks every run must pass.

Whole scenarios are drawn from the schema itself (every leaf field, its ge/gt/le/lt bounds and its
Literal choices, extremes included) and then repaired so that the cross-field rules hold by
construction; nothing is a mutation of base.toml. Also: invalid single values, hostile output
folders and command lines. `output_problems` lists every number a command printed or wrote that is
not finite and has no reason beside it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import numpy as np
import pandas as pd
from hypothesis import strategies as st
from support import toml_dumps, toml_value

from sim.scenario.schema import DAYS_PER_MONTH, leaf_fields, load_scenario

ROOT = Path(__file__).resolve().parents[1]
FIELDS = dict(leaf_fields())
BASE_DATA = load_scenario(ROOT / "scenarios" / "base.toml").model_dump()


# --------------------------------------------------------------------------- the schema's own ranges


def bounds(field: Any) -> tuple[float | None, bool, float | None, bool]:
    """(low, low is strict, high, high is strict) of a numeric field."""
    lo = hi = None
    lo_strict = hi_strict = False
    for meta in field.metadata:
        if getattr(meta, "ge", None) is not None:
            lo, lo_strict = float(meta.ge), False
        if getattr(meta, "gt", None) is not None:
            lo, lo_strict = float(meta.gt), True
        if getattr(meta, "le", None) is not None:
            hi, hi_strict = float(meta.le), False
        if getattr(meta, "lt", None) is not None:
            hi, hi_strict = float(meta.lt), True
    return lo, lo_strict, hi, hi_strict


def edges(field: Any) -> list[float]:
    """The extreme allowed values of a numeric field: its bounds or the nearest numbers inside them."""
    lo, lo_strict, hi, hi_strict = bounds(field)
    low = math.nextafter(lo, math.inf) if lo_strict else lo
    high = math.nextafter(hi, -math.inf) if hi_strict else hi
    span = high - low
    return [low, high, low + 1e-9 * span, high - 1e-9 * span]


TEXTS = ["x", "", "base", "a b/c", "../up", "é名前", "tab\there", "new\nline", "quote\"s", "-dash", "1.5"]


def field_values(key: str) -> st.SearchStrategy[Any]:
    """Every value the schema allows for one key, with its extremes drawn often."""
    field = FIELDS[key]
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return st.sampled_from(get_args(annotation))
    if annotation is bool:
        return st.booleans()
    if annotation is str:
        return st.one_of(st.sampled_from(TEXTS), st.text(max_size=20))
    lo, lo_strict, hi, hi_strict = bounds(field)
    if annotation is int:
        low, high = int(lo) + lo_strict, int(hi) - hi_strict
        return st.one_of(st.sampled_from([low, high]), st.integers(low, high), st.integers(low, min(high, low + 10)))
    inside = st.floats(lo, hi, exclude_min=lo_strict, exclude_max=hi_strict, allow_nan=False, allow_infinity=False)
    small = st.floats(lo, min(hi, max(lo, 0) + 1.0), exclude_min=lo_strict, exclude_max=hi_strict and hi <= 1.0)
    return st.one_of(st.sampled_from(edges(field)), inside, small)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    for section in sections:
        data = data.setdefault(section, {})
    data[leaf] = value


def get_dotted(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


GVHD_LINK_KEYS = ("post_transplant.nrm_hr_agvhd_3_4", "post_transplant.nrm_hr_cgvhd_systemic")


@st.composite
def valid_scenarios(draw: st.DrawFn, gvhd_link: bool = True) -> dict[str, Any]:
    """A whole scenario (no `extends`) every documented rule accepts, extremes included.

    gvhd_link=False keeps GVHD from raising NRM (both hazard ratios 1): with the link, calibrating an extreme
    draw solves the forward equations many times and can take minutes (benchmarks/fuzz_cli.py covers it).
    """
    data: dict[str, Any] = {}
    for key in FIELDS:
        # Interim rules stay as in base.toml (all off): each enabled rule has its own tests, and an enabled
        # predictive futility rule would make every drawn trial many times slower.
        if key.startswith("monitoring."):
            value = get_dotted(BASE_DATA, key)
        elif key in GVHD_LINK_KEYS and not gvhd_link:
            value = 1.0
        else:
            value = draw(field_values(key))
        set_dotted(data, key, value)
    return repaired(data, draw(st.randoms(use_true_random=False)))


def _fraction(rng: Any) -> float:
    return rng.choice([0.0, 1.0, 0.5, rng.random(), 1e-9, 1 - 1e-9])


def repaired(data: dict[str, Any], rng: Any) -> dict[str, Any]:
    """The scenario with every cross-field rule of the schema (and the documented joint limits) made to hold."""
    a, p, r, d, pt, t = (data[k] for k in ("analysis", "patients", "response", "donor", "post_transplant",
                                           "transplant"))
    if a["p1"] <= a["p0"]:
        a["p0"], a["p1"] = sorted((a["p0"], a["p1"]))
    if a["p1"] <= a["p0"]:  # equal: p0 down, or p1 up where p0 is tiny
        a["p0"], a["p1"] = (a["p0"] * 0.5, a["p1"]) if a["p0"] > 1e-300 else (a["p0"], 0.5)
    for lo, hi in (("age_min", "age_max"), ("bsa_min", "bsa_max")):
        if p[lo] >= p[hi]:
            p[lo], p[hi] = sorted((p[lo], p[hi]))
        if p[lo] >= p[hi]:  # equal: move the one with room
            top = bounds(FIELDS[f"patients.{hi}"])[2]
            if p[hi] < top:
                p[hi] = p[hi] + (top - p[hi]) * 0.5
            else:
                p[lo] = p[lo] - (p[lo] - bounds(FIELDS[f"patients.{lo}"])[0]) * 0.5
    _at_most_one(r, ("p_cr", "p_cri", "p_early_death"))
    for cycle in ("cycle1", "cycle2"):
        _at_most_one(data["consolidation"][cycle], ("p_death", "p_relapse"))
    mix = np.array([d["p_haplo"], d["p_sibling"], d["p_unrelated"]])
    mix = mix / mix.sum() if mix.sum() > 0 else np.array([1.0, 0.0, 0.0])
    d["p_haplo"], d["p_sibling"] = float(mix[0]), float(mix[1])
    d["p_unrelated"] = max(0.0, 1.0 - d["p_haplo"] - d["p_sibling"])
    if pt["relapse_incidence"] + pt["nrm_incidence"] >= 1.0:
        total = pt["relapse_incidence"] + pt["nrm_incidence"]
        keep = 1.0 - 1e-6 * _fraction(rng) - 1e-9
        pt["relapse_incidence"] *= keep / total
        pt["nrm_incidence"] *= keep / total
    if pt["relapse_incidence"] + pt["nrm_incidence"] < 1e-6:
        pt[rng.choice(["relapse_incidence", "nrm_incidence"])] = rng.choice([1e-6, 1e-3, 0.1])
    if pt["cgvhd_incidence"] > 1.0 - pt["relapse_incidence"] - pt["nrm_incidence"] and rng.random() < 0.8:
        # Always reachable: alive without relapse at the onset day >= at the landmark = 1 - relapse - NRM.
        pt["cgvhd_incidence"] = (1.0 - pt["relapse_incidence"] - pt["nrm_incidence"]) * (1 - 1e-9) * _fraction(rng)
    if pt["agvhd_3_4_day100"] > pt["agvhd_2_4_day100"]:
        pt["agvhd_3_4_day100"], pt["agvhd_2_4_day100"] = pt["agvhd_2_4_day100"], pt["agvhd_3_4_day100"]
    if pt["horizon_months"] < pt["incidence_landmark_months"]:
        lm = pt["incidence_landmark_months"]
        pt["horizon_months"] = lm + (600.0 - lm) * _fraction(rng)
    landmark_days = pt["incidence_landmark_months"] * DAYS_PER_MONTH
    if pt["cgvhd_incidence"] > 0 and pt["cgvhd_onset_min_days"] >= landmark_days:
        pt["cgvhd_onset_min_days"] = landmark_days * _fraction(rng) * 0.999
    ind, blina = data["induction"], data["blinatumomab"]
    treatment = ind["duration_days"] + blina["duration_days"]
    while treatment > 3650.0:
        ind["duration_days"] = max(0.01, ind["duration_days"] * 0.999 * 3650.0 / treatment)
        blina["duration_days"] = max(0.01, blina["duration_days"] * 0.999 * 3650.0 / treatment)
        treatment = ind["duration_days"] + blina["duration_days"]
    if r["assessment_day"] < treatment:
        r["assessment_day"] = min(3650.0, treatment + (3650.0 - treatment) * _fraction(rng))
    if t["conditioning_days"] >= t["slot_days"]:
        t["conditioning_days"] = t["slot_days"] * _fraction(rng) * 0.999
    if a["test"] == "binomial" and (pt["ltfu_prob"] > 0 or a["cutoff"] == "calendar"):
        a["test"] = rng.choice(["cloglog", "linear", "arcsine", "logrank"])
    return data


def _at_most_one(section: dict[str, Any], keys: tuple[str, ...]) -> None:
    total = sum(section[k] for k in keys)
    if total > 1.0:
        for k in keys:
            section[k] /= total


# --------------------------------------------------------------------------- invalid input


@st.composite
def invalid_changes(draw: st.DrawFn) -> tuple[str, Any, str]:
    """(dotted key, a value the schema refuses for it, the kind of mistake)."""
    key = draw(st.sampled_from(list(FIELDS)))
    field = FIELDS[key]
    annotation = field.annotation
    kinds = ["wrong type", "missing", "unknown key"]
    if annotation in (int, float):
        kinds += ["below range", "above range", "not finite"]
    if get_origin(annotation) is Literal:
        kinds.append("not a choice")
    kind = draw(st.sampled_from(kinds))
    if kind == "wrong type":
        value = draw(st.sampled_from([[1], {"x": 1}] + (["text"] if annotation is not str else [1.5])
                                     + ([True] if annotation is not bool else [])))
    elif kind == "missing":
        value = None
    elif kind == "unknown key":
        leaf = key.rsplit(".", 1)[-1]
        typo = draw(st.sampled_from([leaf + "s", leaf[:-1], leaf.replace("_", ""), "x_" + leaf]))
        key = key.rsplit(".", 1)[0] + "." + typo if "." in key else typo
        value = 1
    elif kind == "below range":
        lo, lo_strict, _, _ = bounds(field)
        value = draw(st.sampled_from([lo - 1, lo - 1e-6 * max(1, abs(lo))] + ([lo] if lo_strict else [])))
        value = int(math.floor(value)) if annotation is int else value
    elif kind == "above range":
        _, _, hi, hi_strict = bounds(field)
        value = draw(st.sampled_from([hi + 1, hi * 10 + 1, 1e300] + ([hi] if hi_strict else [])))
        value = int(math.ceil(value)) if annotation is int and value < 1e18 else value
    elif kind == "not finite":
        value = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    else:
        value = draw(st.sampled_from(["", "none", "MFCC", "Landmark"]))
    return key, value, kind


# --------------------------------------------------------------------------- hostile output folders

HOSTILE = ("is a file", "below a file", "not writable", "study.json not JSON", "study.json not UTF-8",
           "study.json a folder", "study.json a list", "chunks a file", "chunk truncated", "chunk not parquet",
           "chunk of other columns", "foreign files", "different study", "more replicates", "empty folder")


def make_hostile(kind: str, folder: Path, prepared: Path | None = None) -> Path:
    """An output path of the given kind under `folder`; `prepared` is a finished small sweep folder to copy."""
    out = folder / "out"
    if kind == "is a file":
        out.write_text("a file, not a folder\n")
    elif kind == "below a file":
        (folder / "file").write_text("x")
        out = folder / "file" / "out"
    elif kind == "not writable":
        out = Path("/proc/blina-hsct-sim-cannot-write-here")
    elif kind in ("different study", "more replicates", "chunk truncated", "chunk not parquet",
                  "chunk of other columns", "study.json not JSON", "study.json not UTF-8", "study.json a folder",
                  "study.json a list", "chunks a file"):
        shutil.copytree(prepared, out)
        chunks = sorted((out / "chunks").glob("*.parquet"))
        if kind == "chunk truncated":
            chunks[0].write_bytes(chunks[0].read_bytes()[:100])
        elif kind == "chunk not parquet":
            chunks[-1].write_text("not parquet")
        elif kind == "chunk of other columns":
            pd.DataFrame({"replicate": [0], "x": [1.0]}).to_parquet(chunks[0])
        elif kind == "study.json not JSON":
            (out / "study.json").write_text("{not json")
        elif kind == "study.json not UTF-8":
            (out / "study.json").write_bytes(b"\xff\xfe\x00garbage")
        elif kind == "study.json a folder":
            (out / "study.json").unlink()
            (out / "study.json").mkdir()
        elif kind == "study.json a list":
            (out / "study.json").write_text("[1, 2]")
        elif kind == "chunks a file":
            shutil.rmtree(out / "chunks")
            (out / "chunks").write_text("x")
    elif kind == "foreign files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        (out / "oc.csv").write_text("not the tool's\n")
    elif kind == "empty folder":
        out.mkdir()
    return out


# --------------------------------------------------------------------------- command lines

OPTION_VALUES = {
    "--n": ["1", "5", "20", "0", "-3", "2.5", "x", "10:5:1", "5:20:5", "1:3:0", "20:20:1", "99999999", "", "5:"],
    "--reps": ["1", "2", "3", "0", "-1", "1e3", "x", "99999999999"],
    "--seed": ["0", "1", "7", "-1", "x", str(2**64), "1.5"],
    "--jobs": ["1", "2", "-1", "0", "-2", "x", "100000"],
    "--chunk-size": ["1", "2", "0", "-1", "x"],
    "--endpoints": ["primary", "all", "none"],
    "--target-power": ["0.8", "0.9", "1", "0", "x", "nan"],
    "--set": ["donor.p_no_donor=0.3", "x=1", "a.b.c=1", "response.p_cr=2", "=", "accrual.n_sites=", "name=x y",
              "analysis.p0=0.6", "mrd.assay=NGS", "post_transplant.relapse_incidence=0"],
    "--scenario": ["scenarios/base.toml", "scenarios/pessimistic.toml", "nowhere.toml", "scenarios", ""],
    "--variant": ["v:donor.p_no_donor=0.3", "bad", ":x=1", "v:", "v:x=1", "v/w:donor.p_no_donor=0.3"],
    "--vary": ["response.p_cr=0.7:0.9:2", "response.p_cr=0.9:0.7:2", "x=1:2:2", "response.p_cr=0:1:1",
               "response.p_cr=a:b:c", "post_transplant.relapse_incidence=0:0.2:2"],
    "--backend": ["loky", "spark"],
    "--out": ["OUT"],
}
COMMAND_OPTIONS = {
    "trial": ["--scenario", "--set", "--n", "--seed", "--out"],
    "sweep": ["--scenario", "--set", "--n", "--reps", "--seed", "--jobs", "--chunk-size", "--endpoints",
              "--target-power", "--out", "--backend"],
    "compare": ["--scenario", "--variant", "--set", "--n", "--reps", "--seed", "--out", "--endpoints"],
    "sensitivity": ["--scenario", "--set", "--vary", "--n", "--reps", "--seed", "--out"],
    "describe": ["--scenario", "--set", "--n", "--target-power"],
    "report": [],
    "docs": [],
}
SMALL = {"--n": "5", "--reps": "2", "--jobs": "1"}  # keeps runs that succeed small


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command line: a command, some of its options with odd or ordinary values (OUT = the output folder)."""
    command = draw(st.sampled_from(list(COMMAND_OPTIONS)))
    argv = [command]
    if command == "report":
        return argv + [draw(st.sampled_from(["OUT", "scenarios", "nowhere"]))]
    if command == "docs":
        return argv + ["--out", "OUT/README.md"]
    chosen = draw(st.lists(st.sampled_from(COMMAND_OPTIONS[command]), max_size=5))
    for option in chosen:
        argv += [option, draw(st.sampled_from(OPTION_VALUES[option]))]
    for option, value in SMALL.items():  # odd values above may override these: argparse takes the last
        if option in COMMAND_OPTIONS[command] and option not in chosen:
            argv = [*argv[:1], option, value, *argv[1:]]
    if command in ("sweep", "compare", "sensitivity"):
        argv += ["--quiet"] if command == "sweep" else []
        if "--reps" in chosen and not draw(st.booleans()):
            argv += ["--reps", "2"]
    if "--out" in COMMAND_OPTIONS[command] and "--out" not in chosen:
        argv += ["--out", "OUT"]
    return argv


# --------------------------------------------------------------------------- checks

_NOT_FINITE = re.compile(r"(?<![\w.])[-+]?(nan|inf|infinity)(?![\w])", re.IGNORECASE)
MEASURES = ("mean", "bias", "empse", "rmse", "coverage", "halfwidth_mean", "halfwidth_p90")


_LIMIT = re.compile(r"post_transplant\.(\w+) = ([-+.\deE]+)(?: and [^:]*)?: (?:at most|[^;]*can be at most about) "
                    r"([-+.\deE]+)")


def computed_limit(message: str) -> str:
    """If a refusal is at a limit that calibration computes (documented in the reference) and the value asked
    for is indeed beyond the stated limit, which limit; else ''."""
    found = _LIMIT.search(message)
    if not found:
        found = re.search(r"post_transplant\.relapse_incidence = ([-+.\deE]+) and .* relapse incidence can be at "
                          r"most about ([-+.\deE]+)", message)
        if found and float(found.group(1)) > float(found.group(2)) - 1e-6:
            return "relapse_incidence"
        return ""
    key, asked, limit = found.group(1), float(found.group(2)), float(found.group(3))
    return key if asked > limit - 1e-4 else ""


_EXPLAINED_INFINITY = re.compile(r"statistic -?inf \((no relapse or death by|everyone relapsed or died by) the "
                                 r"landmark, S = [01]\)")


def printed_problems(text: str) -> list[str]:
    """Lines of printed output holding a NaN or infinity without its reason beside it."""
    return [f"printed: {line.strip()}" for line in text.splitlines()
            if _NOT_FINITE.search(_EXPLAINED_INFINITY.sub("", line))]


def html_problems(page: str) -> list[str]:
    """Table cells and sentences of a report showing NaN or infinity (images and quoted scenario files aside)."""
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    text = re.sub(r"<pre>.*?</pre>", "", text, flags=re.S)
    text = re.sub(r"<[^>]+>", "\n", text)
    return printed_problems(text)


def _strict_json(path: Path) -> list[str]:
    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except ValueError as exc:
        return [f"{path.name}: not strict JSON ({exc})"]
    return []


def _finite(frame: pd.DataFrame, columns: list[str], where: str) -> list[str]:
    problems = []
    for column in columns:
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(values).all():
                problems.append(f"{where}: {column} not finite in {int((~np.isfinite(values)).sum())} rows")
    return problems


def output_problems(out: Path, stdout: str) -> list[str]:
    """Every number printed or written without being finite or having a reason beside it."""
    problems = printed_problems(stdout)
    if not out.is_dir():
        return problems
    for path in out.rglob("*.json"):
        problems += _strict_json(path)
    endpoints = out / "endpoints.csv"
    if endpoints.is_file():
        table = pd.read_csv(endpoints, keep_default_na=False, na_values=[""])
        unexplained = table[~np.isfinite(table["estimate"].astype(float)) & table["not_evaluable_reason"].isna()]
        problems += [f"endpoints.csv: {row} has no estimate and no reason" for row in unexplained["endpoint"]]
    for path in out.rglob("oc.csv"):
        problems += _oc_problems(pd.read_csv(path), path.name)
    compare = out / "compare_oc.csv"
    if compare.is_file():
        problems += _oc_problems(pd.read_csv(compare), compare.name)
    for name in ("resources.csv", "resources_totals.csv", "compare_resources.csv", "compare_differences.csv"):
        if (out / name).is_file():
            table = pd.read_csv(out / name)
            problems += _finite(table, [c for c in table.columns if table[c].dtype.kind == "f"], name)
    for name in ("required_n.csv", "compare_required_n.csv"):
        if (out / name).is_file():
            table = pd.read_csv(out / name)
            problems += _finite(table, ["target_power", "largest_n"], name)
    for path in out.rglob("report.html"):
        problems += [f"{path.name}: {p}" for p in html_problems(path.read_text(encoding="utf-8"))]
    for name in ("sensitivity.csv", "tornado.csv"):
        if (out / name).is_file():
            table = pd.read_csv(out / name)
            problems += _finite(table, ["value", "power", "power_mcse", "power_low", "power_high", "swing"], name)
    return problems


def _oc_problems(oc: pd.DataFrame, name: str) -> list[str]:
    """oc.csv: tests and counts always finite; a measure may be empty only when < 2 replicates had an estimate."""
    problems = []
    tested = oc[oc["analysis"].isin(["rfs", "itt"])]
    problems += _finite(tested, ["power", "power_mcse", "type1", "type1_mcse"], name)
    problems += _finite(oc, ["p_not_evaluable", "transplanted_mean", "evaluable_mean", "enrolled_mean",
                             "duration_months_mean"], name)
    # OS and EFS from enrollment have no truth when leavers are not followed; they are then never estimated.
    unfollowed = oc["analysis"].isin(["os_enroll", "efs_enroll"]) & (oc["p_not_evaluable"] == 1.0)
    problems += _finite(oc[~unfollowed], ["true"], name)
    estimable = oc[oc["n_estimable"] >= 2]
    problems += _finite(estimable, [m for m in MEASURES if m in oc], f"{name} (rows with >= 2 estimates)")
    return problems


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below `folder` with its size and modification time (to see what a run wrote)."""
    if not folder.exists():
        return {}
    if folder.is_file():
        stat = folder.stat()
        return {str(folder): (stat.st_size, stat.st_mtime_ns)}
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if not p.is_symlink()}


__all__ = ["toml_dumps", "toml_value"]
