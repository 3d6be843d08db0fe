"""The HTML the report shows is the Markdown table rendered: headings, prose and every table
cell, missing values as "—", numbers right-aligned, nothing else (no raw DataFrame dump)."""

from html.parser import HTMLParser

from attrprune.paper import paper_markdown
from attrprune.report_html import main, markdown_to_html, write_markdown

MARKDOWN = """# Compression

token PPL: `token` perplexity, **not** word perplexity.

### world-llama, sparsity 0.50

| method | scope | world token PPL @64 ↓ | mean accuracy ↑ | note |
|---|---|---:|---|---|
| lrp | row | 5.70 ± 0.01 | 1.000 | a \\| b |
| random | row | 185.89 | – | nan |

- one
- two
"""


class Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.tags, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell)
            self._cell = None


def test_tables_headings_and_missing_values():
    page = markdown_to_html(MARKDOWN)
    parsed = Cells()
    parsed.feed(page)
    assert parsed.rows == [
        ["method", "scope", "world token PPL @64 ↓", "mean accuracy ↑", "note"],
        ["lrp", "row", "5.70 ± 0.01", "1.000", "a | b"],
        ["random", "row", "185.89", "—", "—"],
    ]
    assert "<title>Compression</title>" in page and "<h3>world-llama, sparsity 0.50</h3>" in page
    assert "<code>token</code>" in page and "<strong>not</strong>" in page
    assert '<td class="num">185.89</td>' in page and "<li>two</li>" in page
    assert page.count("<table>") == 1 and "nan" not in page


def test_write_markdown_writes_both_and_the_cli_renders(tmp_path, capsys):
    write_markdown(tmp_path / "t.md", "| a | b |\n|---|---|\n| 1 | |\n", title="World card")
    assert (tmp_path / "t.md").read_text().startswith("| a | b |")
    html = (tmp_path / "t.html").read_text()
    assert "<h1>World card</h1>" in html and '<td class="missing">—</td>' in html
    (tmp_path / "t.html").unlink()
    assert main([str(tmp_path / "t.md")]) == 0 and (tmp_path / "t.html").exists()
    assert main([str(tmp_path / "missing.md")]) == 1
    assert "no such file" in capsys.readouterr().out


def test_paper_comparison_without_a_paper_model_is_one_line():
    import pandas as pd

    summ = pd.DataFrame({"model": ["world-llama"], "method": ["lrp"], "scope": ["row"], "sparsity": [0.5]})
    text = paper_markdown(summ, 0.5, {})
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[1].startswith("No paper model in this run")
    assert "[" not in text  # no Python list in the prose
