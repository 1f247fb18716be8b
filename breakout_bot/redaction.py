"""Secrets out of text: one redactor for the log, error messages, reprs and the terminal.

Secrets never appear in logs, errors, messages or reprs (the brief). Every place that could show one
goes through a `Redactor`: the log's filter (logging_setup.py), the configuration's error messages
(config/), the broker adapter's messages (broker/alpaca/), and the CLI's last line (cli/main.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"
# A shorter "secret" would shred every line and protect nothing.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces each of `secrets` (longest first, so a secret containing another goes whole) with ***."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        kept = {s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET_LENGTH}
        self.secrets: tuple[str, ...] = tuple(sorted(kept, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"


def mask_key_id(key_id: str | None) -> str | None:
    """'PKAB…(redacted)': enough to tell paper (PK) from live (AK) keys apart, no more."""
    if not key_id:
        return None
    return f"{key_id[:4]}…(redacted)" if len(key_id) >= 8 else MASK


def url_secrets(urls: Iterable[str]) -> list[str]:
    """The parts of URLs (apprise's notification URLs) that are credentials (tokens in the host or path, users,
    passwords, query values), and the URLs themselves: none of them may appear in a message."""
    out: list[str] = []
    for url in urls:
        out.append(url)
        parts = urlsplit(url)
        for piece in (parts.netloc, parts.username, parts.password, parts.hostname):
            if piece:
                out.append(unquote(piece))
        out.extend(unquote(p) for p in parts.path.split("/") if len(p) >= MIN_SECRET_LENGTH)
        for pair in parts.query.split("&"):
            _, _, value = pair.partition("=")
            if len(value) >= MIN_SECRET_LENGTH:
                out.append(unquote(value))
    return out


def url_scheme(url: str) -> str:
    """What an error may say about a notification URL: its scheme, never the rest (tokens)."""
    return (url.split("://", 1)[0] + "://…") if "://" in url else "(no scheme)"
