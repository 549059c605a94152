"""A sweep's search space: `-P key=EXPR` in the grammar of Hydra's Optuna sweeper, parsed into
Optuna distributions and checked against the documented training parameters.

    interval(a,b)              a float in [a, b]
    int(interval(a,b))         a whole number in [a, b]
    tag(log, interval(a,b))    sampled on a log scale (also with int(...), either way round)
    choice(a,b,c)  or  a,b,c   one of the values
    a plain value              fixed for every trial
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from miniautoml.errors import UserInputError, shown

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

FUNCTIONS = ("interval", "int", "choice", "tag")
_CALL_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


@dataclass(frozen=True)
class Dimension:
    """One -P argument: a searched key (its distribution) or a fixed value."""

    key: str
    text: str  # the expression as typed
    kind: str  # "fixed" | "float" | "int" | "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()
    value: str | None = None  # a fixed value

    @property
    def argument(self) -> str:
        """The -P argument, for error lines."""
        return f"-P {self.key}={self.text}"

    def candidates(self) -> list[str]:
        """The values to validate before any trial: the fixed value, both bounds, every choice."""
        if self.kind == "fixed":
            return [str(self.value)]
        if self.kind == "choice":
            return list(self.choices)
        return [format_value(self.low, self.kind), format_value(self.high, self.kind)]

    def distribution(self) -> "BaseDistribution":
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(float(self.low), float(self.high), log=self.log)  # type: ignore[arg-type]
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        if self.kind == "choice":
            return CategoricalDistribution(list(self.choices))
        raise ValueError(f"{self.argument}: a fixed value has no distribution")


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...] = field(default_factory=tuple)

    @property
    def fixed(self) -> dict[str, str]:
        return {d.key: str(d.value) for d in self.dimensions if d.kind == "fixed"}

    @property
    def searched(self) -> tuple[Dimension, ...]:
        return tuple(d for d in self.dimensions if d.kind != "fixed")

    def distributions(self) -> dict[str, "BaseDistribution"]:
        return {d.key: d.distribution() for d in self.searched}

    def params_of(self, sampled: dict[str, Any]) -> dict[str, str]:
        """A trial's training parameters (-P values): the fixed ones and the sampled ones."""
        kinds = {d.key: d.kind for d in self.searched}
        return self.fixed | {k: format_value(v, kinds[k]) for k, v in sampled.items()}

    def described(self) -> dict[str, str]:
        """key -> expression as typed: what the sweep's parent run logs as params."""
        return {d.key: d.text for d in self.dimensions}


def format_value(value: Any, kind: str) -> str:
    """A sampled value as a Hydra override value: whole numbers without ".0", floats exactly."""
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return repr(float(value))
    return str(value)


# --- parsing ------------------------------------------------------------------------------------
@dataclass
class _Call:
    name: str
    args: list["_Call | str"]


