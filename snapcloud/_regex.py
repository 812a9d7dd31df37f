"""Linear-time regular expressions for every pattern that meets user input.

Python's ``re`` backtracks: a label matcher such as ``host=~(a+)+$`` takes time
exponential in the label's length, and ``[ \\t]+x$`` searched over a CSV cell of
spaces takes quadratic time. RE2 (``google-re2``) runs in time linear in the input
whatever the pattern; it is also the syntax Prometheus label matchers use. It has
no backreferences or lookaround, so patterns that need them are not compiled here
(and are never given user input). Compile errors raise ``re2.error``.
"""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["RegexError", "compile_linear"]

RegexError = re2.error

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each syntax error to stderr itself


def compile_linear(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (``search``, ``fullmatch``, ``sub``, ``findall`` as in
    ``re``). Raises ``RegexError`` for a pattern RE2 does not accept."""
    return re2.compile(pattern, options=_OPTIONS)
