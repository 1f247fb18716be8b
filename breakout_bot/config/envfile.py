"""The .env file: read with python-dotenv's own parser, never into os.environ (it cannot leak into child
processes or into libraries that read the environment), values taken literally (no ``${VAR}``
interpolation: a secret containing ``$`` must survive). A line python-dotenv would only warn about and
drop is an error here: a dropped line could be the one setting a risk limit."""

from __future__ import annotations

import difflib
import io
from collections.abc import Callable, Sequence
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream


def read_dotenv(path: Path, required: bool) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """Values, key → line number, problems. Missing file: fine unless ``required`` (--env-file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, {}, ([f"--env-file: {path} does not exist"] if required else [])
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a readable UTF-8 file"
        return {}, {}, [f"{path}: cannot read: {reason}"]
    problems: list[str] = []
    lines: dict[str, int] = {}
    # python-dotenv only *warns* about lines it cannot parse and drops them; a dropped line could be
    # the one setting a risk limit, so we run its parser ourselves and make that an error (also a
    # bare "KEY" with no "=", which it silently accepts). The line text is never shown: it may hold
    # a secret.
    for binding in parse_stream(io.StringIO(text)):
        raw_text = binding.original.string
        # a binding's text starts with the blank lines before it: report the line of the statement
        line = binding.original.line + raw_text[: len(raw_text) - len(raw_text.lstrip())].count("\n")
        if binding.error or (binding.key is not None and binding.value is None):
            problems.append(f"{path} line {line}: cannot parse (expected KEY=VALUE, a # comment or blank)")
        elif binding.key is not None:
            lines[binding.key] = line
    if problems:
        return {}, {}, problems
    raw = dotenv_values(stream=io.StringIO(text), interpolate=False)
    values = {k: v for k, v in raw.items() if v is not None}
    return values, lines, []


def typo_problems(
    names: Sequence[str],
    where: Callable[[str], str],
    env_vars: Sequence[str],
    warnings: list[str] | None = None,
) -> list[str]:
    """Unknown BREAKOUT_ variables. One close to a known name is almost surely a typo that would silently
    disable a setting (BREAKOUT_MAX_DAILY_LOS): an error, with a "did you mean". Any other unknown
    BREAKOUT_ name is appended to `warnings` (it is ignored, and said so)."""
    prefix = "BREAKOUT_"
    known = [e[len(prefix) :] for e in env_vars if e.startswith(prefix)]
    out = []
    for name in names:
        if not name.startswith(prefix) or name in env_vars:
            continue
        if name == "BREAKOUT_LIVE":
            out.append(f"{where(name)}: live trading is enabled only by the --live flag, never by a variable")
            continue
        close = difflib.get_close_matches(name[len(prefix) :], known, n=1, cutoff=0.66)
        if close:
            out.append(f"{where(name)}: unknown variable (did you mean {prefix}{close[0]}?)")
        elif warnings is not None:
            warnings.append(f"{where(name)}: unknown variable, ignored (.env.example lists the known ones)")
    return out
