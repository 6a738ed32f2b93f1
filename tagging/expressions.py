"""The one safe expression language of tag rules and audiences. Pure: no Django.

A small whitelisted subset of Python expression syntax, parsed with `ast` and checked node by node,
never evaluated: names must be known features, tags or scores; literals, comparisons (chained too),
`and`/`or`/`not`, `in`/`not in` a literal list, and arithmetic; in audiences also the functions the caller
allows (`holds("...")`, and what other apps register: `area("...")`, `hex("...")`). Size and depth are limited. A checked expression compiles to DuckDB SQL over feature
columns (tag rules) or to bitmap algebra (audiences). Every error names the position and the token.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .lake.sql import literal

MAX_LENGTH = 4000
MAX_NODES = 300
MAX_DEPTH = 30
MAX_NUMBER = 1e15
MAX_TEXT = 200
MAX_LIST = 500
# Each area()/hex()/holds() reads a snapshot's files once (then kept); bounded so that one audience cannot make
# a web process read a whole snapshot dozens of times.
MAX_CALLS = 10


class Type(str, Enum):
    NUMBER = "number"
    BOOLEAN = "boolean"
    TEXT = "text"


class ExpressionError(ValueError):
    """A refused expression: what is wrong, where (1-based line and column) and the offending token."""

    def __init__(self, message: str, *, line: int = 1, column: int = 1, token: str = ""):
        self.message, self.line, self.column, self.token = message, line, column, token
        where = f"line {line}, column {column}" if line > 1 else f"column {column}"
        super().__init__(f"{where}: {message}" + (f" ({token!r})" if token and token not in message else ""))

    def as_dict(self) -> dict:
        return {"message": self.message, "line": self.line, "column": self.column, "token": self.token}


@dataclass(frozen=True)
class Symbol:
    """A name an expression may use: a feature column, a tag, or a graded score (propensity deciles)."""

    name: str
    type: Type
    kind: str = "feature"  # feature | tag | score


_COMPARISONS = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}
_FRIENDLY = {
    ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Call: "a function call",
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.NamedExpr: "an assignment", ast.IfExp: "if/else",
    ast.Starred: "unpacking", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Dict: "a dictionary", ast.Set: "a set", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.Invert: "~", ast.LShift: "<<", ast.RShift: ">>", ast.Pow: "**", ast.FloorDiv: "//",
    ast.MatMult: "@", ast.Is: "is", ast.IsNot: "is not",
}


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, syntax tree, and the names it uses."""

    text: str
    tree: ast.Expression
    references: frozenset[str]
    functions: tuple[tuple[str, str], ...]  # (function, argument) pairs, e.g. ("area", "禅城-季华")

    def to_sql(self) -> str:
        """DuckDB SQL over columns named like the symbols; NULL (a missing feature) counts as false."""
        return f"coalesce({_sql(self.tree.body)}, false)"

    def to_bitmap(self, resolver: "BitmapResolver") -> Any:
        """The audience as a bitmap, by set algebra over the resolver's bitmaps."""
        return _bitmap(self.tree.body, resolver)


class _Uncompiled(ValueError):
    """A node a compiler has no translation for (parse() turns it into a placed ExpressionError)."""

    def __init__(self, node: ast.AST):
        super().__init__(f"unchecked node {type(node).__name__}")
        self.node = node


class BitmapResolver:
    """What an audience needs to become a bitmap; the caller supplies the bitmaps."""

    def everyone(self) -> Any:  # the universe `not` is taken against
        raise NotImplementedError

    def tag(self, name: str) -> Any:
        raise NotImplementedError

    def compare(self, name: str, operator: str, value: float | str) -> Any:  # graded scores: decile >= 8
        raise NotImplementedError

    def call(self, function: str, argument: str) -> Any:  # area("..."), hex("...")
        raise NotImplementedError


