"""PromQL parsed by ``promql-parser`` (a Rust parser), translated into the subset snapcloud
evaluates; anything else is refused with ``UnsupportedQuery`` naming the construct.

The subset: number literals, unary minus, parentheses, instant and range vector
selectors with ``=``, ``!=``, ``=~``, ``!~`` (RE2, fully anchored, ``.`` matching
newlines, as Prometheus), ``offset`` and ``@`` (a time, ``start()``, ``end()``);
the range functions in ``RANGE_FUNCTIONS``; the aggregations in ``AGGREGATIONS``
with ``by``/``without``; arithmetic (``+ - * / % ^``) between scalars, a vector and
a scalar, and two vectors with ``on``/``ignoring`` and ``group_left``/``group_right``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import promql_parser
import re2

from snapcloud.errors import UnsupportedQuery, ValidationError

__all__ = [
    "AGGREGATIONS",
    "ARITHMETIC",
    "RANGE_FUNCTIONS",
    "Aggregate",
    "At",
    "Binary",
    "Expr",
    "Function",
    "LabelMatch",
    "MatrixSelector",
    "Negate",
    "Number",
    "VectorSelector",
    "parse",
]

RANGE_FUNCTIONS = (
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "quantile_over_time",
    "stddev_over_time",
)
AGGREGATIONS = ("sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile")
ARITHMETIC = ("+", "-", "*", "/", "%", "^")
_NS = 10**9
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _ns(delta: timedelta | None) -> int:
    if delta is None:
        return 0
    return ((delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds) * 1000


@dataclass(frozen=True)
class LabelMatch:
    """One label matcher; a missing label has the value ``""`` (as in Prometheus)."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str
    regex: Any = field(default=None, compare=False, repr=False)

    def matches(self, value: str) -> bool:
        """Whether a label value satisfies the matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self.regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value!r}"


@dataclass(frozen=True)
class At:
    """An ``@`` modifier: a fixed time (ns), or the query's ``start()`` / ``end()``."""

    kind: Literal["at", "start", "end"]
    ns: int = 0


@dataclass(frozen=True)
class VectorSelector:
    """``name{matchers} offset o @ t``; ``matchers`` include the name as ``__name__``."""

    matchers: tuple[LabelMatch, ...]
    offset_ns: int = 0
    at: At | None = None
    text: str = ""


@dataclass(frozen=True)
class MatrixSelector:
    """``selector[range]``."""

    vector: VectorSelector
    range_ns: int
    text: str = ""


@dataclass(frozen=True)
class Number:
    """A number literal (or a constant the parser folded)."""

    value: float


@dataclass(frozen=True)
class Negate:
    """Unary minus."""

    expr: Expr


@dataclass(frozen=True)
class Function:
    """A range function call; ``param`` is ``quantile_over_time``'s scalar."""

    name: str
    arg: MatrixSelector
    param: Expr | None = None


@dataclass(frozen=True)
class Aggregate:
    """``op [by|without (labels)] ([param,] expr)``; ``without`` is None for ``by``."""

    op: str
    expr: Expr
    param: Expr | None
    labels: tuple[str, ...]
    without: bool


@dataclass(frozen=True)
class Binary:
    """Arithmetic; for two vectors, ``on`` (labels) or ``ignoring`` and the cardinality."""

    op: str
    lhs: Expr
    rhs: Expr
    on: bool = False
    labels: tuple[str, ...] = ()
    card: Literal["one-to-one", "many-to-one", "one-to-many"] = "one-to-one"
    include: tuple[str, ...] = ()


Expr = VectorSelector | MatrixSelector | Number | Negate | Function | Aggregate | Binary


def value_type(expr: Expr) -> Literal["scalar", "vector", "matrix"]:
    """What ``expr`` evaluates to."""
    if isinstance(expr, Number):
        return "scalar"
    if isinstance(expr, MatrixSelector):
        return "matrix"
    if isinstance(expr, Negate):
        return value_type(expr.expr)
    if isinstance(expr, Binary):
        if value_type(expr.lhs) == "scalar" and value_type(expr.rhs) == "scalar":
            return "scalar"
        return "vector"
    return "vector"


