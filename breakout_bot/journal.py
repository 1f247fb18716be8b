"""past_trades.json: every fill exactly once, written atomically.

The file is a JSON list of fill records keyed by Alpaca's execution id. Invariant 4 of the design
("each fill is in past_trades.json exactly once, also across crashes and restarts") rests on three
things done here:

* idempotency: a record whose id is already present is not appended again (the stream and REST
  reconciliation both report the same fill);
* atomicity: the whole list is written to a temp file in the same directory, fsynced, then
  ``os.replace``-d over the old file and the directory fsynced, so a crash leaves either the old or
  the new file, never half of one;
* cross-process safety: read-modify-write happens under an advisory ``flock`` on
  ``past_trades.json.lock`` and re-reads the file first, so two writers never drop each other's
  records; a running bot also ``claim``s the journal for its whole run, so a second bot on the same
  journal is refused with one line instead of trading beside it.

Each record is tagged with where it happened: ``mode`` (simulator, paper or live), ``account`` (the
broker's account number) and ``run`` (the bot run that recorded it; the run's start line in the log
carries its mode, account, symbols and parameters under the same id). Records written before these
tags existed have none (None) and stay readable. Readers that must not change anything (``breakout-bot
trades``) use `read_journal`: no lock file, and a corrupt file is reported, never moved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from breakout_bot.errors import JournalError

try:  # POSIX only; elsewhere we fall back to the in-process lock alone.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SIDES = ("buy", "sell")
LEGS = ("entry", "take_profit", "stop_loss", "flatten", "unknown")
SOURCES = ("stream", "rest")
MODES = ("simulator", "paper", "live")

# RFC 3339 as Alpaca sends it (fractional seconds up to nanoseconds, 'Z' or an offset).
_TAGS = ("mode", "account", "run")  # absent from records written before issue 17
_DEFAULTED = ("leg", "source", "cum_qty", *_TAGS)  # may be absent from a record
_OPTIONAL = ("cum_qty", *_TAGS)  # may be null
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class FillRecord:
    """One execution (a partial or full fill). ``qty``/``price`` stay decimal strings, as Alpaca sends them."""

    id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: str
    price: str
    timestamp: str
    leg: str = "unknown"
    source: str = "stream"
    # The order's cumulative filled qty after this execution (Alpaca's position_qty/filled_qty at the
    # time). Stream and REST agree on it even where their ids differ, so the runner keys on it.
    cum_qty: str | None = None
    # Where the fill happened (RunTags); None in records written before the tags existed.
    mode: str | None = None
    account: str | None = None
    run: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) and not (f.name in _OPTIONAL and value is None):
                raise ValueError(f"{f.name}: expected a string, got {value!r}")
        if not self.id:
            raise ValueError("id: must not be empty")
        if not self.symbol:
            raise ValueError("symbol: must not be empty")
        if self.side not in SIDES:
            raise ValueError(f"side: expected one of {', '.join(SIDES)}, got {self.side!r}")
        if self.leg not in LEGS:
            raise ValueError(f"leg: expected one of {', '.join(LEGS)}, got {self.leg!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source: expected one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("qty", "price", "cum_qty"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                number = Decimal(value)
            except InvalidOperation:
                raise ValueError(f"{name}: expected a decimal string, got {value!r}") from None
            if not number.is_finite() or number <= 0:
                raise ValueError(f"{name}: expected a positive decimal, got {value!r}")
        if not _RFC3339.match(self.timestamp):
            raise ValueError(f"timestamp: expected RFC 3339, got {self.timestamp!r}")

    def to_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FillRecord:
        """Build from a JSON object. Raises ValueError naming the bad field.

        Unknown keys are ignored (a newer version may add fields); note they are dropped on the next write.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                values[f.name] = data[f.name]
            elif f.name not in _DEFAULTED:
                raise ValueError(f"missing field {f.name!r}")
        return cls(**values)


@dataclass(frozen=True)
class RunTags:
    """What every record of one bot run carries: its mode, the broker account and the run's id."""

    mode: str
    account: str
    run: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")


def new_run_id(now: datetime) -> str:
    """A run's id: its start (UTC, to the second) and random hex, sortable and unique."""
    return f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"


