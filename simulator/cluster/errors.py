"""The one error the model raises: a request CUCM refuses, with CUCM's text."""

from __future__ import annotations


class CucmError(Exception):
    """A request CUCM refuses; ``message`` is CUCM's own text (or the documented modelled text)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