def parse(text: str, symbols: Mapping[str, Symbol], *, audience: bool = False,
          functions: Collection[str] = ()) -> Expression:
    """Check `text` against the known symbols (and, in audiences, the function names allowed: each takes one
    name in quotes); raise ExpressionError naming the first problem."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters", column=MAX_LENGTH + 1)
    if "\x00" in text:
        raise ExpressionError("the expression contains a NUL character", column=text.index("\x00") + 1)
    # One-line input is stripped (pasted rules carry stray spaces, even U+00A0); errors are located in
    # the stripped source and then shifted so that columns still count from the original text.
    source = text.strip() if "\n" not in text.strip() else text
    lead = len(text) - len(text.lstrip()) if source is not text else 0
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(source, exc, lead) from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError("the expression cannot be parsed (too deeply nested?)") from None
    checker = _Checker(source, symbols, audience, lead=lead, functions=functions)
    result = checker.check(tree.body, depth=1)
    if result != Type.BOOLEAN:
        raise checker.error(tree.body, f"the expression must be true or false, not a {result.value}")
    # What is accepted must compile: its compiler (SQL for rules, bitmap algebra for audiences) runs over it now,
    # so a form the checker let through and the compiler cannot handle is refused here, at its place, and never
    # reaches a run or a preview.
    try:
        _bitmap(tree.body, _Shapes()) if audience else _sql(tree.body)
    except _Uncompiled as exc:
        raise checker.error(exc.node, f"{_describe(exc.node)} cannot be computed here") from None
    return Expression(text, tree, frozenset(checker.references), tuple(checker.functions))


def evaluation_order(dependencies: Mapping[str, set[str] | frozenset[str]]) -> list[str]:
    """Codes in an order where every tag comes after the tags it uses; a cycle is refused, named."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(code: str, path: list[str]) -> None:
        if state.get(code) == "done":
            return
        if state.get(code) == "visiting":
            cycle = path[path.index(code):] + [code]
            raise ExpressionError(f"tags depend on each other in a cycle: {' -> '.join(cycle)}", token=code)
        state[code] = "visiting"
        for used in sorted(dependencies.get(code, ())):
            if used in dependencies:
                visit(used, path + [code])
        state[code] = "done"
        order.append(code)

    for code in sorted(dependencies):
        visit(code, [])
    return order


