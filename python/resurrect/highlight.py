"""A small syntax highlighter for the prompt's source listings: ANSI colours
from the standard library's :mod:`tokenize`, no dependencies.

A window of a file is tokenized from a statement boundary (a function's first
line), never the whole file, so a long file costs no more than a short one.
"""

from __future__ import annotations

import builtins
import io
import keyword
import token
import tokenize

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
BLUE = "\x1b[34m"
MAGENTA = "\x1b[35m"
CYAN = "\x1b[36m"
GREY = "\x1b[90m"

_KEYWORD = BOLD + MAGENTA
_CONSTANT = MAGENTA
_STRING = GREEN
_NUMBER = CYAN
_COMMENT = GREY
_BUILTIN = CYAN
_DEFINITION = BOLD + YELLOW

_CONSTANTS = frozenset({"True", "False", "None"})
_BUILTINS = frozenset(name for name in dir(builtins) if not name.startswith("_"))
# f-strings are split into parts on 3.12+; older versions have a single STRING.
_STRING_PARTS = frozenset(
    getattr(token, name)
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(token, name)
)

_cache: dict[tuple[str, int, int], tuple[int, list[str]]] = {}


def highlight_window(filename: str, lines: list[str], start: int, last: int) -> list[str]:
    """Lines ``start..last`` (1-based, inclusive) of ``lines`` (the text of
    ``filename``) coloured, without line ends. ``start`` must begin a statement
    (e.g. a function's first line), so that tokenizing from there is exact;
    only that window is tokenized, however long the file. Cached."""
    start = max(1, start)
    last = min(len(lines), last)
    window = lines[start - 1 : last]
    key = (filename, start, last)
    digest = hash(tuple(window))
    cached = _cache.get(key)
    if cached is not None and cached[0] == digest:
        return cached[1]
    out = highlight("".join(line if line.endswith("\n") else line + "\n" for line in window))
    if len(_cache) > 256:
        _cache.clear()
    _cache[key] = (digest, out)
    return out


def highlight(source: str) -> list[str]:
    """The lines of ``source`` with ANSI colours, without line ends. Source
    that does not tokenize to the end is coloured as far as it does."""
    lines = source.splitlines()
    spans: list[list[tuple[int, int, str]]] = [[] for _ in lines]
    previous = ""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            style = _style(tok, previous)
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                previous = tok.string
            if style is None:
                continue
            (srow, scol), (erow, ecol) = tok.start, tok.end
            for row in range(srow, erow + 1):
                if row - 1 >= len(lines):
                    break
                start = scol if row == srow else 0
                end = ecol if row == erow else len(lines[row - 1])
                if end > start:
                    spans[row - 1].append((start, end, style))
    except (tokenize.TokenError, SyntaxError):
        pass
    return [_paint(line, line_spans) for line, line_spans in zip(lines, spans, strict=True)]


def _style(tok: tokenize.TokenInfo, previous: str) -> str | None:
    kind, text = tok.type, tok.string
    if kind == tokenize.NAME:
        if text in _CONSTANTS:
            return _CONSTANT
        if keyword.iskeyword(text):
            return _KEYWORD
        if previous in ("def", "class"):
            return _DEFINITION
        if text in _BUILTINS and previous != ".":
            return _BUILTIN
        return None
    if kind == tokenize.STRING or kind in _STRING_PARTS:
        return _STRING
    if kind == tokenize.NUMBER:
        return _NUMBER
    if kind == tokenize.COMMENT:
        return _COMMENT
    return None


def _paint(line: str, spans: list[tuple[int, int, str]]) -> str:
    if not spans:
        return line
    parts: list[str] = []
    pos = 0
    for start, end, style in sorted(spans):
        if start < pos:
            continue  # overlapping (f-string pieces): the first one wins
        parts.append(line[pos:start])
        parts.append(style + line[start:end] + RESET)
        pos = end
    parts.append(line[pos:])
    return "".join(parts)
