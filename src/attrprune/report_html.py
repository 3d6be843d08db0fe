"""HTML renderings of the result tables, for Snakemake's report (which shows HTML, images and
PDF inline, but Markdown and CSV only as downloads).

Every table stage writes its interpreted tables as Markdown; `write_markdown` writes that file
and, beside it (same name, ``.html``), the same text rendered as a standalone HTML page: the
headings, the prose that says what each table's columns and intervals mean, and every pipe table,
with missing values ("–", "nan", empty cells) shown as "—" and numeric columns right-aligned.
Rendering the Markdown (rather than the DataFrames again) keeps one source for both: what the
report shows is exactly what the Markdown says.

Only the Markdown the table stages write is understood: ATX headings, paragraphs, bullet lists,
pipe tables with a delimiter row, and inline ``code`` and **bold**.

Run: ``python -m attrprune.report_html results/tables/compression.md`` writes compression.html.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

from attrprune.io import atomic_write_text

MISSING = "—"
_MISSING_CELLS = {"", "–", "-", "nan", "NaN", "None"}
_DELIMITER = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; color: #1a1a1a;
       margin: 1.2em; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; } h3 { font-size: 1.08em; margin-top: 1.3em; }
p, li { max-width: 62em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; vertical-align: top; }
th { background: #eef2f6; text-align: left; position: sticky; top: 0; }
tr:nth-child(even) td { background: #f8f9fb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.missing { color: #999; text-align: center; }
code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; }
"""


def _inline(text: str) -> str:
    """Escape, then ``code`` and **bold** (the only inline Markdown the tables use)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            escaped = html.escape(part)
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))
    return "".join(out)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row; ``\\|`` is a literal bar inside a cell."""
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def _numeric(cell: str) -> bool:
    """A cell that reads as a number (with an interval, ±, %, thousands separators)."""
    return bool(re.match(r"^[+\-−]?[\d,.]+(\s|%|$)", cell))


def _table(lines: list[str]) -> str:
    header = _cells(lines[0])
    aligns = [
        "right"
        if c.endswith(":") and not c.startswith(":")
        else "center"
        if c.startswith(":") and c.endswith(":")
        else ""
        for c in _cells(lines[1])
    ]
    rows = [_cells(line) for line in lines[2:]]
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr></thead>", "<tbody>"]
    for row in rows:
        row = row + [""] * (len(header) - len(row))
        tds = []
        for i, cell in enumerate(row[: len(header)]):
            if cell in _MISSING_CELLS:
                tds.append(f'<td class="missing">{MISSING}</td>')
            elif (i < len(aligns) and aligns[i] == "right") or _numeric(cell):
                tds.append(f'<td class="num">{_inline(cell)}</td>')
            else:
                tds.append(f"<td>{_inline(cell)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def markdown_to_html(markdown: str, title: str | None = None) -> str:
    """A standalone HTML page of `markdown` (the subset the table stages write); `title`, when
    given, is its first heading (for Markdown that has none)."""
    lines = markdown.splitlines()
    body: list[str] = [f"<h1>{html.escape(title)}</h1>"] if title else []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            title = title or heading.group(2)
            i += 1
            continue
        if stripped.startswith("|") and i + 1 < len(lines) and _DELIMITER.match(lines[i + 1].strip()):
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            body.append(_table(lines[i:j]))
            i = j
            continue
        if re.match(r"^[-*]\s+", stripped):
            items = []
            while i < len(lines) and re.match(r"^[-*]\s+", lines[i].strip()):
                item = re.sub(r"^[-*]\s+", "", lines[i].strip())
                items.append(f"<li>{_inline(item)}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6}\s|\||[-*]\s)", lines[i].strip()):
            paragraph.append(lines[i].strip())
            i += 1
        if not paragraph:  # a lone table row without a delimiter: show it as text
            paragraph, i = [stripped], i + 1
        body.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    head = f"<title>{html.escape(title or 'attrprune table')}</title>"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"{head}\n<style>{_STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def html_path(markdown_path: Path | str) -> Path:
    return Path(markdown_path).with_suffix(".html")


def write_markdown(path: Path | str, markdown: str, title: str | None = None) -> None:
    """Write `markdown` to `path` and its HTML rendering beside it (``.html``; `title`: a first
    heading for Markdown without one)."""
    atomic_write_text(path, markdown)
    atomic_write_text(html_path(path), markdown_to_html(markdown, title))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m attrprune.report_html TABLE.md [...]  (writes TABLE.html beside each)")
        return 2
    for name in args:
        path = Path(name)
        if not path.is_file():
            print(f"report_html: no such file '{path}'; give the Markdown tables to render")
            return 1
        atomic_write_text(html_path(path), markdown_to_html(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
