"""Command-line entry point; see `python run_sim.py --help` and README.md."""

import time

STARTED = time.monotonic()  # the command's own start, before the imports, so reported times include them

import sys  # noqa: E402

from sim.cli.parser import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(started=STARTED))
