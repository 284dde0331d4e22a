"""The command line: argument parser (parser.py) and the commands behind it (commands.py)."""
