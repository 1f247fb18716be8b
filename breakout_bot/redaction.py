"""Secrets out of text: one redactor for the log, error messages, reprs and the terminal.

Secrets never appear in logs, errors, messages or reprs (the brief). Every place that could show one
goes through a `Redactor`: the log's filter (logging_setup.py), the configuration's error messages
(config/), the broker adapter's messages (broker/alpaca/), and the CLI's last line (cli/main.py).
"""

from __future__ import annotations

from collections.abc import Iterable

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
