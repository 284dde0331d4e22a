"""The patient flow a trial knows at its data cutoff: CONSORT counts of one analysed trial.

Counted among the patients enrolled by the cutoff: each reason for leaving the pathway before HSCT
(only exits that happened by the cutoff), those still on the pathway at the cutoff, the transplanted,
and among the transplanted how the primary endpoint stands at the cutoff: an event or 18 months of
follow-up (evaluable at the landmark), lost to follow-up before the landmark, or still in follow-up
(censored at the cutoff). Every count is an integer; each patient falls in exactly one exit box.
"""

from __future__ import annotations

import numpy as np

from sim.analysis.endpoints import Observed, time_to_first
from sim.model.pathway import EXIT_REASONS, TRANSPLANTED
from sim.scenario.schema import DAYS_PER_MONTH

# Boxes under "transplanted", in CONSORT order.
FOLLOW_UP_BOXES = ("evaluable", "lost_to_follow_up", "in_follow_up")
# Words for every box (an exit reason without an entry is shown by its name).
BOX_LABELS = {
    "enrolled": "Enrolled by the data cutoff",
    "induction_death": "died during VIP induction",
    "early_death": "died during blinatumomab",
    "refractory": "not in remission (refractory)",
    "cri_not_consolidated": "CRi, not consolidated",
    "consolidation_death": "died during consolidation",
    "consolidation_relapse": "relapsed during consolidation",
    "mrd_positive": "MRD-positive before HSCT",
    "no_donor": "no donor",
    "refusal": "declined HSCT",
    "relapse_awaiting_hsct": "relapsed while awaiting HSCT",
    "death_awaiting_hsct": "died while awaiting HSCT",
    "on_pathway": "still on the pathway at the cutoff",
    "transplanted": "Transplanted (analysed for the primary endpoint)",
    "evaluable": "event or followed to the landmark",
    "lost_to_follow_up": "lost to follow-up before the landmark",
    "in_follow_up": "in follow-up at the cutoff (censored)",
}


def box_label(box: str) -> str:
    """Words for a flow box."""
    return BOX_LABELS.get(box, box.replace("_", " "))


def flow_counts(obs: Observed) -> dict[str, int]:
    """'flow_<box>' -> patients, for the enrolled, every exit reason, on pathway, and the follow-up boxes."""
    h = obs.history
    n = obs.n
    enrolled = h.draws.enroll_day[:n] <= obs.cutoff_day
    exited = enrolled & (h.days["exit_day"][:n] <= obs.cutoff_day)
    reason = h.exit_reason[:n]
    counts = {"flow_enrolled": int(enrolled.sum()), "flow_on_pathway": int((enrolled & ~exited).sum())}
    for code, name in enumerate(EXIT_REASONS):
        counts[f"flow_{name}"] = int(np.count_nonzero(exited & (reason == code)))
    assert counts[f"flow_{EXIT_REASONS[TRANSPLANTED]}"] == obs.hsct.size
    landmark = h.scenario.analysis.landmark_months * DAYS_PER_MONTH
    time, event = time_to_first(obs.follow_end, obs.relapse, obs.death)
    evaluable = (event & (time <= landmark)) | (time >= landmark)
    lost = ~evaluable & (obs.follow_end == obs.ltfu)
    counts["flow_evaluable"] = int(evaluable.sum())
    counts["flow_lost_to_follow_up"] = int(lost.sum())
    counts["flow_in_follow_up"] = int((~evaluable & ~lost).sum())
    return counts
