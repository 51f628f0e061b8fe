"""How large a function call's value can be, and the argument rules that keep it bounded.

An allowlisted function can still be a denial of service through its arguments:
`printf('%.*c', 400000000, 'x')` allocates 400 MB, and `replace` nested in itself grows
a value exponentially. So:

- size and width arguments are literals within limits: printf/format widths and
  precisions (`*` is refused), zeroblob/randomblob/repeat/lpad/rpad/space sizes;
  printf's format is a string literal; `replace` replaces with a constant;
- no call has more than `MAX_ARGUMENTS` arguments (`char(…)`, `concat(…)`).

A call's size is then computed from its arguments' sizes (`size.Size`).
"""

from __future__ import annotations

import re

from sqlglot import exp

from tierflow.guardrails.reasons import Problems
from tierflow.guardrails.sql.functions import function_key, function_label
from tierflow.guardrails.sql.literals import literal_int
from tierflow.guardrails.sql.size import MAX_VALUE_BYTES, SHORT, Size, largest, total

MAX_WIDTH = 100  # a printf/format width or precision
MAX_ARGUMENTS = 100  # arguments of one function call

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


def arguments(node: exp.Func) -> list[exp.Expr]:
    """A call's arguments, in sqlglot's order."""
    args: list[exp.Expr] = []
    for value in node.args.values():
        if isinstance(value, exp.Expr):
            args.append(value)
        elif isinstance(value, list):
            args.extend(v for v in value if isinstance(v, exp.Expr))
    return args


class CallSizes:
    """The size of a call's value from its arguments' sizes; an argument the bound can't
    trust is added to `problems`."""

    def __init__(self, dialect: str, problems: Problems) -> None:
        self.dialect = dialect
        self.problems = problems

    def check_arguments(self, node: exp.Func) -> None:
        count = len(arguments(node))
        if count > MAX_ARGUMENTS:
            self.problems.add(
                f"{self._label(node)}(…) has {count} arguments; at most {MAX_ARGUMENTS} are allowed"
            )

    def size(self, node: exp.Func, args: list[exp.Expr], sizes: list[Size]) -> Size:
        """The size of `node`'s value; `sizes` are those of its `args`."""
        key = function_key(node)
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
            return total(sizes).times(2.0)
        if key == "anonymous:quote":
            return total(sizes).times(2.0) + Size(const=3.0)
        if key == "chr":
            return Size(const=4.0 * len(args))
        if key in ("timetostr", "anonymous:strftime"):
            return (sizes[0] if sizes else Size()).times(10.0) + SHORT
        if key in _SMALL:
            return SHORT
        if key in _ONE_OF or isinstance(node, exp.Case | exp.Cast | exp.Window | exp.Filter):
            return largest(sizes)
        # concat, concat_ws, group_concat, and any function added to the allowlist:
        # no longer than all its arguments together.
        return total(sizes) + SHORT

    def _label(self, node: exp.Func) -> str:
        return function_label(node, self.dialect)

    def _count(self, node: exp.Func, argument: exp.Expr | None) -> float:
        """A size argument: an integer literal, at most MAX_VALUE_BYTES."""
        value = literal_int(argument)
        if value is None or not 0 <= value <= MAX_VALUE_BYTES:
            self.problems.add(
                f"{self._label(node)}'s size must be a number from 0 to {MAX_VALUE_BYTES:,}, "
                f"written as a literal"
            )
            return 0.0
        return float(value)

    def _replace(self, node: exp.Func, sizes: list[Size]) -> Size:
        if len(sizes) < 3:
            return largest(sizes)
        pattern = node.args.get("expression")
        replacement = sizes[2]
        if replacement.data or replacement.step:
            self.problems.add(
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
            self.problems.add(f"{name}'s format must be a string literal")
            return total(sizes)
        text = str(form.this)
        result = Size(const=float(len(text.encode())))
        values = iter(sizes[1:])
        for match in _CONVERSION.finditer(text):
            _, _, width, precision, _, kind = match.groups()
            if not kind:
                continue
            if kind not in _PRINTF_TYPES:
                self.problems.add(f"{name}: the conversion %{kind} is not supported")
                continue
            if "*" in (width or "") or "*" in (precision or ""):
                self.problems.add(
                    f"{name}: a width or precision given as an argument (*) is not allowed; "
                    f"write it as a number up to {MAX_WIDTH}"
                )
                continue
            pad = max(int(width or 0), int(precision or 0))
            if pad > MAX_WIDTH:
                self.problems.add(
                    f"{name}: width and precision must be at most {MAX_WIDTH}, not {pad}"
                )
                continue
            if kind != "%":
                result = result + _conversion_size(kind, pad, next(values, Size()))
        return result


def _conversion_size(kind: str, pad: int, value: Size) -> Size:
    """The size of one printf conversion of a value of size `value`, padded to `pad`."""
    if kind in "sz":
        return value + Size(const=pad)
    if kind in "qQwIL":
        return value.times(2.0) + Size(const=pad + 2.0)
    if kind == "c":
        return Size(const=4.0 * max(1, pad))
    return Size(const=350.0 + pad)  # a number: at most ~310 digits for %f of a huge double
