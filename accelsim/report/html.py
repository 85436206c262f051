"""A self-contained HTML report: figures embedded as base64 PNG, tables, settings. Opens in a
browser from disk, with no server and nothing fetched."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim import files


@dataclass(frozen=True)
class HtmlTable:
    table_id: str
    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class HtmlFigure:
    figure_id: str
    caption: str
    png: Path


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
.summary { background: #f6f8fa; border-left: 4px solid #2a7; padding: 0.6em 1em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; font-size: 0.9em; }
dt { font-weight: 600; }
"""


# Marks every figure whose image decoded (data-width = its natural width): lets a headless
# browser test check that the report renders, and costs nothing when read by a person.
SCRIPT = (
    "<script>window.addEventListener('load', () => { for (const img of document.images) "
    "{ img.dataset.width = img.naturalWidth; } document.body.dataset.loaded = 'yes'; });"
    "</script>"
)


def _table(t: HtmlTable) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in t.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in t.rows
    )
    return (
        f'<table id="{t.table_id}"><caption>{html.escape(t.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _figure(f: HtmlFigure) -> str:
    data = base64.b64encode(f.png.read_bytes()).decode()
    return (
        f'<figure id="{f.figure_id}"><img alt="{html.escape(f.caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(f.caption)}'
        "</figcaption></figure>"
    )


def render_report(
    title: str,
    summary: list[str],
    settings: dict[str, Any],
    figures: list[HtmlFigure],
    tables: list[HtmlTable],
) -> str:
    """The whole document as one string."""
    facts = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in settings.items()
    )
    lines = "".join(f"<p>{html.escape(s)}</p>" for s in summary)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><div class="summary" id="summary">{lines}</div>'
        f'<h2>Settings</h2><dl id="settings">{facts}</dl>'
        "<h2>Figures</h2>"
        + "".join(_figure(f) for f in figures)
        + "<h2>Tables</h2>"
        + "".join(_table(t) for t in tables)
        + SCRIPT
        + "</body></html>\n"
    )


def write_report(path: Path, document: str) -> Path:
    return files.write_text(path, document)
