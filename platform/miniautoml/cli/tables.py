"""The human view of a command's JSON (`--format table`): records as aligned columns, one record
as `key  value` lines with its lists of records as tables under it."""

from __future__ import annotations

from typing import Any

CELL_CHARS = 40  # a longer table cell is cut with "…": a table is for reading, the JSON has it whole
FIELD_CHARS = 120  # the same for a field of one record, shown on a line of its own


def render(data: Any) -> str:
    """`data` (JSON-ready: dicts, lists, scalars) as plain text for a terminal."""
    if isinstance(data, list):
        return _table(data)
    if isinstance(data, dict):
        if len(data) == 1 and isinstance(only := next(iter(data.values())), dict):
            return render(only)  # a wrapper such as {"run_info": {...}}
        return _record(data)
    return _cell(data)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _record(data: dict[str, Any]) -> str:
    fields = [(k, v) for k, v in data.items() if not _is_records(v) and not _empty(v)]
    width = max((len(k) for k, _ in fields), default=0)
    lines = [f"{k:<{width}}  {_cell(v, FIELD_CHARS)}" for k, v in fields]
    for key, rows in data.items():
        if _is_records(rows):
            lines += ["", f"{key}:", _table(rows)]
    return "\n".join(lines)


def _table(rows: list[Any]) -> str:
    if not rows:
        return "(none)"
    records = [r if isinstance(r, dict) else {"value": r} for r in rows]
    columns = [c for c in dict.fromkeys(k for r in records for k in r) if any(not _empty(r.get(c)) for r in records)]
    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _cell(value: Any, limit: int = CELL_CHARS) -> str:
    if _is_records(value):
        text = f"{len(value)} item{'s' if len(value) != 1 else ''}"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(_scalar(v) for v in value)
    else:
        text = _scalar(value)
    text = " ".join(text.split())  # one line per row
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return _cell(value)
    return str(value)
