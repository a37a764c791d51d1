"""Event bodies as Graph keeps and shows them: stored as written (text or html), read as HTML by default.

Graph stores a body in the type it was written in. Reads return HTML unless the request says
``Prefer: outlook.body-content-type="text"`` (then text, with ``Preference-Applied`` echoed)
(https://learn.microsoft.com/graph/api/event-get, "Request headers"). A text body read as HTML is
Exchange's conversion of it: a fixed head, then the text escaped inside ``<div class="PlainText">``,
each line break as ``<br>`` plus CRLF, leading spaces and all but the last space of a run as
``&nbsp;``, and ``&nbsp;`` alone for an empty text (shapes from real Graph answers in public code).
The answer to the POST/PATCH that wrote a text body still says ``text`` (microsoftgraph/
microsoft-graph-docs issue 8215: "created with TEXT … fetched immediately after, HTML").
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

EXCHANGE_HEAD = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n'
    '<meta name="Generator" content="Microsoft Exchange Server">\r\n<!-- converted from text -->\r\n'
    "<style><!-- .EmailQuote { margin-left: 1pt; padding-left: 4pt; border-left: #800000 2px solid; } "
    "--></style></head>\r\n<body>\r\n"
    '<font size="2"><span style="font-size:11pt;"><div class="PlainText">'
)
EXCHANGE_TAIL = "</div></span></font>\r\n</body>\r\n</html>\r\n"
_RUN = re.compile(r"^ +| {2,}")
_BLOCKS = frozenset({"blockquote", "div", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p", "pre",
                     "table", "tr", "ul"})
_HIDDEN = frozenset({"head", "script", "style", "title"})


def stored_body(value: dict[str, Any]) -> dict[str, str]:
    """What a written itemBody is kept as (contentType lower-cased, content a string)."""
    kind = str(value.get("contentType") or "html").lower()
    return {"contentType": kind, "content": str(value.get("content") or "")}


def render_body(stored: dict[str, str], *, want_text: bool, written: bool = False) -> dict[str, str]:
    """The body of an answer: text when asked for (or echoing a text write), else HTML."""
    kind, content = stored["contentType"], stored["content"]
    if kind == "text":
        if want_text or written:
            return {"contentType": "text", "content": content}
        return {"contentType": "html", "content": exchange_html(content)}
    if want_text:
        return {"contentType": "text", "content": html_text(content)}
    return {"contentType": "html", "content": content}


def preview(stored: dict[str, str]) -> str:
    """bodyPreview: the first 255 characters of the body's text, on one line."""
    return _preview(stored["contentType"], stored["content"])


@lru_cache(maxsize=2048)
def _preview(content_type: str, content: str) -> str:
    # Every rendering of an item (each occurrence of a series in a delta round too) parsed its HTML
    # body again; the preview is a pure function of the body, so it is kept for bodies seen lately.
    plain = content if content_type == "text" else html_text(content)
    return " ".join(plain.split())[:255]


def exchange_html(text: str) -> str:
    """Exchange's HTML for a text body (a tab is kept like a space; Graph does not document tabs)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n")
    inner = "<br>\r\n".join(_RUN.sub(_spaces, html.escape(line, quote=False)) for line in lines)
    return EXCHANGE_HEAD + (inner or "&nbsp;") + EXCHANGE_TAIL


def _spaces(match: re.Match[str]) -> str:
    n = len(match.group())
    return "&nbsp;" * n if match.start() == 0 else "&nbsp;" * (n - 1) + " "


def html_text(content: str) -> str:
    """The text of an HTML body, lines ending in CRLF as Exchange's text bodies do."""
    reader = _Text()
    reader.feed(content)
    reader.close()
    lines = [re.sub(" {2,}", " ", line).strip(" ").replace("\xa0", " ") for line in "".join(reader.out).split("\n")]
    return "\r\n".join(lines).strip("\r\n")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0

    def _newline(self, always: bool) -> None:
        if always or (self.out and not self.out[-1].endswith("\n")):
            self.out.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif not self.hidden and (tag == "br" or tag in _BLOCKS):
            self._newline(tag == "br")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif not self.hidden and tag in _BLOCKS:
            self._newline(False)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.append(re.sub(r"[ \t\r\n\f]+", " ", data))
