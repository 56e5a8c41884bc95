"""Render a report as Markdown and as standalone HTML from one list of blocks.

Blocks are ``("h", level, text)``, ``("p", text)``, ``("table", header, rows)``,
``("code", text)`` and ``("img", relative_path, caption)``, so the two formats always
carry the same content.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

Block = tuple[Any, ...]


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
        elif kind == "code":
            out.append("```yaml\n" + block[1].rstrip("\n") + "\n```")
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})\n\n*{block[2]}* ([PDF]({block[1][:-4]}.pdf))")
        out.append("")
    return "\n".join(out)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; }
figcaption { font-style: italic; color: #555; }
"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{esc(block[1])}</p>")
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append(
                "<table><thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header) + "</tr></thead>"
            )
            out.append("<tbody>")
            out.extend("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            out.append("</tbody></table>")
        elif kind == "code":
            out.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "img":
            src = esc(block[1])
            out.append(
                f'<figure><img src="{src}" alt="{esc(block[2])}"><figcaption>{esc(block[2])} '
                f'(<a href="{esc(block[1][:-4])}.pdf">PDF</a>)</figcaption></figure>'
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
