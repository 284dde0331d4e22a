"""Golden outputs of the code at commit 587beec (before issue 11), for bit-for-bit regression tests.

Run from the repository root at that commit: python tests/golden/make_golden.py OUT
"""
import json
import sys
from pathlib import Path

import pandas as pd

from sim.cli.parser import main
from sim.scenario.schema import load_scenario
from sim.study.runner import Study, arm_models, simulate_chunk

VARIANTS = {
    "base": [],
    "finite_transplant": ["transplant.capacity=finite", "transplant.slots=1", "mrd.positive_action=transplant",
                          "post_transplant.nrm_hr_haplo=1.5", "post_transplant.relapse_shape=0.8",
                          "mrd.assay=NGS", "analysis.cutoff=calendar", "post_transplant.ltfu_prob=0.1"],
}

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, sets in VARIANTS.items():
        sc = load_scenario("scenarios/base.toml", sets)
        (out / f"{name}_scenario.json").write_text(json.dumps(sc.model_dump(), indent=1, sort_keys=True) + "\n")
        args = ["trial", "--scenario", "scenarios/base.toml", "--n", "60", "--seed", "7",
                "--out", str(out / f"{name}_trial")]
        for s in sets:
            args += ["--set", s]
        assert main(args) == 0
        ns = (20, 40) if name == "base" else (20, 30)
        rows = pd.DataFrame(simulate_chunk(Study(sc, ns, 10, 5, "all"), arm_models(sc), 0, 10))
        rows.to_parquet(out / f"{name}_replicates.parquet", index=False)
