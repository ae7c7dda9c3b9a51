"""The one exception parsers raise: a file that cannot be read, with a stable code."""

from __future__ import annotations

from typing import Any


class FileProblem(Exception):
    """Raised when a whole file cannot be read; `code` names the reason.

    Codes are kebab-case and stable (`encrypted-file`, `unsafe-path` ...) because
    rules map each to a message for the submitter. `detail` holds the values the
    message quotes.
    """

    def __init__(self, code: str, **detail: Any) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        extra = ", ".join(f"{key}={value!r}" for key, value in self.detail.items())
        return f"{self.code} ({extra})" if extra else self.code
