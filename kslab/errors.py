"""Errors a learner can act on.

Every error kslab raises for bad input names the field that is wrong and how to fix it, in one
line. The CLI prints ``str(error)`` and exits 2 (bad input) or 1 (environment problem); it never
shows a traceback for these.
"""

from __future__ import annotations


class KslabError(Exception):
    """Base class: ``str(err)`` is a complete one-line message."""

    exit_code = 1

    def __init__(self, message: str):
        # one line, whatever the caller passed
        super().__init__(" ".join(str(message).split()))


class InputError(KslabError):
    """Bad input: a manifest, a flag, a name. Exit status 2."""

    exit_code = 2

    def __init__(self, where: str, problem: str, fix: str | None = None):
        self.where = where
        self.problem = problem
        self.fix = fix
        msg = f"{where}: {problem}" if where else problem
        if fix:
            msg += f"; {fix}"
        super().__init__(msg)


class EnvironmentProblem(KslabError):
    """The machine cannot do what was asked (no root, no iptables, no cluster). Exit status 1."""

    exit_code = 1


class AdmissionError(InputError):
    """An object the API server would refuse (without ``--as-is``)."""