class _Checker:
    def __init__(self, text: str, symbols: Mapping[str, Symbol], audience: bool, *, lead: int = 0,
                 functions: Collection[str] = ()):
        self.lines = text.splitlines() or [""]
        self.allowed_functions = sorted(functions)
        self.lead = lead
        self.symbols, self.audience = symbols, audience
        self.references: set[str] = set()
        self.functions: list[tuple[str, str]] = []
        self.nodes = 0

    def error(self, node: ast.AST, message: str) -> ExpressionError:
        line = getattr(node, "lineno", 1)
        column = self._column(line, getattr(node, "col_offset", 0))
        token = ast.get_source_segment("\n".join(self.lines), node) if hasattr(node, "lineno") else ""
        return ExpressionError(message, line=line, column=column, token=(token or "")[:60])

    def _column(self, line: int, byte_offset: int) -> int:
        # ast counts UTF-8 bytes; people count characters (a Chinese area name is 3 bytes a character).
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return len(text.encode()[:byte_offset].decode(errors="ignore")) + 1 + (self.lead if line == 1 else 0)

    def check(self, node: ast.AST, *, depth: int) -> Type:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(node, f"the expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise self.error(node, f"the expression is nested more than {MAX_DEPTH} levels deep")
        match node:
            case ast.BoolOp(values=values):
                for value in values:
                    self._expect(value, Type.BOOLEAN, depth, "and/or joins true/false conditions")
                return Type.BOOLEAN
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                self._expect(operand, Type.BOOLEAN, depth, "not applies to a true/false condition")
                return Type.BOOLEAN
            case ast.UnaryOp(op=ast.USub() | ast.UAdd(), operand=operand):
                self._no_arithmetic_in_audience(node)
                self._expect(operand, Type.NUMBER, depth, "a sign applies to a number")
                return Type.NUMBER
            case ast.BinOp(op=op, left=left, right=right) if type(op) in _ARITHMETIC:
                self._no_arithmetic_in_audience(node)
                self._expect(left, Type.NUMBER, depth, "arithmetic needs numbers")
                self._expect(right, Type.NUMBER, depth, "arithmetic needs numbers")
                return Type.NUMBER
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                self._compare(node, left, ops, comparators, depth)
                return Type.BOOLEAN
            case ast.Name(id=name):
                return self._name(node, name)
            case ast.Constant(value=value):
                return self._constant(node, value)
            case ast.Call():
                return self._call(node)
            case ast.BinOp(op=op) | ast.UnaryOp(op=op):
                raise self.error(node, f"{_describe(op)} is not allowed here")
        raise self.error(node, f"{_describe(node)} is not allowed here")

    def _expect(self, node: ast.AST, wanted: Type, depth: int, why: str) -> None:
        found = self.check(node, depth=depth + 1)
        if found != wanted:
            raise self.error(node, f"{why}; this is a {found.value}")

    def _no_arithmetic_in_audience(self, node: ast.AST) -> None:
        if self.audience:
            raise self.error(node, "arithmetic is not available in audiences: compare a tag or score with a value")

    def _name(self, node: ast.Name, name: str) -> Type:
        if name in ("true", "false", "True", "False"):
            return Type.BOOLEAN
        symbol = self.symbols.get(name)
        if symbol is None:
            close = difflib.get_close_matches(name, list(self.symbols), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise self.error(node, f"unknown name {name!r}{hint}")
        if self.audience and symbol.kind == "feature":
            raise self.error(node, f"{name!r} is a feature; audiences select by tags, scores, areas and hexes")
        self.references.add(name)
        return symbol.type

    def _constant(self, node: ast.Constant, value: Any) -> Type:
        if isinstance(value, bool):
            return Type.BOOLEAN
        if isinstance(value, (int, float)):
            if not math.isfinite(value) or abs(value) > MAX_NUMBER:
                raise self.error(node, f"the number is larger than {MAX_NUMBER:g}")
            return Type.NUMBER
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise self.error(node, f"the text is longer than {MAX_TEXT} characters")
            return Type.TEXT
        raise self.error(node, f"{type(value).__name__} values are not allowed")

    def _compare(self, node: ast.Compare, left: ast.AST, ops, comparators, depth: int) -> None:
        left_type = self.check(left, depth=depth + 1)
        for op, right in zip(ops, comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, (ast.List, ast.Tuple)):
                    raise self.error(right, "in needs a list of values, like [1, 2, 3]")
                if right is not comparators[-1]:
                    raise self.error(node, "a list ends a comparison: join another with and, like "
                                           "age in [30, 40] and age < 50")
                if not right.elts or len(right.elts) > MAX_LIST:
                    raise self.error(right, f"the list must have 1 to {MAX_LIST} values")
                for element in right.elts:
                    if not isinstance(element, ast.Constant):
                        raise self.error(element, "a list holds plain values only")
                    if self._constant(element, element.value) != left_type:
                        raise self.error(element, f"this list value is not a {left_type.value}")
                self.nodes += len(right.elts)
                if self.audience and not self._graded(left):
                    raise self.error(node, "in an audience, in compares a score")
                continue
            if type(op) not in _COMPARISONS:
                raise self.error(node, f"{_describe(op)} is not allowed here")
            right_type = self.check(right, depth=depth + 1)
            if left_type != right_type:
                raise self.error(right, f"cannot compare a {left_type.value} with a {right_type.value}")
            if left_type == Type.BOOLEAN and type(op) not in (ast.Eq, ast.NotEq):
                raise self.error(node, "true/false values can only be compared with == or !=")
            if self.audience and not (self._graded(left) and isinstance(right, ast.Constant)):
                raise self.error(node, "in an audience, compare a score with a value, like propensity_5g_plan >= 8")
            left, left_type = right, right_type
        if self.audience and len(ops) > 1:
            raise self.error(node, "in an audience, compare one score with one value at a time")

    def _graded(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and getattr(self.symbols.get(node.id), "kind", "") == "score"

    def _call(self, node: ast.Call) -> Type:
        function = node.func.id if isinstance(node.func, ast.Name) else None
        if not self.audience or function not in self.allowed_functions:
            names = ", ".join(f"{f}(...)" for f in self.allowed_functions)
            where = f"only {names} in audiences" if self.audience else "no function calls in tag rules"
            raise self.error(node, f"{_describe(node)} is not allowed: {where}")
        if node.keywords or len(node.args) != 1 or not isinstance(node.args[0], ast.Constant) \
                or not isinstance(node.args[0].value, str):
            raise self.error(node, f'{function}() takes one name in quotes, like {function}("...")')
        self._constant(node.args[0], node.args[0].value)
        if len(self.functions) >= MAX_CALLS:
            raise self.error(node, f"an audience names at most {MAX_CALLS} areas, hexes and products")
        self.functions.append((function, node.args[0].value))
        return Type.BOOLEAN


def _describe(node: Any) -> str:
    return _FRIENDLY.get(type(node), type(node).__name__)


# Operators from other languages that analysts type, what to write instead, and where the parser stops
# relative to them (it points at the second character of && and ||).
_FOREIGN_OPERATORS = [("=>", ">="), ("=<", "<="), ("&&", "and"), ("||", "or")]


def _syntax_error(source: str, exc: SyntaxError, lead: int) -> ExpressionError:
    """Where parsing stopped, and what the analyst most likely meant there."""
    lines = source.splitlines() or [""]
    line, column = exc.lineno or 1, exc.offset or 0
    if column < 1:
        # The parser reports no place when the text stops in the middle of an expression: the place is its end.
        line = len(lines)
        last = lines[-1].rstrip()
        words = last.split()
        column = len(last) + 1
        message = f"the expression ends too early, after {words[-1]!r}" if words else "the expression ends too early"
        return ExpressionError(f"syntax error: {message}", line=line, column=column + (lead if line == 1 else 0))
    text = lines[min(line, len(lines)) - 1]
    message = f"syntax error: {exc.msg}"
    for written, meant in _FOREIGN_OPERATORS:
        at = text.find(written, max(column - 2, 0), column + 1)
        if at >= 0:
            message, column = f"syntax error: write {meant!r} instead of {written!r}", at + 1
            break
    else:
        if re.match(r"=(?!=)", text[column - 1:]) and (column < 2 or text[column - 2] not in "=!<>"):
            message = "syntax error: write '==' to compare ('=' assigns)"
    return ExpressionError(message, line=line, column=column + (lead if line == 1 else 0),
                           token=_token_at(source, line, column))


def _token_at(text: str, line: int, column: int) -> str:
    lines = text.splitlines() or [""]
    source = lines[min(max(line, 1), len(lines)) - 1]
    return source[max(column - 1, 0):][:20].split(" ")[0]


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return literal(value)


def _sql(node: ast.AST) -> str:
    match node:
        case ast.BoolOp(op=ast.And(), values=values):
            return "(" + " AND ".join(_sql(v) for v in values) + ")"
        case ast.BoolOp(op=ast.Or(), values=values):
            return "(" + " OR ".join(_sql(v) for v in values) + ")"
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return f"(NOT {_sql(operand)})"
        # Arithmetic is done in DOUBLE, which never fails (integer columns overflow, and % 0 is an error, mid-run);
        # dividing by zero gives NULL (no tag).
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return f"(- CAST({_sql(operand)} AS DOUBLE))"
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _sql(operand)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _ARITHMETIC:
            divisor = f"NULLIF(CAST({_sql(right)} AS DOUBLE), 0)" if isinstance(op, (ast.Div, ast.Mod)) \
                else f"CAST({_sql(right)} AS DOUBLE)"
            return f"(CAST({_sql(left)} AS DOUBLE) {_ARITHMETIC[type(op)]} {divisor})"
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            parts = []
            for op, right in zip(ops, comparators):
                if isinstance(op, (ast.In, ast.NotIn)):
                    values = ", ".join(_sql_literal(e.value) for e in right.elts)
                    parts.append(f"({_sql(left)} {'NOT IN' if isinstance(op, ast.NotIn) else 'IN'} ({values}))")
                else:
                    parts.append(f"({_sql(left)} {_COMPARISONS[type(op)]} {_sql(right)})")
                left = right
            return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"
        case ast.Name(id=name) if name in ("true", "True"):
            return "TRUE"
        case ast.Name(id=name) if name in ("false", "False"):
            return "FALSE"
        case ast.Name(id=name):
            return '"' + name.replace('"', '""') + '"'
        case ast.Constant(value=value):
            return _sql_literal(value)
    raise _Uncompiled(node)  # parse() never lets one through


def _bitmap(node: ast.AST, resolver: BitmapResolver) -> Any:
    match node:
        case ast.BoolOp(op=ast.And(), values=values):
            result = _bitmap(values[0], resolver)
            for value in values[1:]:
                result = result & _bitmap(value, resolver)
            return result
        case ast.BoolOp(op=ast.Or(), values=values):
            result = _bitmap(values[0], resolver)
            for value in values[1:]:
                result = result | _bitmap(value, resolver)
            return result
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return resolver.everyone() - _bitmap(operand, resolver)
        case ast.Compare(left=ast.Name(id=name), ops=[op], comparators=[right]):
            if isinstance(op, (ast.In, ast.NotIn)):
                union = None
                for element in right.elts:
                    part = resolver.compare(name, "=", element.value)
                    union = part if union is None else union | part
                return resolver.everyone() - union if isinstance(op, ast.NotIn) else union
            return resolver.compare(name, _COMPARISONS[type(op)], right.value)
        case ast.Name(id=name) if name in ("true", "True"):
            return resolver.everyone()
        case ast.Constant(value=True):
            return resolver.everyone()
        case ast.Name(id=name) if name in ("false", "False"):
            return resolver.everyone() - resolver.everyone()
        case ast.Constant(value=False):
            return resolver.everyone() - resolver.everyone()
        case ast.Name(id=name):
            return resolver.tag(name)
        case ast.Call(func=ast.Name(id=function), args=[ast.Constant(value=argument)]):
            return resolver.call(function, argument)
    raise _Uncompiled(node)


class _Shapes(BitmapResolver):
    """Empty sets for every name: enough to see that an expression compiles to set algebra."""

    def everyone(self):
        return frozenset()

    def tag(self, name):
        return frozenset()

    def compare(self, name, operator, value):
        return frozenset()

    def call(self, function, argument):
        return frozenset()


