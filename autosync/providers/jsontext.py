"""JSON decoding for provider bodies nested deeper than Python's parser can follow."""

from __future__ import annotations

import json
import re
from typing import Any

# Deeper than any real Google or Graph answer (under ten levels) and than what autosync can store
# (orjson stops at 254), yet far below the interpreter's recursion limit, which the C parser shares.
MAX_DEPTH = 300
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def loads_bounded(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text in which arrays/objects may nest without bound.

    Python's parser raises RecursionError on a few hundred levels (a hostile or broken provider item),
    which would fail the whole page. Here every array/object that opens deeper than ``max_depth``
    becomes ``null``: the page parses, and the item that held it is still too deep to be stored, so
    it is skipped and recorded while the rest of the page syncs. Strings are stepped over whole.
    """
    pieces: list[str] = []
    depth, kept_to, cut_at = 0, 0, -1
    for token in _TOKEN.finditer(text):
        char = token.group()[0]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            if depth == max_depth + 1:
                pieces.append(text[kept_to:token.start()])
                cut_at = token.start()
        else:
            if depth == max_depth + 1 and cut_at >= 0:
                pieces.append("null")
                kept_to, cut_at = token.end(), -1
            depth -= 1
    pieces.append(text[kept_to:] if cut_at < 0 else text[kept_to:cut_at])
    return json.loads("".join(pieces))
