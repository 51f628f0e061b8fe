"""How large a value, and how many recursive rows, a query can make the database build.

An allowlisted function can still be a denial of service through its arguments, so can
`x || x` through a chain of derived tables, and a recursive CTE runs until memory runs
out. So every expression gets an upper bound on the size of its value (`size.Size`:
`data * (the longest stored value) + const bytes`), computed bottom-up through
functions (`calls`), subqueries, derived tables and CTEs:

- no value can exceed `MAX_VALUE_BYTES` bytes of constant-built text, nor
  `MAX_GROWTH` times the longest stored value;
- a recursive CTE stops (`recursion`), and no column of it grows faster than linearly
  from one row to the next.

What an aggregate builds from many rows (`group_concat` of a large table, a cartesian
join) scales with the data read: that is outside these bounds, as it is for the guard.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from tierflow.guardrails.reasons import Problems, clip
from tierflow.guardrails.sql.aliases import select_alias
from tierflow.guardrails.sql.calls import CallSizes, arguments
from tierflow.guardrails.sql.recursion import MAX_RECURSION_ROWS, is_recursive, recursion_rows
from tierflow.guardrails.sql.scope import ScopeCheck
from tierflow.guardrails.sql.size import (
    MAX_GROWTH,
    MAX_VALUE_BYTES,
    SHORT,
    STORED,
    Size,
    largest,
)
from tierflow.guardrails.sql.sources import Source, star_of, star_sources, visible_scopes

# Operators whose value is a number or a truth value, whatever their operands.
_NUMERIC = (
    exp.Predicate, exp.Connector, exp.Not, exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div,
    exp.IntDiv, exp.Mod, exp.Pow, exp.Xor, exp.Escape, exp.BitwiseAnd, exp.BitwiseOr,
    exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift,
)  # fmt: skip


class BoundsCheck:
    """The bounds check of a statement whose scopes `scopes` has resolved: `run` returns
    its problems."""

    def __init__(self, scopes: ScopeCheck, allow_recursive: bool) -> None:
        self.scopes = scopes
        self.allow_recursive = allow_recursive
        self.problems = Problems()
        self._calls = CallSizes(scopes.dialect, self.problems)
        self._sizes: dict[int, Size] = {}
        self._outputs: dict[int, list[Size]] = {}
        self._scope_of: dict[int, Scope] = {}

    def run(self, root: exp.Query) -> Problems:
        for scope in self.scopes.scopes:  # inner scopes first
            self._scope_of[id(scope.expression)] = scope
            self._output_sizes(scope)
            for node in scope.walk():  # values built outside the select list count too
                if isinstance(node, exp.Func):
                    self._calls.check_arguments(node)
                    self._size(scope, node)
                elif isinstance(node, exp.DPipe):
                    self._size(scope, node)
            if isinstance(scope.expression, exp.SetOperation) and is_recursive(scope):
                self._check_recursion(root, scope)
        return self.problems

    # What a query returns.

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
                largest(self._size(scope, row[i]) for row in rows if i < len(row))
                for i in range(width)
            ]
        elif isinstance(query, exp.SetOperation) and scope.set_operation_scopes:
            branches = [self._output_sizes(branch) for branch in scope.set_operation_scopes]
            width = max((len(branch) for branch in branches), default=0)
            sizes = [
                largest(branch[i] for branch in branches if i < len(branch)) for i in range(width)
            ]
        elif isinstance(query, exp.Select):
            sources = self.scopes.sources.of(scope)
            for projection in query.selects:
                star = star_of(projection)
                if star is None:
                    sizes.append(self._size(scope, projection))
                    continue
                for source in star_sources(star, sources):
                    sizes.extend(self._source_size(source, c) for c in source.columns)
        self._outputs[key] = sizes
        return sizes

    def _source_size(self, source: Source, column: str) -> Size:
        if source.recursive:
            return Size(step=1.0)
        if source.scope is None or column not in source.columns:
            return STORED
        sizes = self._output_sizes(source.scope)
        index = source.columns.index(column)
        return sizes[index] if index < len(sizes) else STORED

    # What an expression builds.

    def _column_size(self, scope: Scope, column: exp.Column) -> Size:
        name = column.name.lower()
        qualifier = column.table.lower()
        for current in visible_scopes(scope):
            sources = self.scopes.sources.of(current)
            if qualifier:
                if qualifier in sources:
                    return self._source_size(sources[qualifier], name)
                continue
            found = [self._source_size(s, name) for s in sources.values() if name in s.columns]
            if found:
                return largest(found)
            alias = select_alias(current.expression, name)
            if alias is not None:
                return self._size(current, alias.this)
        return STORED  # an unknown column: the scope check refuses it

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
        what = clip(node.sql(dialect=self.scopes.dialect), 60)
        if size.const > MAX_VALUE_BYTES:
            self.problems.add(
                f"`{what}` can build a value of more than {MAX_VALUE_BYTES:,} bytes: use "
                f"smaller sizes"
            )
        else:
            self.problems.add(
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
            args = arguments(node)
            return self._calls.size(node, args, [self._size(scope, arg) for arg in args])
        children = list(node.iter_expressions())
        if isinstance(node, _NUMERIC):
            for child in children:
                self._size(scope, child)
            return SHORT
        if not children:  # a blob literal, a parameter, a keyword
            return Size(const=float(len(node.sql(dialect=self.scopes.dialect).encode())))
        # Anything else passes one of its parts through (parentheses, aliases, COLLATE …).
        return largest(self._size(scope, child) for child in children)

    # Recursion.

    def _check_recursion(self, root: exp.Query, scope: Scope) -> None:
        union = scope.expression
        assert isinstance(union, exp.SetOperation)
        cte = union.parent
        name = cte.alias_or_name.lower() if isinstance(cte, exp.CTE) else "?"
        if not self.allow_recursive:
            return  # refused as a whole by the guard
        rows = recursion_rows(root, union, name)
        if rows is None:
            self.problems.add(
                f"the recursive CTE {name} must stop within {MAX_RECURSION_ROWS:,} rows: add "
                f"LIMIT n inside it (WITH RECURSIVE {name} AS (… LIMIT n))"
            )
            return
        branches = [self._output_sizes(branch) for branch in scope.set_operation_scopes]
        anchor = branches[0] if branches else []
        steps = [size for branch in branches[1:] for size in branch]
        if any(size.step > 1 for size in steps):
            self.problems.add(
                f"the recursive CTE {name} can double a value at every step: a row may "
                f"repeat the previous row's value at most once"
            )
            return
        # Each step adds at most its non-recursive part: after `rows` steps, this much.
        growth = largest(Size(size.data, size.const) for size in steps).times(rows)
        final = [size + growth for size in anchor] or [growth]
        if any(size.too_large for size in final):
            self.problems.add(
                f"the recursive CTE {name} can build a value too large over {rows:,} rows: "
                f"lower its LIMIT"
            )
        self._outputs[id(scope)] = final
