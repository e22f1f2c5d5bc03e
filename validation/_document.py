"""A tiny document model rendered to both Markdown and self-contained HTML (no dependencies).

A document is a list of blocks; each renderer walks the same list, so report.md and report.html
never disagree. Images are referenced by relative path in Markdown and inlined as base64 in HTML.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass(frozen=True)
class Image:
    path: str
    """Relative to the report folder."""
    caption: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Paragraph | Table | Image | Code


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(blocks: list[Block]) -> str:
    """Markdown text of ``blocks`` (GitHub flavour: pipe tables, fenced code)."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Paragraph):
            out.append(b.text)
        elif isinstance(b, Table):
            cols = [str(c) for c in b.frame.columns]
            lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |"
                      for row in b.frame.itertuples(index=False)]
            if b.caption:
                lines.append(f"\n*{b.caption}*")
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            out.append(f"![{b.caption}]({b.path})\n\n*{b.caption}*")
        elif isinstance(b, Code):
            out.append(f"```\n{b.text}\n```")
    return "\n\n".join(out) + "\n"


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .6em;"
          "text-align:right}th{background:#eee}img{max-width:100%}pre{background:#f6f6f6;padding:.6em;"
          "overflow-x:auto}figcaption,.caption{font-style:italic;color:#555}")


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], root: Path, title: str) -> str:
    """Self-contained HTML of ``blocks``: images read from ``root`` and inlined as base64 PNG."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_STYLE}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b.frame.columns)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                           for row in b.frame.itertuples(index=False))
            caption = f"<caption class='caption'>{_inline(b.caption)}</caption>" if b.caption else ""
            out.append(f"<table>{caption}<tr>{head}</tr>{rows}</table>")
        elif isinstance(b, Image):
            data = base64.b64encode((root / b.path).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(b.caption)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
        elif isinstance(b, Code):
            out.append(f"<pre>{html.escape(b.text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out)