def read_journal(path: Path) -> list[FillRecord]:
    """The journal's records for a reader that changes nothing: no lock file is created and a corrupt
    file stays where it is (JournalError says what is wrong). A missing file is an empty journal."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    try:
        return _parse(raw)
    except ValueError as exc:
        raise JournalError(
            f"journal {path} is corrupt ({exc}); left as it is: fix it, or start the bot, which moves it "
            "aside and records today's fills again from the broker"
        ) from None


class _Corrupt(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class Journal:
    """The fill journal. Thread-safe; safe to share between processes on POSIX (advisory flock).

    ``has()``/``records()`` answer from memory (what this process last read or wrote); ``append()`` and
    ``extend()`` always re-read the file under the lock first if another process changed it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock = threading.RLock()
        self._records: list[FillRecord] = []
        self._ids: set[str] = set()
        # Identity of the file version held in memory; None = never read. Each write is a new inode
        # (os.replace) and the list only grows, so a changed stamp means "someone else wrote".
        self._stamp: tuple[int, int, int, int] | None = None
        self._loaded = False
        self._flock_held = False
        self._claim_fd: int | None = None  # held by claim() for a bot's whole run

    # -- reading -------------------------------------------------------------------------------

    def load(self) -> list[FillRecord]:
        """Read the file (missing → empty). Corrupt → moved aside and JournalError."""
        with self._lock:
            records, stamp = self._read_disk()
            self._set(records, stamp)
            return list(records)

    def ensure_writable(self) -> None:
        """Prove now, before any order, that fills can be recorded (a temp file in the journal's
        folder, as every write uses): a journal that can't be written must stop us at start, not lose a fill."""
        directory = self.path.parent
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{self.path.name}.probe-"):
                pass
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise PermissionError(f"{self.path} is read-only")
        except OSError as exc:
            raise JournalError(f"journal {self.path} is not writable: {exc.strerror or exc}") from None

    def records(self) -> list[FillRecord]:
        with self._lock:
            self._ensure_loaded()
            return list(self._records)

    def has(self, fill_id: str) -> bool:
        with self._lock:
            self._ensure_loaded()
            return fill_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            self._ensure_loaded()
            return len(self._records)

    # -- one bot per journal -------------------------------------------------------------------

    def claim(self, holder: str) -> None:
        """Hold the journal for this process until `release()` (or its exit): a second bot started on
        the same journal is refused here, with one line naming the first. `holder` (pid, what runs)
        is written into the lock file for that line. Idempotent."""
        with self._lock:
            if self._claim_fd is not None or fcntl is None:
                return
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise JournalError(f"cannot lock journal {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                other = os.read(fd, 300).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise JournalError(
                    f"journal {self.path} is in use by another breakout-bot ({other}); one journal per "
                    "bot: trade several symbols in one bot (--symbol AAPL --symbol MSFT), or give this "
                    "one its own --journal"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{holder}\n".encode())
            self._claim_fd = fd

    def release(self) -> None:
        """Let another bot claim the journal (the lock file stays: removing it would race)."""
        with self._lock:
            if self._claim_fd is not None:
                os.close(self._claim_fd)
                self._claim_fd = None

    # -- writing -------------------------------------------------------------------------------

    def append(self, record: FillRecord) -> bool:
        """Add one fill; False if its id is already journaled (idempotent)."""
        return self.extend([record]) == 1

    def extend(self, records: Iterable[FillRecord]) -> int:
        """Add the fills not yet journaled, in order, with a single write. Returns how many were added.

        On a write error the in-memory list is left as it was, so the caller may retry later.
        """
        new = list(records)
        with self._lock, self._file_lock():
            disk, stamp = self._read_disk() if self._changed_on_disk() else (self._records, self._stamp)
            # Keep what another process wrote (disk first, in its order) and anything we knew that
            # the file lost (deleted or moved aside), then the new records.
            merged = list(disk)
            seen = {r.id for r in merged}
            for r in self._records:
                if r.id not in seen:
                    merged.append(r)
                    seen.add(r.id)
            missing_from_disk = len(merged) > len(disk)
            added = 0
            for r in new:
                if r.id not in seen:
                    merged.append(r)
                    seen.add(r.id)
                    added += 1
            if added == 0 and not missing_from_disk:
                self._set(merged, stamp)
                return 0
            self._cleanup_stale_temps()
            new_stamp = self._write(merged)
            self._set(merged, new_stamp)
            return added

    # -- internals -----------------------------------------------------------------------------

    def _set(self, records: list[FillRecord], stamp: tuple[int, int, int, int] | None) -> None:
        self._records = list(records)
        self._ids = {r.id for r in records}
        self._stamp = stamp
        self._loaded = True

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def _stat_stamp(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _changed_on_disk(self) -> bool:
        return not self._loaded or self._stat_stamp() != self._stamp

    def _read_disk(self) -> tuple[list[FillRecord], tuple[int, int, int, int] | None]:
        """Read and validate the file; a corrupt one is moved aside (under the file lock) and raises."""
        try:
            return self._read_once()
        except _Corrupt:
            pass
        # Re-check under the lock: another process may have replaced the file since we read it, and
        # we must never move a good file aside.
        with self._file_lock(required=False):
            try:
                return self._read_once()
            except _Corrupt as exc:
                self._move_aside(exc.problem)

    def _read_once(self) -> tuple[list[FillRecord], tuple[int, int, int, int] | None]:
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                raw = fh.read()
        except FileNotFoundError:
            return [], None
        except OSError as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc.strerror or exc}") from None
        try:
            records = _parse(raw)
        except ValueError as exc:
            raise _Corrupt(str(exc)) from None
        return records, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _move_aside(self, problem: str) -> NoReturn:
        """Rename a corrupt journal out of the way (never overwrite it) and raise JournalError."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        target = base
        n = 1
        while target.exists():  # two corruptions in one second: never clobber the first copy
            target = base.with_name(f"{base.name}-{n}")
            n += 1
        try:
            os.replace(self.path, target)
        except OSError as exc:
            raise JournalError(
                f"journal {self.path} is corrupt ({problem}) and could not be moved aside: "
                f"{exc.strerror or exc}; fix or remove it"
            ) from None
        self._stamp = None
        # File only: the JournalError raised below is the one line the terminal shows.
        log.error(
            "journal %s is corrupt (%s); moved to %s", self.path, problem, target, extra={"console": False}
        )
        raise JournalError(
            f"journal {self.path} was corrupt ({problem}); moved it to {target}; "
            "check it, then start again (fills are reconciled from the broker)"
        )

    @contextlib.contextmanager
    def _file_lock(self, required: bool = True) -> Iterator[None]:
        """Advisory exclusive flock on the .lock file. Caller holds self._lock.

        flock conflicts between two descriptors of the same process too, so a nested call must not
        lock again: ``_flock_held`` makes it re-entrant. ``required=False``: proceed unlocked if the
        lock file cannot be created (a read-only directory can still be read).
        """
        if fcntl is None or self._flock_held or self._claim_fd is not None:
            yield
            return
        fd: int | None = None
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if required:
                raise JournalError(f"cannot write journal {self.path}: {exc.strerror or exc}") from None
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._flock_held = True
            yield
        finally:
            self._flock_held = False
            os.close(fd)  # closing releases the flock

    def _cleanup_stale_temps(self) -> None:
        # Only under the flock: every writer holds it while its temp file exists, so any temp file
        # seen now is debris from a process that died mid-write.
        if fcntl is None:  # pragma: no cover - Windows
            return
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _write(self, records: list[FillRecord]) -> tuple[int, int, int, int] | None:
        data = json.dumps([r.to_dict() for r in records], indent=2) + "\n"
        directory = self.path.parent
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            tmp = None
            _fsync_dir(directory)
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return self._stat_stamp()


def _parse(raw: bytes) -> list[FillRecord]:
    """Parse the file's bytes; ValueError with a short reason if it is not a list of valid records."""
    if not raw.strip():  # e.g. `touch past_trades.json`: holds nothing that could be lost
        return []
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list, got {type(data).__name__}")
    records: list[FillRecord] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        try:
            record = FillRecord.from_dict(item)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"record {i}: {exc}") from None
        if record.id in seen:  # harmless (e.g. a hand merge): keep the first
            log.warning("journal: duplicate fill id %s at record %d ignored", record.id, i)
            continue
        seen.add(record.id)
        records.append(record)
    return records


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Not possible on every platform/filesystem: best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