def parse(text: str) -> Expr:
    """Parse PromQL ``text`` into the supported subset.

    Raises ``ValidationError`` for text PromQL does not accept (the parser's message),
    ``UnsupportedQuery`` naming the construct snapcloud does not evaluate.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("empty query", field="query")
    try:
        tree = promql_parser.parse(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"parse error: {exc}", field="query") from None
    return _translate(tree)


def _unsupported(what: str) -> UnsupportedQuery:
    return UnsupportedQuery(
        f"{what} is not supported by snapcloud serve (see docs/SERVE.md for the PromQL "
        "subset it evaluates)",
        field="query",
    )


def _matcher(m: Any) -> LabelMatch:
    ops = promql_parser.MatchOp
    op: Literal["=", "!=", "=~", "!~"]
    if m.op == ops.Equal:
        op = "="
    elif m.op == ops.NotEqual:
        op = "!="
    elif m.op == ops.Re:
        op = "=~"
    else:
        op = "!~"
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re2.compile(f"^(?s:{m.value})$", _RE2_OPTIONS)
        except re2.error as exc:
            raise ValidationError(
                f"bad regular expression {m.value!r} for label {m.name!r}: {exc}", field="query"
            ) from None
    return LabelMatch(m.name, op, m.value, regex)


def _at(at: Any) -> At | None:
    if at is None:
        return None
    if at.type == promql_parser.AtModifierType.Start:
        return At("start")
    if at.type == promql_parser.AtModifierType.End:
        return At("end")
    when: datetime = at.at
    delta = when - datetime(1970, 1, 1, tzinfo=when.tzinfo)
    return At("at", _ns(delta))


def _vector(node: Any) -> VectorSelector:
    if node.matchers.or_matchers:
        raise _unsupported("'or' inside a selector's braces")
    matchers = [_matcher(m) for m in node.matchers.matchers]
    if node.name is not None:
        matchers.insert(0, LabelMatch("__name__", "=", node.name))
    if all(m.matches("") for m in matchers):
        raise ValidationError(
            f"vector selector {node} must contain at least one non-empty matcher",
            field="query",
        )
    return VectorSelector(tuple(matchers), _ns(node.offset), _at(node.at), str(node))


def _labels_of(modifier: Any) -> tuple[str, ...]:
    return tuple(modifier.labels) if modifier is not None else ()


def _translate(node: Any) -> Expr:
    if isinstance(node, promql_parser.NumberLiteral):
        return Number(float(node.val))
    if isinstance(node, promql_parser.ParenExpr):
        return _translate(node.expr)
    if isinstance(node, promql_parser.UnaryExpr):
        return Negate(_translate(node.expr))
    if isinstance(node, promql_parser.VectorSelector):
        return _vector(node)
    if isinstance(node, promql_parser.MatrixSelector):
        return MatrixSelector(_vector(node.vector_selector), _ns(node.range), str(node))
    if isinstance(node, promql_parser.Call):
        return _call(node)
    if isinstance(node, promql_parser.AggregateExpr):
        return _aggregate(node)
    if isinstance(node, promql_parser.BinaryExpr):
        return _binary(node)
    if isinstance(node, promql_parser.SubqueryExpr):
        raise _unsupported("a subquery")
    if isinstance(node, promql_parser.StringLiteral):
        raise _unsupported("a string literal")
    raise _unsupported(f"the expression {type(node).__name__}")


def _call(node: Any) -> Function:
    name = node.func.name
    if name not in RANGE_FUNCTIONS:
        raise _unsupported(f"function {name}()")
    args = list(node.args)
    param = _translate(args.pop(0)) if name == "quantile_over_time" else None
    if param is not None and value_type(param) != "scalar":
        raise _unsupported(f"a non-scalar parameter of {name}()")
    if len(args) != 1 or not isinstance(args[0], promql_parser.MatrixSelector):
        raise _unsupported(f"{name}() of anything but a range vector selector (a subquery?)")
    arg = _translate(args[0])
    assert isinstance(arg, MatrixSelector)
    return Function(name, arg, param)


def _aggregate(node: Any) -> Aggregate:
    op = str(node.op)
    if op not in AGGREGATIONS:
        raise _unsupported(f"aggregation {op}")
    param = None
    if op in ("topk", "bottomk", "quantile"):
        param = _translate(node.param)
        if value_type(param) != "scalar":
            raise _unsupported(f"a non-scalar parameter of {op}")
    mod = node.modifier
    without = mod is not None and mod.type == promql_parser.AggModifierType.Without
    return Aggregate(op, _translate(node.expr), param, _labels_of(mod), without)


def _binary(node: Any) -> Binary:
    op = str(node.op)
    if op not in ARITHMETIC:
        kind = "set operator" if op in ("and", "or", "unless") else "operator"
        raise _unsupported(f"{kind} {op!r}")
    lhs, rhs = _translate(node.lhs), _translate(node.rhs)
    mod = node.modifier
    if mod is None:
        return Binary(op, lhs, rhs)
    cards = promql_parser.VectorMatchCardinality
    card: Literal["one-to-one", "many-to-one", "one-to-many"]
    if mod.card == cards.OneToOne:
        card = "one-to-one"
    elif mod.card == cards.ManyToOne:
        card = "many-to-one"
    elif mod.card == cards.OneToMany:
        card = "one-to-many"
    else:
        raise _unsupported("many-to-many matching")
    matching = mod.matching
    on = matching is not None and matching.type == promql_parser.LabelModifierType.Include
    return Binary(
        op,
        lhs,
        rhs,
        on=on,
        labels=_labels_of(matching),
        card=card,
        include=tuple(mod.group_labels or ()),
    )


def selectors(expr: Expr) -> list[tuple[VectorSelector, int]]:
    """Every selector of ``expr`` with the range it reads back from each evaluation time
    (the matrix range; 0 for an instant selector: the lookback is added by the caller)."""
    out: list[tuple[VectorSelector, int]] = []

    def walk(e: Expr) -> None:
        if isinstance(e, VectorSelector):
            out.append((e, 0))
        elif isinstance(e, MatrixSelector):
            out.append((e.vector, e.range_ns))
        elif isinstance(e, Negate):
            walk(e.expr)
        elif isinstance(e, Function):
            walk(e.arg)
            if e.param is not None:
                walk(e.param)
        elif isinstance(e, Aggregate):
            walk(e.expr)
            if e.param is not None:
                walk(e.param)
        elif isinstance(e, Binary):
            walk(e.lhs)
            walk(e.rhs)

    walk(expr)
    return out
