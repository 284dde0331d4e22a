"""Shared pieces of every HTML report: the style (screen and print), sections, tables, embedded figures,
the atomic write, and the optional PDF through headless Chromium.

Reports are single files that open offline: figures are base64 PNGs, there are no scripts, no
external fonts or styles. The print style keeps a heading with what follows it, never splits a table
or a figure across pages, and wraps long lines, so "Print to PDF" (or `--pdf`) gives a clean document.
"""

from __future__ import annotations

import base64
import html
import shutil
import subprocess
import tempfile
from pathlib import Path

from sim.study.provenance import write_atomically

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 1050px; margin: 2em auto; color: #222; line-height: 1.45;
       padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #34568b; padding-bottom: 0.2em;
margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eef3fb; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto;
font-size: 0.8em; white-space: pre-wrap; overflow-wrap: anywhere; }
.summary { background: #f4f8ec; border: 1px solid #9bb86b; padding: 0.8em 1.2em; }
.summary p.headline { font-size: 1.1em; }
.warning { background: #fdecea; border: 1px solid #d9534f; padding: 0.5em 1em; margin: 0.6em 0; }
.flag { background: #fff8e1; border: 1px solid #e0b84c; padding: 0.5em 1em; margin: 0.6em 0; }
.note { color: #555; font-size: 0.9em; } table.text td, table.text th { text-align: left; }
code { overflow-wrap: anywhere; }
@media print {
  body { max-width: none; margin: 0; font-size: 10.5pt; }
  h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
  table, img, figure, .summary, .warning, .flag { break-inside: avoid; page-break-inside: avoid; }
  p { orphans: 3; widows: 3; }
  a { color: inherit; text-decoration: none; }
}
"""

# Where a reader finds the explanations (relative to the project folder; a report never points elsewhere).
DOCS_NOTE = ("How to read this report, in plain words: docs/reading-a-report.md in the project. The model, its "
             "assumptions and their literature sources: docs/model.md; the statistics: docs/statistics.md; the "
             "output files: docs/datasets.md.")


NOT_EVALUABLE_NOTE = ('<p class="note">n/a: fewer than 2 simulated trials had an estimate at that n, so the measure '
                      "is not evaluable (the column &ldquo;not evaluable&rdquo; gives the share without one).</p>")


def shown(fmt: str, value: float) -> str:
    """A number in the given format, or 'n/a' where it is not finite (NOT_EVALUABLE_NOTE says why)."""
    return fmt.format(value) if value == value and abs(float(value)) != float("inf") else "n/a"


def with_note(table_html: str) -> str:
    """A table followed by the n/a note when any of its cells is n/a."""
    return table_html + (NOT_EVALUABLE_NOTE if "<td>n/a</td>" in table_html else "")


def section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{body}"


def img(png: bytes, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def table(header: list[str], rows: list[list[str]], text: bool = False) -> str:
    """An HTML table; text=True left-aligns every column (prose rather than numbers)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    opening = '<table class="text">' if text else "<table>"
    return f"{opening}<tr>{head}</tr>{body}</table>"


def page(title: str, sections: list[str]) -> str:
    """A complete, self-contained HTML document."""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>" + "".join(sections) + "</body></html>")


def write_page(out: Path, text: str, name: str = "report.html") -> Path:
    """Write the report atomically into OUT/ (readable by others; a failed write is an InputError, exit 2)."""
    write_atomically(out, {name: text})
    return out / name


def chromium() -> str | None:
    """The headless-capable Chromium on this machine, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def write_pdf(report: Path) -> Path | None:
    """Print report.html to report.pdf with headless Chromium; None when Chromium is not installed."""
    browser = chromium()
    if browser is None:
        return None
    pdf = report.with_suffix(".pdf")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                        report.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    return pdf
