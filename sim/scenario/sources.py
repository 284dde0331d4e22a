"""Where a scenario's numbers come from: the comment on each key's line of the TOML files (following `extends`).

Every clinical number in a scenario file cites its source in a comment on its own line; the explorer's
controls and the assurance report show it next to the value (or the distribution) it belongs to.
"""

from __future__ import annotations

from pathlib import Path

from sim.scenario.schema import scenario_files


def key_sources(path: str | Path) -> dict[str, tuple[str, str]]:
    """Dotted key -> (file name, the comment on its line), from the file and every file it extends
    (the file that sets the value wins)."""
    sources: dict[str, tuple[str, str]] = {}
    for file, text in reversed(list(scenario_files(path).items())):
        sources |= {key: (Path(file).name, comment) for key, comment in line_comments(text).items()}
    return sources


def line_comments(text: str) -> dict[str, str]:
    """Dotted key -> the comment after its value on the same line ('' when none), for a TOML text."""
    found, section = {}, ""
    for raw in text.splitlines():
        code, comment = split_comment(raw)
        line = code.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]").strip() + "."
        elif "=" in line:
            key = line.split("=", 1)[0].strip().strip('"')
            found[section + key] = comment
    return found


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one TOML line, a '#' inside a string not counting."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], line[i + 1:].strip()
    return line, ""
