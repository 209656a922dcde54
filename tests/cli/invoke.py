"""Run ``keyswap`` commands through Flask's CLI runner and read their ``--json`` output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from click.testing import Result
from flask.testing import FlaskCliRunner

from keyswap.issuer.cli import cli


@dataclass(frozen=True)
class Outcome:
    """A finished command: exit code, stdout, stderr, and stdout parsed as JSON if any."""

    result: Result

    @property
    def code(self) -> int:
        """Return the exit code."""
        return self.result.exit_code

    @property
    def stdout(self) -> str:
        """Return what the command printed on stdout."""
        return self.result.stdout

    @property
    def stderr(self) -> str:
        """Return what the command printed on stderr."""
        return self.result.stderr

    @property
    def data(self) -> Any:
        """Return stdout parsed as JSON (the command ran with ``--json``)."""
        return json.loads(self.result.stdout)

    @property
    def error(self) -> str:
        """Return the message of a ``--json`` domain error, printed as JSON on stderr."""
        return str(json.loads(self.result.stderr)["error"])


def run(runner: FlaskCliRunner, *args: str, as_json: bool = True) -> Outcome:
    """Invoke ``keyswap ARGS`` (with ``--json`` unless told otherwise)."""
    result = runner.invoke(cli, [*args, "--json"] if as_json else list(args))
    # A crash also exits 1; a domain or usage error is a deliberate SystemExit.
    if result.exit_code != 0:
        assert isinstance(result.exception, SystemExit), result.exception
    return Outcome(result)


def ok(runner: FlaskCliRunner, *args: str) -> Any:
    """Invoke ``keyswap ARGS --json``, require exit 0, and return the parsed output."""
    outcome = run(runner, *args)
    assert outcome.code == 0, (outcome.stdout, outcome.stderr)
    assert outcome.stderr == ""
    return outcome.data


def refused(runner: FlaskCliRunner, *args: str) -> str:
    """Invoke ``keyswap ARGS --json``, require a domain error (exit 1), return its message."""
    outcome = run(runner, *args)
    assert outcome.code == 1, (outcome.stdout, outcome.stderr)
    assert outcome.stdout == ""
    return outcome.error


def misused(runner: FlaskCliRunner, *args: str) -> str:
    """Invoke ``keyswap ARGS --json``, require a usage error (exit 2), return stderr."""
    outcome = run(runner, *args)
    assert outcome.code == 2, (outcome.stdout, outcome.stderr)
    assert outcome.stdout == ""
    return outcome.stderr
