"""The SQL guard's function allowlist: SQL function names resolved through sqlglot.

sqlglot parses many functions into typed expressions (`substr` → `Substring`, `ifnull` →
`Coalesce`, `strftime` → `TimeToStr`), and the ones it doesn't know into `Anonymous`.
So an allowlist of *names* is compared as *expression keys*: each allowed name is parsed
in the guard's dialect once, and every function expression that name produces is
allowed. Functions sqlglot treats as the same expression are therefore allowed together
(allowing `ifnull` allows `coalesce`), which is what the same expression means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from tierflow.guardrails.reasons import clip

# Read-only, side-effect-free functions an analyst needs. Anything else — pg_sleep,
# sleep, benchmark, load_extension, readfile, writefile, randomblob, sqlite_version … —
# is refused unless the guard is given its own list.
DEFAULT_FUNCTIONS: frozenset[str] = frozenset(
    {
        # aggregates
        "count", "sum", "avg", "min", "max", "total", "group_concat", "string_agg",
        # strings
        "length", "lower", "upper", "substr", "substring", "trim", "ltrim", "rtrim",
        "replace", "instr", "printf", "format", "concat", "concat_ws", "coalesce",
        "ifnull", "nullif", "iif", "typeof", "char", "hex",
        # dates and times
        "date", "time", "datetime", "julianday", "strftime", "unixepoch", "date_trunc",
        "extract", "current_date", "current_time", "current_timestamp", "now",
        # math
        "abs", "round", "ceil", "ceiling", "floor", "sign", "sqrt", "power", "pow", "exp",
        "ln", "log", "log10", "greatest", "least",
        # window functions
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag",
        "lead", "first_value", "last_value", "nth_value",
    }
)  # fmt: skip

# Syntax, not functions: sqlglot models these as function expressions (AND/OR/XOR are
# `Connector`s), but they can't call anything.
ALWAYS_ALLOWED: tuple[type[exp.Expr], ...] = (
    exp.Cast,
    exp.TryCast,
    exp.Case,
    exp.Exists,
    exp.Connector,
    exp.Collate,
)


def function_key(node: exp.Func) -> str:
    """What the allowlist compares: the expression type, or the name of an unknown one."""
    if isinstance(node, exp.Anonymous):
        return f"anonymous:{node.name.lower()}"
    return node.key


_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\(")


def function_label(node: exp.Func, dialect: str) -> str:
    """The function as the model wrote it (close enough: its name in the dialect), or,
    for an operator sqlglot models as a function (`->`, `REGEXP`), the expression."""
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    try:
        rendered = node.sql(dialect=dialect)
    except SqlglotError:
        return node.key.upper()
    call = _CALL.match(rendered)
    if call:
        return call.group(1).upper()
    return f"{node.key.upper()} (in `{clip(rendered, 40)}`)"


@lru_cache(maxsize=64)
def _keys_of(name: str, dialect: str) -> frozenset[str]:
    keys: set[str] = set()
    # Arities 0 to 3, because some dialects build a different expression per arity
    # (sqlite's `min(a, b)` is `Least`).
    for args in ("", "a", "a, b", "a, b, c"):
        try:
            tree = sqlglot.parse_one(
                f"SELECT {name}({args})", read=dialect, error_level=ErrorLevel.IGNORE
            )
        except SqlglotError:
            continue
        keys.update(function_key(node) for node in tree.find_all(exp.Func))
    return frozenset(keys)


def allowed_keys(names: Iterable[str], dialect: str) -> frozenset[str]:
    """The expression keys the names stand for in `dialect`."""
    keys: set[str] = set()
    for name in names:
        keys |= _keys_of(name.strip().lower(), dialect)
    return frozenset(keys)
