"""A small OData $filter evaluator: comparisons, and/or/not, parentheses, contains/startswith/
endswith, and the literals Dataverse accepts (strings, numbers, booleans, null, GUIDs,
date-times and enum members such as Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist').

Enough for metadata queries and simple row filters; anything else is refused with 400 rather
than answered wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from acctsync.sim.odata import ODATA_PARSE_ERROR, ODataError

T = TypeVar("T")
Getter = Callable[[T], object]
Predicate = Callable[[T], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<enum>[A-Za-z_][\w.]*'(?:[^']|'')*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
      | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][\w/.]*)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARISONS: dict[str, Callable[[object, object], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "ge": lambda a, b: a >= b,  # type: ignore[operator]
    "lt": lambda a, b: a < b,  # type: ignore[operator]
    "le": lambda a, b: a <= b,  # type: ignore[operator]
}
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda a, b: b.lower() in a.lower(),
    "startswith": lambda a, b: a.lower().startswith(b.lower()),
    "endswith": lambda a, b: a.lower().endswith(b.lower()),
}


class _Literal:
    def __init__(self, value: object) -> None:
        self.value = value


def _invalid(text: str) -> ODataError:
    return ODataError(
        400, ODATA_PARSE_ERROR, f"Syntax error or unsupported syntax in $filter: {text}"
    )


class _Parser(Generic[T]):
    def __init__(self, text: str, resolve: Callable[[str], Getter[T]]) -> None:
        self.text = text
        self.resolve = resolve
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                if text[position:].strip():
                    raise _invalid(text)
                break
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _invalid(self.text)
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise _invalid(self.text)

    def parse(self) -> Predicate[T]:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise _invalid(self.text)
        return predicate

    def disjunction(self) -> Predicate[T]:
        terms = [self.conjunction()]
        while self.peek() == ("name", "or"):
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda item: any(t(item) for t in terms))

    def conjunction(self) -> Predicate[T]:
        factors = [self.factor()]
        while self.peek() == ("name", "and"):
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda item: all(f(item) for f in factors))

    def factor(self) -> Predicate[T]:
        token = self.peek()
        if token == ("punct", "("):
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        if token == ("name", "not"):
            self.take()
            negated = self.factor()
            return lambda item: not negated(item)
        if token is not None and token[0] == "name" and token[1] in _FUNCTIONS:
            return self.function()
        return self.comparison()

    def function(self) -> Predicate[T]:
        function = _FUNCTIONS[self.take()[1]]
        self.expect("(")
        getter = self.operand()
        self.expect(",")
        needle = self.operand()
        self.expect(")")
        if not isinstance(needle, _Literal) or not isinstance(needle.value, str):
            raise _invalid(self.text)
        if isinstance(getter, _Literal):
            raise _invalid(self.text)
        text = needle.value
        resolved = getter

        def test(item: T) -> bool:
            value = resolved(item)
            return isinstance(value, str) and function(value, text)

        return test

    def comparison(self) -> Predicate[T]:
        left = self.operand()
        operator = self.take()
        if operator[0] != "name" or operator[1] not in _COMPARISONS:
            raise _invalid(self.text)
        compare = _COMPARISONS[operator[1]]
        right = self.operand()
        left_get = self._getter(left)
        right_get = self._getter(right)

        def test(item: T) -> bool:
            a, b = left_get(item), right_get(item)
            if operator[1] in ("eq", "ne"):
                return compare(a, b)
            if a is None or b is None:
                return False
            try:
                return compare(a, b)
            except TypeError:
                return False

        return test

    @staticmethod
    def _getter(operand: _Literal | Getter[T]) -> Getter[T]:
        if isinstance(operand, _Literal):
            value = operand.value
            return lambda _item: value
        return operand

    def operand(self) -> _Literal | Getter[T]:
        kind, text = self.take()
        if kind == "string":
            return _Literal(text[1:-1].replace("''", "'"))
        if kind == "enum":
            return _Literal(text[text.index("'") + 1 : -1].replace("''", "'"))
        if kind == "datetime":
            return _Literal(_normalise_datetime(text))
        if kind == "guid":
            return _Literal(text.lower())
        if kind == "number":
            return _Literal(float(text) if "." in text else int(text))
        if kind == "name":
            keywords: dict[str, object] = {"true": True, "false": False, "null": None}
            if text in keywords:
                return _Literal(keywords[text])
            return self.resolve(text)
        raise _invalid(self.text)


def _normalise_datetime(text: str) -> datetime:
    """A DateTimeOffset literal as an aware UTC datetime, offset and fraction kept.

    Comparing it as text against the stored "YYYY-MM-DDTHH:MM:SSZ" strings would go wrong
    for an offset (10:00+02:00 is 08:00Z) and for fractions of a second (a row at 10:00:00
    is before 10:00:00.5, yet the text "...00Z" sorts after "...00.5Z"). Row filters parse
    the stored value of a DateTime column with `parse_moment` to compare like with like; a
    literal without an offset is taken as UTC.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_moment(value: object) -> datetime | None:
    """A stored DateTime value ("YYYY-MM-DDTHH:MM:SSZ") as an aware datetime, for filters."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def compile_filter(text: str, resolve: Callable[[str], Getter[T]]) -> Predicate[T]:
    """Compile $filter text; `resolve` maps a property path to a getter or raises ODataError."""
    return _Parser(text, resolve).parse()
