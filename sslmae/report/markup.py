"""HTML pieces of the report: escaped cells and tables, inline PNG figures, notes, sections
and the page around them (CSS inline, no JavaScript, no network), written atomically."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from sslmae.atomic import atomic_file
from sslmae.outputs import claim_file

GENERATOR = '<meta name="generator" content="sslmae report">'

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #345; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #eef2f6; }
td:first-child, th:first-child { text-align: left; }
tr.selected td { background: #fff3cd; font-weight: bold; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
.note { color: #7a5b00; background: #fffbe6; border-left: 4px solid #e0b000; padding: .4em .8em; }
.source { color: #666; font-size: 0.85em; }
.highlight { background: #fff3cd; border-left: 4px solid #e0a800; padding: .6em 1em; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """A table cell: floats to 4 decimals, None as a dash, everything escaped."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "&mdash;"
    if isinstance(value, (bool, np.bool_)):
        return esc(bool(value))
    if isinstance(value, (int, np.integer)):
        return esc(int(value))
    if isinstance(value, (float, np.floating)):
        return esc(f"{float(value):.4f}")
    return esc(value)


def table(df: pd.DataFrame, highlight: set[int] = frozenset()) -> str:
    """df -> <table>; rows at the positions in `highlight` get class="selected"."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for i, row in enumerate(df.itertuples(index=False)):
        cls = ' class="selected"' if i in highlight else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def kv_table(entries: dict) -> str:
    """A flat dict as a key/value table; object dtype keeps ints as ints beside floats."""
    return table(pd.DataFrame({"key": list(entries), "value": pd.Series(list(entries.values()), dtype=object)}))


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def source(*paths: Path) -> str:
    return '<p class="source">from ' + ", ".join(f"<code>{esc(p)}</code>" for p in paths) + "</p>"


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def page(title: str, sections: list[str]) -> str:
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{GENERATOR}\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )



def is_report(path: Path) -> bool:
    """Did `sslmae report` write this file? (its generator tag, or its stylesheet before the tag)"""
    head = path.read_bytes()[:8192].decode("utf-8", "replace")
    return GENERATOR in head or "tr.selected td { background: #fff3cd" in head


def write_report(document: str, out: Path) -> Path:
    """Write the HTML `document` to `out` atomically (a reader never sees half a page); returns out.
    An existing `out` that is not an sslmae report is refused (OutputError)."""
    out = claim_file(out, "report", is_report)
    with atomic_file(out) as tmp:
        tmp.write_text(document, encoding="utf-8")
        tmp.chmod(0o644)  # mkstemp makes 0600 files; a report is meant to be read by others
    return out
