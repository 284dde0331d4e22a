"""Command-line entry point; see `python run_sim.py --help` and README.md."""

import time

STARTED = time.monotonic()  # the command's own start, before the imports, so reported times include them

import os  # noqa: E402
import sys  # noqa: E402

# Arrow's default allocator (mimalloc) keeps the memory a large study's chunk tables free while they become a
# pandas frame; the system allocator hands it back, which halves the largest study's peak memory (5.0 -> 2.0 GB
# to load 100,000 replicates x 10 n of every endpoint). Read when pyarrow first allocates; a user's choice stands.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

from sim.cli.parser import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(started=STARTED))
