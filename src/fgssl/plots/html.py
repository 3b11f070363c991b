"""Self-contained HTML pages: sections of text, tables and PNG figures embedded as base64,
with inline CSS and no script, so a page opens from disk with no server and no network."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from fgssl.atomic import write_text_atomically

__all__ = ["HtmlPage", "Section", "figure_png"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.note { color: #666; font-size: 0.9em; } nav a { margin-right: 1em; }
"""


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    """The PNG bytes of a matplotlib figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


@dataclass
class Section:
    """One section of a page: a title, an id (its anchor) and HTML blocks."""

    title: str
    id: str
    blocks: list[str] = field(default_factory=list)

    def text(self, text: str, *, note: bool = False) -> Section:
        """A paragraph of plain text (escaped)."""
        css = ' class="note"' if note else ""
        self.blocks.append(f"<p{css}>{html.escape(text)}</p>")
        return self

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[object]], caption: str = ""
    ) -> Section:
        """A table of plain-text cells (escaped); ``None`` cells read ``null``."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(
            f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
        return self

    def image(self, png: bytes | str | os.PathLike[str], alt: str) -> Section:
        """A PNG (bytes or a file) embedded as a base64 data URI."""
        data = png if isinstance(png, bytes) else Path(png).read_bytes()
        source = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        self.blocks.append(f'<p><img alt="{html.escape(alt, quote=True)}" src="{source}"></p>')
        return self

    def pre(self, text: str) -> Section:
        """Preformatted text (escaped), e.g. a YAML config."""
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")
        return self


def _cell(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "null" if value != value else f"{value:.4f}"
    return str(value)


@dataclass
class HtmlPage:
    """A page: a title, an optional subtitle and its sections, in order."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, id: str) -> Section:
        """Add a section (``id``: its anchor, unique in the page) and return it."""
        if any(s.id == id for s in self.sections):
            raise ValueError(f"a section with id {id!r} exists already")
        self.sections.append(Section(title, id))
        return self.sections[-1]

    def render(self) -> str:
        """The whole page as one HTML5 string (ASCII: other characters as references)."""
        nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in self.sections)
        body = "\n".join(
            f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>\n'
            + "\n".join(s.blocks)
            + "</section>"
            for s in self.sections
        )
        subtitle = f'<p class="note">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            (
                '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>\n"
                f"<body><h1>{html.escape(self.title)}</h1>{subtitle}<nav>{nav}</nav>\n{body}\n"
                "</body></html>\n"
            )
            .encode("ascii", "xmlcharrefreplace")
            .decode("ascii")
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the page (atomically) to ``path``."""
        return write_text_atomically(Path(path), self.render())
