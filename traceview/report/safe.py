"""Make trace strings safe to print: kernel names, NVTX labels, paths and versions come from
the file and may hold terminal escape sequences, bidi overrides or megabytes of text.

``printable`` shows control characters as visible escapes (``\\x1b``), folds line breaks
and tabs into spaces and caps the length. Rich markup is never interpreted because the
terminal report wraps every string in ``rich.text.Text``; Markdown escaping is
``traceview.report.markdown.md_escape``, which calls ``printable`` first.
"""

from __future__ import annotations

import re
from typing import Any

MAX_CHARS = 2000  # longer trace strings are cut in text/Markdown output (JSON keeps them whole)

_SPACES = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")
# C0/C1 controls, DEL, and the Unicode bidi/format controls used for "trojan source" tricks.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any, limit: int | None = MAX_CHARS) -> str:
    """``value`` as one line of visible characters, at most ``limit`` characters plus a note."""
    text = _CONTROLS.sub(_escape, _SPACES.sub(" ", str(value)))
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return text
