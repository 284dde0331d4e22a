"""Shared test inputs: the degenerate scenario where every enrolled patient reaches HSCT; a TOML writer."""

import math
import re
from typing import Any

# Every pre-transplant risk 0 (also while waiting for HSCT) and every patient MRD-negative with a willing donor:
# all are transplanted.
NO_PRE_TRANSPLANT_RISK = {
    "induction.p_death": 0.0, "response.p_cr": 1.0, "response.p_cri": 0.0, "response.p_early_death": 0.0,
    "consolidation.cycle1.p_death": 0.0, "consolidation.cycle1.p_relapse": 0.0,
    "consolidation.cycle2.p_death": 0.0, "consolidation.cycle2.p_relapse": 0.0,
    "mrd.mfc.p_negative_after_induction": 1.0, "mrd.mfc.p_lose_negativity": 0.0,
    "donor.p_no_donor": 0.0, "transplant.p_refusal": 0.0,
    "waiting.relapse_per_month_mrd_negative": 0.0, "waiting.relapse_per_month_mrd_positive": 0.0,
    "waiting.death_per_month": 0.0,
}

# GVHD does not change NRM: the unlinked post-transplant model, whose closed forms many tests check (the link has
# its own tests in test_gvhd_link.py).
UNLINKED_GVHD = {"post_transplant.nrm_hr_agvhd_3_4": 1.0, "post_transplant.nrm_hr_cgvhd_systemic": 1.0}

# Waiting for HSCT carries no risk: donor type and MRD status of the transplanted are then independent.
NO_WAITING_RISK = {"waiting.relapse_per_month_mrd_negative": 0.0, "waiting.relapse_per_month_mrd_positive": 0.0,
                   "waiting.death_per_month": 0.0}


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(text: str) -> str:
    """A TOML basic string (quotes, backslashes and control characters escaped)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: Any) -> str:
    """One TOML value: bool, int, float (incl. nan/inf), str, array or inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_dumps(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """A document: the table's plain keys, then one [header] per sub-table (empty tables included)."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            path = (*prefix, key)
            lines.append("\n[" + ".".join(toml_key(part) for part in path) + "]")
            lines.append(toml_dumps(value, path))
    return "\n".join(lines) + "\n"
