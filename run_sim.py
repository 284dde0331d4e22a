"""Command-line entry point; see `python run_sim.py --help` and README.md."""

import sys

from sim.cli.parser import main

if __name__ == "__main__":
    sys.exit(main())
