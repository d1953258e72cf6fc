"""Provider credentials: resolved from an env var or a mounted file, never printable."""

from __future__ import annotations

import os
from pathlib import Path

from tollgate.gateway.config.models import CredentialRef

__all__ = ["Secret", "resolve"]


class Secret:
    """Holds a credential; its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "[redacted]") if self._value else text

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def resolve(ref: CredentialRef) -> Secret | None:
    """The credential's value, or None when the variable or file is missing or empty."""
    if ref.env is not None:
        value = os.environ.get(ref.env, "")
    else:
        try:
            value = Path(ref.file or "").read_text("utf-8")
        except OSError:
            return None
    value = value.strip()
    return Secret(value) if value else None
