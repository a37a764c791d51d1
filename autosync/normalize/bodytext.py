"""Outlook event bodies and the app's plain-text description: what a person reads, in both directions.

The app stores descriptions as plain text. autosync writes them to Graph as ``contentType: "text"``,
so Outlook shows exactly those characters (sent as "html", ``<b>&amp;</b> & < >`` rendered as "& &"
and line breaks collapsed). Graph keeps a text body as text but, without a ``Prefer:
outlook.body-content-type`` header, always reads bodies back as HTML: Exchange wraps the text in a
``<div class="PlainText">`` with ``<br>`` line breaks, ``&nbsp;`` for runs of spaces and ``&nbsp;`` for
an empty body (https://learn.microsoft.com/graph/api/event-get "Request headers"; the write answer
still says "text" — microsoftgraph/microsoft-graph-docs issue 8215). autosync sends no such header:
the delta endpoint does not document it, and one conversion for every endpoint keeps a description
from flapping between two renderings. So every HTML body is read here, the way a browser lays it out,
and both a text body and Exchange's HTML of it come back as the same ``plain_text``.
"""

from __future__ import annotations

import functools
import re
from html import unescape

from autosync.normalize.common import as_dict, text

# Elements a browser lays out on lines of their own (a subset of HTML's block-level elements).
BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "tbody", "tfoot", "thead", "tr", "ul",
})
# HTML's collapsible white space; a no-break space (&nbsp;) is not among it.
_SPACES = re.compile(r"[ \t\n\r\f]+")


def description_of(body: object) -> str:
    """The plain text of a Graph itemBody ``{contentType: html|text, content}`` (HTML when unstated)."""
    obj = as_dict(body)
    content = text(obj.get("content"))
    if not content:
        return ""
    if text(obj.get("contentType")).lower() == "text":
        return plain_text(content)
    return _html_description(content) if len(content) <= CACHED_BODY else plain_text(html_to_text(content))


# Occurrences and exceptions from /instances repeat their series' body, often hundreds of times.
CACHED_BODY = 16_384


@functools.lru_cache(maxsize=256)
def _html_description(content: str) -> str:
    return plain_text(html_to_text(content))


def plain_text(value: str) -> str:
    """A description in the form both directions agree on, with nothing a reader could see changed.

    Line ends become ``\\n``, no-break spaces and tabs plain spaces (HTML shows a tab as one space),
    white space at the end of a line and blank lines at either end are dropped.
    """
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ").replace("\t", " ")
    lines = [line.rstrip(" \f\v") for line in value.split("\n")]
    first = next((i for i, line in enumerate(lines) if line), len(lines))
    while len(lines) > first and not lines[-1]:
        lines.pop()
    return "\n".join(lines[first:])


def html_to_text(html: str) -> str:
    """The text a browser shows for an HTML fragment or document: line breaks kept, markup and hidden parts gone.

    A small tokenizer rather than ``html.parser`` (every Outlook event is read through here; this is
    about four times faster on real bodies): only tags, comments, text and entities matter.
    """
    reader = _Reader()
    pos, size = 0, len(html)
    while pos < size:
        markup = _MARKUP.search(html, pos)
        if markup is None:
            reader.text(html[pos:])
            break
        if markup.start() > pos:
            reader.text(html[pos:markup.start()])
        pos = markup.end()
        name = markup.group(2)
        if name is None:  # a comment, doctype or processing instruction
            continue
        name = name.lower()
        if markup.group(1):
            reader.end(name)
        elif name in RAW_TEXT:  # its content is never shown: go on after its end tag
            close = RAW_TEXT[name].search(html, pos)
            pos = close.end() if close else size
        else:
            reader.start(name)
    return "".join(reader.out)


# Elements whose content is raw text that is never shown (no markup inside to read), and their end tags.
RAW_TEXT = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style", "template", "title")}
# A comment, doctype or processing instruction, or a start/end tag (quoted attribute values may hold
# ">"). Whatever lies between is text, including a "<" that starts no tag. No alternative looks past
# the next "<" (but a comment's), so a hostile body of unclosed tags or quotes still reads in linear time.
_MARKUP = re.compile(
    r"""<!--.*?(?:-->|\Z)|<![^<>]*>|<\?[^<>]*>|<(/?)([a-zA-Z][^\s/<>]*)(?:[^<>"']|"[^"<]*"|'[^'<]*')*>""",
    re.DOTALL,
)


class _Reader:
    """Collects visible text: collapses white space, breaks lines at <br> and around block elements."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.hidden = 0  # inside <head>
        self.pre = 0
        self.line_start = True
        self.space = False  # a collapsed space waits for the next visible text on the line

    def _break(self, always: bool = False) -> None:
        if always or not self.line_start:
            self.out.append("\n")
            self.line_start = True
        self.space = False

    def start(self, tag: str) -> None:
        """A start (or self-closing) tag."""
        if tag == "head":
            self.hidden += 1
        elif self.hidden:
            return
        elif tag == "br":
            self._break(always=True)
        elif tag in BLOCKS:
            self._break()
            self.pre += tag == "pre"
        elif tag in ("td", "th") and not self.line_start:
            self.space = True

    def end(self, tag: str) -> None:
        """An end tag."""
        if tag == "head":
            self.hidden = max(0, self.hidden - 1)
        elif not self.hidden and tag in BLOCKS:
            self._break()
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def text(self, data: str) -> None:
        """Text between tags (entities still encoded)."""
        if self.hidden:
            return
        if "&" in data:
            data = unescape(data)
        if self.pre:
            self.out.append(data)
            self.line_start = data.endswith("\n")
            return
        words = _SPACES.sub(" ", data)
        core = words.strip(" ")
        if not core:
            self.space = self.space or bool(words)
            return
        if (self.space or words[0] == " ") and not self.line_start:
            self.out.append(" ")
        self.out.append(core)
        self.line_start = False
        self.space = words[-1] == " "
