"""What every command prints through: the two consoles (stdout, stderr) and the one way to end a
command on an error (`fail`). Tests that run a command in-process replace `out` and `err` here."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from pathways.errors import Problem, errors


out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command: `message` on stderr as written (no markup), exit status `code` (1: a problem
    in the input, 2: wrong usage of the command)."""
    err.print(message, markup=False)
    raise typer.Exit(code)


def fail_all(messages: list[str], code: int = 1) -> NoReturn:
    """End the command with every message, one per line (every problem at once, never the first
    only), exit status ``code``."""
    for message in messages[:-1]:
        err.print(message, markup=False)
    fail(messages[-1] if messages else "error: the input was refused", code)


def print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        err.print(str(problem), markup=False)


def fail_with_problems(problems: list[Problem]) -> NoReturn:
    print_problems(problems)
    failing = errors(problems)
    noun = "problem" if len(failing) == 1 else "problems"
    warned = len(problems) - len(failing)
    also = f", {warned} warning{'s' if warned > 1 else ''}" if warned else ""
    fail(f"{len(failing)} {noun} found{also}")