def _split_args(text: str, argument: str) -> list[str]:
    """Top-level comma-separated parts of `text` (commas inside parentheses stay)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise UserInputError(f"{argument}: unbalanced ')'")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise UserInputError(f"{argument}: unbalanced '('")
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _closing(text: str, opening: int, argument: str) -> int:
    """Index of the ')' that closes the '(' at `opening`."""
    depth = 0
    for i in range(opening, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise UserInputError(f"{argument}: unbalanced '('")


def _parse(text: str, argument: str) -> "_Call | str":
    """`name(args)` as a _Call (args parsed the same way), anything else as a literal string."""
    text = text.strip()
    match = _CALL_RE.match(text)
    if not match:
        if "(" in text or ")" in text:
            raise UserInputError(f"{argument}: {shown(text)} is not an expression; expected one of {', '.join(f'{f}(...)' for f in FUNCTIONS)} or a plain value")
        return text
    name = match.group(1)
    if name not in FUNCTIONS:
        raise UserInputError(f"{argument}: unknown function {name!r}; expected {', '.join(FUNCTIONS)}")
    close = _closing(text, match.end() - 1, argument)
    if close != len(text) - 1:
        raise UserInputError(f"{argument}: text after the closing ')' of {name}(...)")
    args = _split_args(text[match.end():close], argument)
    if args == [""]:
        args = []
    if any(a == "" for a in args):
        raise UserInputError(f"{argument}: an empty argument in {name}(...)")
    return _Call(name, [_parse(a, argument) for a in args])


def _number(arg: "_Call | str", argument: str) -> float:
    if isinstance(arg, _Call):
        raise UserInputError(f"{argument}: interval bounds are numbers, not {arg.name}(...)")
    try:
        value = float(arg)
    except ValueError:
        raise UserInputError(f"{argument}: interval bound {shown(arg)} is not a number") from None
    if not math.isfinite(value):
        raise UserInputError(f"{argument}: interval bound {shown(arg)} is not a finite number")
    return value


def _range(call: "_Call | str", argument: str, *, whole: bool, log: bool) -> Dimension:
    """interval/int/tag nested in any order around one interval(a,b)."""
    if not isinstance(call, _Call) or call.name == "choice":
        raise UserInputError(f"{argument}: int(...) and tag(...) wrap an interval(a,b)")
    if call.name == "int":
        if len(call.args) != 1:
            raise UserInputError(f"{argument}: int(...) takes one interval(a,b)")
        return _range(call.args[0], argument, whole=True, log=log)
    if call.name == "tag":
        if len(call.args) < 2 or any(isinstance(a, _Call) for a in call.args[:-1]):
            raise UserInputError(f"{argument}: tag(...) takes tags then one interval, e.g. tag(log, interval(1e-4, 1e-1))")
        unknown = [a for a in call.args[:-1] if a != "log"]
        if unknown:
            raise UserInputError(f"{argument}: unknown tag {shown(unknown[0])}; the only tag is log")
        return _range(call.args[-1], argument, whole=whole, log=True)
    if len(call.args) != 2:
        raise UserInputError(f"{argument}: interval(a,b) takes two numbers, got {len(call.args)}")
    low, high = (_number(a, argument) for a in call.args)
    if not low < high:
        raise UserInputError(f"{argument}: interval({call.args[0]}, {call.args[1]}) needs low < high")
    if log and low <= 0:
        raise UserInputError(f"{argument}: a log interval needs low > 0")
    if whole:
        if low != int(low) or high != int(high):
            raise UserInputError(f"{argument}: int(interval(a,b)) needs whole-number bounds")
        return Dimension("", "", "int", int(low), int(high), log)
    return Dimension("", "", "float", low, high, log)


def parse_dimension(key: str, text: str) -> Dimension:
    """One -P argument; UserInputError (naming it) for bad syntax. Keys and values are checked
    against the training parameters by `check_documented`."""
    key, text = key.strip(), text.strip()
    argument = f"-P {key}={text}"
    if not text:
        raise UserInputError(f"{argument}: empty value")
    node = _parse(text, argument) if _CALL_RE.match(text) else None
    if node is None:  # a plain value, or Hydra's shorthand a,b,c for choice(a,b,c)
        parts = _split_args(text, argument)
        if len(parts) == 1:
            _parse(text, argument)  # stray parentheses
            return Dimension(key, text, "fixed", value=text)
        node = _Call("choice", [_parse(p, argument) for p in parts])
        if any(p == "" for p in parts):
            raise UserInputError(f"{argument}: an empty choice")
    assert isinstance(node, _Call)
    if node.name == "choice":
        if not node.args:
            raise UserInputError(f"{argument}: choice(...) needs at least one value")
        if any(isinstance(a, _Call) for a in node.args):
            raise UserInputError(f"{argument}: choice(...) takes plain values")
        values = tuple(str(a) for a in node.args)
        if len(set(values)) != len(values):
            raise UserInputError(f"{argument}: a value repeats in choice(...)")
        return Dimension(key, text, "choice", choices=values)
    dim = _range(node, argument, whole=False, log=False)
    return Dimension(key, text, dim.kind, dim.low, dim.high, dim.log)


def check_documented(dim: Dimension) -> None:
    """The key is a documented training parameter and each candidate value has its type; an
    interval only over a number (a whole-number parameter needs int(...))."""
    from miniautoml.contract.params import documented_params, validate_override

    documented = documented_params()
    if dim.kind in ("float", "int"):
        if dim.key in documented.groups:
            raise UserInputError(f"{dim.argument}: {dim.key} is a config group; use choice({','.join(documented.groups[dim.key])})")
        default = documented.defaults.get(dim.key)
        if dim.key in documented.defaults and (isinstance(default, bool) or not isinstance(default, (int, float))):
            raise UserInputError(f"{dim.argument}: {dim.key} is not a number; use choice(...) or a plain value")
        if dim.kind == "float" and isinstance(default, int) and not isinstance(default, bool):
            raise UserInputError(f"{dim.argument}: {dim.key} is a whole number; use int(interval(a,b))")
    for value in dim.candidates():
        try:
            validate_override(dim.key, value)
        except UserInputError as exc:
            raise UserInputError(f"{dim.argument}: {exc}") from None


def parse_search_space(params: dict[str, str]) -> SearchSpace:
    """The search space of `-P key=EXPR` pairs; UserInputError naming the first bad argument.
    At least one key must be searched."""
    dims = []
    for key, text in params.items():
        dim = parse_dimension(key, text)
        check_documented(dim)
        dims.append(dim)
    space = SearchSpace(tuple(dims))
    if not space.searched:
        raise UserInputError("nothing to search: give at least one -P KEY=interval(a,b) / choice(a,b) / int(...)")
    return space
