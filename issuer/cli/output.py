"""Command output: a dict or list printed as text, or as JSON with ``--json``.

Every command is declared with ``@command(group, "name")``: it gets ``--json``, its return
value is printed, and domain errors become exit code 1 with the message on stderr.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from ..lifecycle import InvalidValue
from ..representations import plain
from ..storage import Conflict, NotFound

F = TypeVar("F", bound=Callable[..., Any])

DOMAIN_ERRORS = (NotFound, Conflict, InvalidValue)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "-"
    if isinstance(value, Mapping):  # e.g. counts by reason: "api_key_retired=3 ..."
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def render(result: Any, as_json: bool) -> str:
    """Return the printed form of a command's result."""
    result = plain(result)
    if as_json:
        return json.dumps(result, indent=2)
    if isinstance(result, Mapping):
        width = max((len(k) for k in result), default=0)
        return "\n".join(f"{k.ljust(width)}  {_text(v)}" for k, v in result.items())
    if isinstance(result, Sequence) and not isinstance(result, str):
        if not result:
            return "(none)"
        columns = list(result[0].keys())
        rows = [[_text(row.get(c)) for c in columns] for row in result]
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(line.rstrip() for line in lines)
    return _text(result)


def json_option(func: F) -> F:
    """Add ``--json`` to a command and print its return value."""

    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    @functools.wraps(func)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> None:
        try:
            result = func(*args, **kwargs)
        except DOMAIN_ERRORS as exc:
            message = exc.args[0] if exc.args else str(exc)
            if as_json:
                click.echo(json.dumps({"error": message}), err=True)
            else:
                click.echo(f"Error: {message}", err=True)
            raise SystemExit(1) from None
        if result is not None:
            click.echo(render(result, as_json))

    return wrapper  # type: ignore[return-value]
