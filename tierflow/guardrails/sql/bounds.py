"""How large a value, and how many recursive rows, a query can make the database build.

An allowlisted function can still be a denial of service through its arguments:
`printf('%.*c', 400000000, 'x')` allocates 400 MB, `replace` nested in itself grows a
value exponentially, so does `x || x` through a chain of derived tables, and a recursive
CTE runs until memory runs out. So every expression gets an upper bound on the size of
its value, `data * (the longest stored value) + const bytes`, computed bottom-up through
functions, subqueries, derived tables and CTEs:

- size and width arguments are literals within limits: printf/format widths and
  precisions (`*` is refused), zeroblob/randomblob/repeat/lpad/rpad/space sizes;
  printf's format is a string literal; `replace` replaces with a constant;
- no call has more than `MAX_ARGUMENTS` arguments (`char(…)`, `concat(…)`);
- no value can exceed `MAX_VALUE_BYTES` bytes of constant-built text, nor
  `MAX_GROWTH` times the longest stored value;
- a recursive CTE stops: it has its own `LIMIT n` (n <= `MAX_RECURSION_ROWS`), or the
  outermost query only streams it (`SELECT … FROM r LIMIT n`, nothing that reads it
  whole), and no column of it grows faster than linearly from one row to the next.

What an aggregate builds from many rows (`group_concat` of a large table, a cartesian
join) scales with the data read: that is outside these bounds, as it is for the guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from tierflow.guardrails.sql.functions import function_key, function_label
from tierflow.guardrails.sql.scope import ScopeCheck, Source, select_alias, visible_scopes

MAX_WIDTH = 100  # a printf/format width or precision
MAX_ARGUMENTS = 100  # arguments of one function call
MAX_VALUE_BYTES = 1_000_000  # bytes of a value built from constants
MAX_GROWTH = 100  # times the longest stored value
MAX_RECURSION_ROWS = 10_000  # rows a recursive CTE may produce

_NUMBER = 32.0  # bytes of a number as text (a double prints in at most ~25)

# One printf conversion: %[n$][flags][width][.precision][length]type
_CONVERSION = re.compile(
    r"%(\d+\$)?([-+ 0#,!]*)(\*(?:\d+\$)?|\d+)?(?:\.(\*|\d*))?(l{0,2})(.?)", re.S
)
_PRINTF_TYPES = frozenset("diuxXopnrfeEgGsczqQwIL%")

# Functions whose value is a number or a short fixed-size string, whatever the input.
_SMALL = frozenset(
    {
        "count", "sum", "avg", "length", "strposition", "abs", "round", "ceil", "floor",
        "sign", "sqrt", "pow", "exp", "ln", "log", "rownumber", "rank", "denserank",
        "percentrank", "cumedist", "ntile", "typeof", "unicode", "anonymous:total",
        "anonymous:julianday", "anonymous:unixepoch", "anonymous:date", "date",
        "anonymous:time", "anonymous:datetime", "anonymous:now", "currentdate",
        "currenttime", "currenttimestamp", "datetrunc", "extract",
    }
)  # fmt: skip
# Functions whose value is one of their arguments, or no longer than the longest.
_ONE_OF = frozenset(
    {
        "coalesce", "nullif", "if", "case", "least", "greatest", "max", "min", "lag",
        "lead", "firstvalue", "lastvalue", "nthvalue", "trim", "upper", "lower",
        "substring", "cast", "trycast", "unhex", "collate",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Size:
    """An upper bound on a value's length: `data` times the longest stored value, plus
    `const` bytes, plus `step` times the previous row's value (a recursive CTE's step)."""

    data: float = 0.0
    const: float = 0.0
    step: float = 0.0

    def __add__(self, other: Size) -> Size:
        return Size(self.data + other.data, self.const + other.const, self.step + other.step)

    def times(self, factor: float) -> Size:
        return Size(self.data * factor, self.const * factor, self.step * factor)

    def most(self, other: Size) -> Size:
        return Size(
            max(self.data, other.data), max(self.const, other.const), max(self.step, other.step)
        )

    @property
    def too_large(self) -> bool:
        return self.data > MAX_GROWTH or self.const > MAX_VALUE_BYTES


# Operators whose value is a number or a truth value, whatever their operands.
_NUMERIC = (
    exp.Predicate, exp.Connector, exp.Not, exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div,
    exp.IntDiv, exp.Mod, exp.Pow, exp.Xor, exp.Escape, exp.BitwiseAnd, exp.BitwiseOr,
    exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift,
)  # fmt: skip

_STORED = Size(data=1.0)
_SHORT = Size(const=_NUMBER)


def _total(sizes: Iterable[Size]) -> Size:
    result = Size()
    for size in sizes:
        result = result + size
    return result


def _largest(sizes: Iterable[Size]) -> Size:
    result = Size()
    for size in sizes:
        result = result.most(size)
    return result


@dataclass
class BoundsCheck:
    scopes: ScopeCheck
    allow_recursive: bool
    problems: list[str] = field(default_factory=list)
    _sizes: dict[int, Size] = field(default_factory=dict)
    _outputs: dict[int, list[Size]] = field(default_factory=dict)
    _scope_of: dict[int, Scope] = field(default_factory=dict)

    def run(self, root: exp.Query) -> list[str]:
        for scope in self.scopes.scopes:  # inner scopes first
            self._scope_of[id(scope.expression)] = scope
            self._output_sizes(scope)
            for node in scope.walk():  # values built outside the select list count too
                if isinstance(node, exp.Func):
                    self._check_call(node)
                    self._size(scope, node)
                elif isinstance(node, exp.DPipe):
                    self._size(scope, node)
            if isinstance(scope.expression, exp.SetOperation) and _is_recursive(scope):
                self._check_recursion(root, scope)
        return self.problems

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    # Arguments.

    def _check_call(self, node: exp.Func) -> None:
        arguments = _arguments(node)
        if len(arguments) > MAX_ARGUMENTS:
            self._problem(
                f"{self._label(node)}(…) has {len(arguments)} arguments; at most {MAX_ARGUMENTS} "
                f"are allowed"
            )

    def _label(self, node: exp.Func) -> str:
        return function_label(node, self.scopes.dialect)

    # Sizes.

    def _output_sizes(self, scope: Scope) -> list[Size]:
        key = id(scope)
        if key in self._outputs:
            return self._outputs[key]
        self._outputs[key] = []  # a query reading itself (recursive CTE) sees this
        query = scope.expression
        sizes: list[Size] = []
        if isinstance(query, exp.Values):
            rows = [
                row.expressions if isinstance(row, exp.Tuple) else [row]
                for row in query.expressions
            ]
            width = max((len(row) for row in rows), default=0)
            sizes = [
                _largest(self._size(scope, row[i]) for row in rows if i < len(row))
                for i in range(width)
            ]
        elif isinstance(query, exp.SetOperation) and scope.set_operation_scopes:
            branches = [self._output_sizes(branch) for branch in scope.set_operation_scopes]
            width = max((len(branch) for branch in branches), default=0)
            sizes = [
                _largest(branch[i] for branch in branches if i < len(branch)) for i in range(width)
            ]
        elif isinstance(query, exp.Select):
            sources = self.scopes.sources_of(scope)
            for projection in query.selects:
                if isinstance(projection, exp.Star) or (
                    isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
                ):
                    qualifier = (
                        projection.table.lower() if isinstance(projection, exp.Column) else ""
                    )
                    for name, source in sources.items():
                        if not qualifier or name == qualifier:
                            sizes.extend(self._source_size(source, c) for c in source.columns)
                else:
                    sizes.append(self._size(scope, projection))
        self._outputs[key] = sizes
        return sizes

    def _source_size(self, source: Source, column: str) -> Size:
        if source.recursive:
            return Size(step=1.0)
        if source.scope is None or column not in source.columns:
            return _STORED
        sizes = self._output_sizes(source.scope)
        index = source.columns.index(column)
        return sizes[index] if index < len(sizes) else _STORED

    def _column_size(self, scope: Scope, column: exp.Column) -> Size:
        name = column.name.lower()
        qualifier = column.table.lower()
        for current in visible_scopes(scope):
            sources = self.scopes.sources_of(current)
            if qualifier:
                if qualifier in sources:
                    return self._source_size(sources[qualifier], name)
                continue
            found = [self._source_size(s, name) for s in sources.values() if name in s.columns]
            if found:
                return _largest(found)
            alias = select_alias(current.expression, name)
            if alias is not None:
                return self._size(current, alias.this)
        return _STORED  # an unknown column: the scope check refuses it

    def _size(self, scope: Scope, node: exp.Expr) -> Size:
        key = id(node)
        if key not in self._sizes:
            self._sizes[key] = Size()  # re-entry (it can't happen in a tree) reads nothing
            size = self._compute(scope, node)
            builds = not isinstance(node, exp.Column | exp.Query | exp.Subquery)
            if (
                builds
                and size.too_large
                and not any(
                    self._sizes.get(id(child), Size()).too_large
                    for child in node.iter_expressions()
                )
            ):
                self._too_large(node, size)
            self._sizes[key] = size
        return self._sizes[key]

    def _too_large(self, node: exp.Expr, size: Size) -> None:
        what = node.sql(dialect=self.scopes.dialect)
        what = what if len(what) <= 60 else what[:59] + "…"
        if size.const > MAX_VALUE_BYTES:
            self._problem(
                f"`{what}` can build a value of more than {MAX_VALUE_BYTES:,} bytes: use "
                f"smaller sizes"
            )
        else:
            self._problem(
                f"`{what}` can build a value more than {MAX_GROWTH} times as long as the "
                f"stored values: nest fewer growing functions"
            )

    def _compute(self, scope: Scope, node: exp.Expr) -> Size:
        if isinstance(node, exp.Literal):
            return Size(const=float(len(str(node.this).encode())))
        if isinstance(node, exp.Column):
            return self._column_size(scope, node) if not isinstance(node.this, exp.Star) else Size()
        if isinstance(node, exp.Query):
            inner = self._scope_of.get(id(node))
            outputs = self._output_sizes(inner) if inner is not None else []
            return outputs[0] if outputs else Size()
        if isinstance(node, exp.Subquery):
            return self._size(scope, node.this)
        if isinstance(node, exp.DPipe):
            return self._size(scope, node.left) + self._size(scope, node.right)
        if isinstance(node, exp.Func):
            return self._call(scope, node)
        children = list(node.iter_expressions())
        if isinstance(node, _NUMERIC):
            for child in children:
                self._size(scope, child)
            return _SHORT
        if not children:  # a blob literal, a parameter, a keyword
            return Size(const=float(len(node.sql(dialect=self.scopes.dialect).encode())))
        # Anything else passes one of its parts through (parentheses, aliases, COLLATE …).
        return _largest(self._size(scope, child) for child in children)

    def _call(self, scope: Scope, node: exp.Func) -> Size:
        key = function_key(node)
        args = _arguments(node)
        sizes = [self._size(scope, arg) for arg in args]
        if key in ("anonymous:printf", "format"):
            return self._printf(node, args, sizes)
        if key == "replace":
            return self._replace(node, sizes)
        if key in ("anonymous:zeroblob", "anonymous:randomblob", "space"):
            return Size(const=self._count(node, args[0] if args else None))
        if key == "repeat":
            return sizes[0].times(self._count(node, node.args.get("times")))
        if key == "pad":
            return Size(const=4.0 * self._count(node, node.args.get("expression")))
        if key == "hex":
            return _total(sizes).times(2.0)
        if key == "anonymous:quote":
            return _total(sizes).times(2.0) + Size(const=3.0)
        if key == "chr":
            return Size(const=4.0 * len(args))
        if key in ("timetostr", "anonymous:strftime"):
            return (sizes[0] if sizes else Size()).times(10.0) + _SHORT
        if key in _SMALL:
            return _SHORT
        if key in _ONE_OF or isinstance(node, exp.Case | exp.Cast | exp.Window | exp.Filter):
            return _largest(sizes)
        # concat, concat_ws, group_concat, and any function added to the allowlist:
        # no longer than all its arguments together.
        return _total(sizes) + _SHORT

    def _count(self, node: exp.Func, argument: exp.Expr | None) -> float:
        """A size argument: an integer literal, at most MAX_VALUE_BYTES."""
        value = _literal_int(argument) if argument is not None else None
        if value is None or not 0 <= value <= MAX_VALUE_BYTES:
            self._problem(
                f"{self._label(node)}'s size must be a number from 0 to {MAX_VALUE_BYTES:,}, "
                f"written as a literal"
            )
            return 0.0
        return float(value)

    def _replace(self, node: exp.Func, sizes: list[Size]) -> Size:
        if len(sizes) < 3:
            return _largest(sizes)
        pattern = node.args.get("expression")
        replacement = sizes[2]
        if replacement.data or replacement.step:
            self._problem(
                f"{self._label(node)}'s replacement must be a constant (a column or a computed "
                f"value can grow the text without bound)"
            )
            return sizes[0]
        # Each occurrence of the pattern, at least one byte long, becomes the replacement.
        shortest = len(str(pattern.this).encode()) if isinstance(pattern, exp.Literal) else 1
        return sizes[0].times(max(1.0, replacement.const / max(shortest, 1)))

    def _printf(self, node: exp.Func, args: list[exp.Expr], sizes: list[Size]) -> Size:
        name = self._label(node)
        form = args[0] if args else None
        if not (isinstance(form, exp.Literal) and form.is_string):
            self._problem(f"{name}'s format must be a string literal")
            return _total(sizes)
        text = str(form.this)
        total = Size(const=float(len(text.encode())))
        values = iter(sizes[1:])
        for match in _CONVERSION.finditer(text):
            _, _, width, precision, _, kind = match.groups()
            if not kind:
                continue
            if kind not in _PRINTF_TYPES:
                self._problem(f"{name}: the conversion %{kind} is not supported")
                continue
            if "*" in (width or "") or "*" in (precision or ""):
                self._problem(
                    f"{name}: a width or precision given as an argument (*) is not allowed; "
                    f"write it as a number up to {MAX_WIDTH}"
                )
                continue
            pad = max(int(width or 0), int(precision or 0))
            if pad > MAX_WIDTH:
                self._problem(f"{name}: width and precision must be at most {MAX_WIDTH}, not {pad}")
                continue
            if kind == "%":
                continue
            value = next(values, Size())
            if kind in "sz":
                total = total + value + Size(const=pad)
            elif kind in "qQwIL":
                total = total + value.times(2.0) + Size(const=pad + 2.0)
            elif kind == "c":
                total = total + Size(const=4.0 * max(1, pad))
            else:  # a number: at most ~310 digits for %f of a huge double
                total = total + Size(const=350.0 + pad)
        return total

    # Recursion.

    def _check_recursion(self, root: exp.Query, scope: Scope) -> None:
        union = scope.expression
        assert isinstance(union, exp.SetOperation)
        cte = union.parent
        name = cte.alias_or_name.lower() if isinstance(cte, exp.CTE) else "?"
        if not self.allow_recursive:
            return  # refused as a whole by the guard
        rows = _recursion_rows(root, union, name)
        if rows is None:
            self._problem(
                f"the recursive CTE {name} must stop within {MAX_RECURSION_ROWS:,} rows: add "
                f"LIMIT n inside it (WITH RECURSIVE {name} AS (… LIMIT n))"
            )
            return
        branches = [self._output_sizes(branch) for branch in scope.set_operation_scopes]
        anchor = branches[0] if branches else []
        steps = [size for branch in branches[1:] for size in branch]
        if any(size.step > 1 for size in steps):
            self._problem(
                f"the recursive CTE {name} can double a value at every step: a row may "
                f"repeat the previous row's value at most once"
            )
            return
        # Each step adds at most its non-recursive part: after `rows` steps, this much.
        growth = _largest(Size(size.data, size.const) for size in steps).times(rows)
        final = [size + growth for size in anchor] or [growth]
        if any(size.too_large for size in final):
            self._problem(
                f"the recursive CTE {name} can build a value too large over {rows:,} rows: "
                f"lower its LIMIT"
            )
        self._outputs[id(scope)] = final


def _is_recursive(scope: Scope) -> bool:
    cte = scope.expression.parent
    return (
        isinstance(cte, exp.CTE)
        and isinstance(cte.parent, exp.With)
        and bool(cte.parent.args.get("recursive"))
        and any(
            table.name.lower() == cte.alias_or_name.lower()
            for table in scope.expression.find_all(exp.Table)
        )
    )


def _recursion_rows(root: exp.Query, union: exp.SetOperation, name: str) -> int | None:
    """How many rows a recursive CTE can produce: its own LIMIT, or the LIMIT of an
    outermost query that only streams it; None when nothing stops it."""
    own = _limit_of(union)
    if own is not None:
        return own if own <= MAX_RECURSION_ROWS else None
    if not isinstance(root, exp.Select):
        return None
    source = root.args.get("from_")
    readers = [
        table
        for table in root.find_all(exp.Table)
        if table.name.lower() == name and table.find_ancestor(exp.CTE) is None
    ]
    streams = (
        isinstance(source, exp.From)
        and readers == [source.this]
        and not root.args.get("joins")
        and not any(
            root.args.get(clause)
            for clause in ("where", "group", "having", "order", "distinct", "windows", "qualify")
        )
        and not any(p.find(exp.AggFunc, exp.Window) for p in root.selects)
    )
    outer = _limit_of(root)
    if not streams or outer is None:
        return None
    offset = root.args.get("offset")
    skipped = _literal_int(offset.expression) if isinstance(offset, exp.Offset) else 0
    if skipped is None:
        return None
    rows = outer + skipped
    return rows if rows <= MAX_RECURSION_ROWS else None


def _limit_of(query: exp.Query) -> int | None:
    limit = query.args.get("limit")
    if isinstance(limit, exp.Limit):
        return _literal_int(limit.expression)
    if isinstance(limit, exp.Fetch):
        count = limit.args.get("count")
        return _literal_int(count) if count is not None else None
    return None


def _arguments(node: exp.Func) -> list[exp.Expr]:
    args: list[exp.Expr] = []
    for value in node.args.values():
        if isinstance(value, exp.Expr):
            args.append(value)
        elif isinstance(value, list):
            args.extend(v for v in value if isinstance(v, exp.Expr))
    return args


def _literal_int(node: exp.Expr | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    if isinstance(node, exp.Neg):
        inner = _literal_int(node.this)
        return None if inner is None else -inner
    return None
