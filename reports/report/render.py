"""Render the report's blocks (``reports.report.common``) as GitHub-flavoured Markdown
(report.md, PNGs linked by relative path) and as one self-contained HTML page (report.html)."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path

from tf_loopbench.reports.report.common import (
    Block,
    Bullets,
    Details,
    Heading,
    Image,
    Paragraph,
    Table,
)


def _md_cells(values) -> str:
    return "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in values) + " |"


def render_markdown(blocks: Sequence[Block], base_dir: str | os.PathLike[str]) -> str:
    """GitHub-flavoured Markdown; images by path relative to ``base_dir``."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            rule = "|" + "|".join("---" for _ in block.frame.columns) + "|"
            body = [_md_cells(row) for row in block.frame.itertuples(index=False)]
            parts.append("\n".join([_md_cells(block.frame.columns), rule, *body]))
        elif isinstance(block, Image):
            relative = Path(os.path.relpath(block.plot.path, base_dir)).as_posix()
            parts.append(f"![{block.plot.title}]({relative})")
        elif isinstance(block, Details):
            inner, summary = render_markdown(block.blocks, base_dir), html.escape(block.summary)
            parts.append(f"<details><summary>{summary}</summary>\n\n{inner}\n</details>")
    return "\n\n".join(parts).rstrip() + "\n"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
li { margin: .2rem 0; }
em { color: #9a6700; }
details { margin: 1rem 0; }
summary { cursor: pointer; font-weight: 600; }
"""
NO_CLAIM = "*(no claim)*"


def _inline(text: str) -> str:
    """Escape text; the one Markdown mark of the Decisions (*(no claim)*) becomes <em>."""
    escaped = html.escape(str(text))
    if escaped.startswith(NO_CLAIM):
        escaped = "<em>(no claim)</em>" + escaped[len(NO_CLAIM) :]
    return escaped


def _html_row(values, tag: str) -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(v))}</{tag}>" for v in values) + "</tr>"


def _html_blocks(blocks: Sequence[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            body = "".join(_html_row(row, "td") for row in block.frame.itertuples(index=False))
            head = _html_row(block.frame.columns, "th")
            parts.append(f"<table><thead>{head}</thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(Path(block.plot.path).read_bytes()).decode("ascii")
            title = html.escape(block.plot.title)
            parts.append(f'<img alt="{title}" src="data:image/png;base64,{data}">')
        elif isinstance(block, Details):
            inner, summary = _html_blocks(block.blocks), html.escape(block.summary)
            parts.append(f"<details><summary>{summary}</summary>{inner}</details>")
    return "\n".join(parts)


def render_html(blocks: Sequence[Block]) -> str:
    """One self-contained HTML page: inline CSS, PNGs as data: URIs, no script, no network."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "tf-loopbench report")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title><link rel="icon" href="data:,"><style>{STYLE}</style></head>\n<body>\n'
        f"{_html_blocks(blocks)}\n</body></html>\n"
    )
