"""Virtual-key tokens: where the operator keeps a generated token, and how it is hashed.

The gateway only ever sees `tokenSHA256`; the token itself lives in a Secret. These names are
shared by the renderer (which reads the Secret) and the handler that writes it.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = [
    "PREVIOUS_TOKEN_KEY",
    "TOKEN_KEY",
    "TOKEN_PREFIX",
    "generated_secret_name",
    "new_token",
    "token_sha256",
]

TOKEN_KEY = "token"
"""The Secret entry holding the current token (generated Secrets, and the default key)."""

PREVIOUS_TOKEN_KEY = "previousToken"
"""The entry holding the token being rotated out; both work until the operator drops it."""

TOKEN_PREFIX = "tg-"


def generated_secret_name(virtual_key: str) -> str:
    """The Secret the operator generates for a VirtualKey without a token of its own."""
    return f"tollgate-vk-{virtual_key}"


def new_token() -> str:
    """A fresh bearer token: 256 random bits, prefixed so leaked tokens are recognisable."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: bytes | str) -> str:
    """What the gateway compares: the hex SHA-256 of the token, surrounding whitespace removed
    (a Secret made with `--from-file` often ends in a newline no client ever sends)."""
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw.strip()).hexdigest()
