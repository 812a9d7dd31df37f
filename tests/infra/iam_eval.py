"""A small, strict IAM policy evaluator for the policies in infra/terraform/policies.

It follows AWS's documented evaluation logic for one account: an explicit Deny in any
policy wins, else an Allow in an identity or resource policy allows, else the request is
denied. Actions and resources match with IAM wildcards (``*`` any run of characters,
``/`` included; ``?`` one character), actions case-insensitively. Policy variables
(``${aws:PrincipalTag/snapcloud-host}``) are replaced from the request context; a
statement whose variable the context lacks does not match. Condition operators: the
String, Numeric, Bool, Arn and Null families with ``IfExists``; several keys in one
operator must all hold, several values of one key are alternatives (for negated
operators none may hold, and a missing key satisfies them). Anything else (an
unknown operator, ``NotPrincipal``, a ``ForAllValues:`` set operator) raises, so a
policy this evaluator cannot judge fails the test instead of passing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Policy = dict[str, Any]
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Request:
    """One API call: action, resource ARN, the caller's ARN and the condition keys it carries."""

    action: str
    resource: str
    principal: str = "arn:aws:iam::111122223333:role/caller"
    context: dict[str, str] = field(default_factory=dict)


class Unsupported(ValueError):
    """A policy element this evaluator does not implement."""


def _as_list(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else [value]


def _wildcard(pattern: str, text: str, *, fold: bool = False) -> bool:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if fold else 0) is not None


def _substitute(text: str, context: dict[str, str]) -> str | None:
    """``text`` with its policy variables replaced, or None when the context lacks one."""
    missing = False

    def value(m: re.Match[str]) -> str:
        nonlocal missing
        if m.group(1) not in context:
            missing = True
            return ""
        return context[m.group(1)]

    out = _VARIABLE.sub(value, text)
    return None if missing else out


def _matches_any(patterns: list[str], text: str, context: dict[str, str], fold: bool) -> bool:
    for p in patterns:
        concrete = _substitute(p, context)
        if concrete is not None and _wildcard(concrete, text, fold=fold):
            return True
    return False


def _test(op: str, expected: str, actual: str) -> bool:
    if op in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if op in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if op in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike"):
        return _wildcard(expected, actual)
    if op in ("ArnEquals", "ArnNotEquals"):
        return actual == expected
    if op == "Bool":
        return actual.lower() == expected.lower()
    numeric = {
        "NumericEquals": float.__eq__,
        "NumericLessThan": float.__lt__,
        "NumericLessThanEquals": float.__le__,
        "NumericGreaterThan": float.__gt__,
        "NumericGreaterThanEquals": float.__ge__,
    }
    if op in numeric:
        return bool(numeric[op](float(actual), float(expected)))
    raise Unsupported(f"condition operator {op}")


def _condition_holds(op: str, key: str, values: list[str], ctx: dict[str, str]) -> bool:
    if ":" in op and op.split(":", 1)[0] in ("ForAllValues", "ForAnyValue"):
        raise Unsupported(f"set operator {op}")
    if op == "Null":
        [want] = values
        return (key not in ctx) == (want.lower() == "true")
    if_exists = op.endswith("IfExists")
    base = op.removesuffix("IfExists")
    negated = "Not" in base
    if key not in ctx:
        return if_exists or negated
    expected = [v for v in (_substitute(v, ctx) for v in values) if v is not None]
    hits = any(_test(base, v, ctx[key]) for v in expected)
    return not hits if negated else hits


def _conditions_hold(block: dict[str, dict[str, Any]], ctx: dict[str, str]) -> bool:
    return all(
        _condition_holds(op, key, _as_list(values), ctx)
        for op, keys in block.items()
        for key, values in keys.items()
    )


def _principal_matches(st: dict[str, Any], principal: str) -> bool:
    if "NotPrincipal" in st:
        raise Unsupported("NotPrincipal")
    who = st.get("Principal")
    if who is None:  # an identity policy: its own principal
        return True
    if who == "*":
        return True
    return any(_wildcard(p, principal) for kind in who.values() for p in _as_list(kind))


def _statement_matches(st: dict[str, Any], req: Request) -> bool:
    if "NotAction" in st or "NotResource" in st:
        raise Unsupported("NotAction / NotResource")
    ctx = dict(req.context)
    return (
        _principal_matches(st, req.principal)
        and _matches_any(_as_list(st["Action"]), req.action, ctx, fold=True)
        and _matches_any(_as_list(st.get("Resource", "*")), req.resource, ctx, fold=False)
        and _conditions_hold(st.get("Condition", {}), ctx)
    )


def decide(req: Request, *policies: Policy) -> str:
    """``"allow"``, ``"deny"`` (an explicit Deny matched) or ``"implicit"`` (nothing allowed)."""
    effects = {
        st["Effect"] for doc in policies for st in doc["Statement"] if _statement_matches(st, req)
    }
    if "Deny" in effects:
        return "deny"
    return "allow" if "Allow" in effects else "implicit"


def allowed(req: Request, *policies: Policy) -> bool:
    """Whether AWS would allow ``req`` under ``policies`` (identity and resource policies)."""
    return decide(req, *policies) == "allow"
