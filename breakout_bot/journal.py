"""The fill journal: every fill exactly once, durable before the bot relies on it; past_trades.json.

The ledger is a sqlite database beside the journal (``past_trades.json.sqlite``, WAL, ``synchronous=FULL``,
primary key on Alpaca's execution id). Invariant 4 of the design ("each fill is journaled exactly once,
also across crashes and restarts") rests on:

* idempotency: ``INSERT OR IGNORE`` on the primary key (the stream and REST reconciliation both
  report the same fill);
* durability: an append returns only once its transaction is committed and the WAL fsynced, so a
  kill -9 (or a power cut) after it keeps the fill; before it, the broker still has it and the next
  start's reconcile records it. One append costs O(log n), not a rewrite of the whole history;
* cross-process safety: sqlite's own locks (``BEGIN IMMEDIATE``); a running bot also ``claim``s the
  journal (an advisory ``flock`` on ``past_trades.json.lock``) for its whole run, so a second bot on
  the same journal is refused with one line instead of trading beside it.

``past_trades.json`` stays the file users read: a JSON list of the ledger's records in the order they
were recorded, rewritten atomically (temp file, fsync, ``os.replace``, directory fsync) from the
ledger by an exporter thread a moment after each append, never on the caller's thread, and at
`close()`. It may lag the ledger by that moment (after a kill -9, until the next start). A journal
from before the ledger (or records added to the file by hand) is merged in: records in the file but
not in the ledger are inserted on the next write (`ensure_writable`, at the bot's start), so existing
journals migrate without a step. A corrupt file is moved aside (never overwritten) with one line; so
is a corrupt ledger.

Each record is tagged with where it happened: ``mode`` (simulator, paper or live), ``account`` (the
broker's account number) and ``run`` (the bot run that recorded it; the run's start line in the log
carries its mode, account, symbols and parameters under the same id). Records written before these
tags existed have none (None) and stay readable. Readers that must not change anything (``breakout-bot
trades``) use `read_journal`: the ledger and the file read-only, no lock file, and a corrupt file is
reported, never moved.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring_ascii
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
        # _FIELDS, not dataclasses.fields(): a start reads 100k records, and fields() was most of it.
        for name in _FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) and not (value is None and name in _OPTIONAL):
                raise ValueError(f"{name}: expected a string, got {value!r}")
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
        return {name: getattr(self, name) for name in _FIELDS}

    @property
    def filled_at(self) -> datetime:
        """The fill's time, tz-aware: its RFC 3339 timestamp read (any number of fractional digits:
        Alpaca's have nine; Python 3.10's fromisoformat takes three or six)."""
        text = self.timestamp
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        head, dot, rest = text.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = f"{head}.{(rest[:digits] + '000000')[:6]}{rest[digits:]}"
        return datetime.fromisoformat(text)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FillRecord:
        """Build from a JSON object. Raises ValueError naming the bad field.

        Unknown keys are ignored (a newer version may add fields); note they are dropped on the next write.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for name in _FIELDS:
            if name in data:
                values[name] = data[name]
            elif name not in _DEFAULTED:
                raise ValueError(f"missing field {name!r}")
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


_FIELDS = tuple(f.name for f in fields(FillRecord))
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fills (id TEXT PRIMARY KEY NOT NULL, "
    + ", ".join(f"{name} TEXT" for name in _FIELDS[1:])
    + ")"
)
_INSERT = f"INSERT OR IGNORE INTO fills ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})"
# rowid order is insertion order: rows are never deleted, so each new rowid is the largest plus one.
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM fills ORDER BY rowid"
_SELECT_AFTER = f"SELECT rowid, {', '.join(_FIELDS)} FROM fills WHERE rowid > ? ORDER BY rowid"
_RECORD_TEMPLATE = (
    "  {\n" + ",\n".join(f"    {encode_basestring_ascii(name)}: %s" for name in _FIELDS) + "\n  }"
)
_WRITE_SLICE = 500  # records per write of the export (~200 kB)
EXPORT_DELAY = 0.25  # s: appends within it share one export of past_trades.json
_Stamp = tuple[int, int, int, int]


def ledger_path(path: Path) -> Path:
    """The sqlite ledger behind a journal file (its WAL and shm files sit beside it)."""
    path = Path(path)
    return path.with_name(path.name + ".sqlite")


def read_journal(path: Path) -> list[FillRecord]:
    """The journal's records for a reader that changes nothing: no lock file is created and a corrupt
    file stays where it is (JournalError says what is wrong). A missing file is an empty journal.
    The ledger's records first (in the order recorded), then any the file holds that it does not."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    # The file's bytes first, then the ledger: a record the ledger takes in meanwhile is in one or the
    # other (the file only ever grows, by exports of the ledger).
    db = ledger_path(path)
    in_ledger: list[FillRecord] = []
    if db.exists():
        try:
            in_ledger = _read_ledger(db)
        except (sqlite3.Error, ValueError) as exc:
            raise JournalError(f"cannot read the ledger {db}: {exc}; left as it is") from None
    try:
        in_file, _ = _parse(raw, known={r.id for r in in_ledger})
    except ValueError as exc:
        raise JournalError(
            f"journal {path} is corrupt ({exc}); left as it is: fix it, or start the bot, which moves it "
            "aside and records today's fills again from the broker"
        ) from None
    return in_ledger + in_file


def _record_from_row(row: tuple[Any, ...]) -> FillRecord:
    # Not validated again: the ledger only ever takes validated records (`extend`, `_import_file`),
    # and a start reads all of them (100k: ~1 s of __post_init__ saved).
    record = object.__new__(FillRecord)
    record.__dict__.update(zip(_FIELDS, row, strict=True))
    return record


def _read_ledger(db: Path) -> list[FillRecord]:
    """All records of a ledger, opened read-only (a reader in a read-only folder: immutable)."""
    try:
        return _select_all(f"{db.resolve().as_uri()}?mode=ro")
    except sqlite3.OperationalError:
        if os.access(db.parent, os.W_OK):
            raise
        return _select_all(f"{db.resolve().as_uri()}?immutable=1")


def _select_all(uri: str) -> list[FillRecord]:
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        # A ledger another process has just created may not have its table yet: empty, not an error.
        if (
            conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fills'").fetchone()
            is None
        ):
            return []
        return [_record_from_row(row) for row in conn.execute(_SELECT)]


class _Corrupt(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


_open_journals: weakref.WeakSet[Journal] = weakref.WeakSet()


@atexit.register
def _export_open_journals() -> None:
    # A process that ends without close() still leaves past_trades.json up to date (kill -9 aside).
    for journal in list(_open_journals):
        with contextlib.suppress(Exception):
            journal.close()


class Journal:
    """The fill journal. Thread-safe; safe to share between processes (sqlite's locks).

    ``has()``/``records()`` answer from memory (what this process last read or wrote, refreshed from
    the ledger when another writer changed it); ``append()`` and ``extend()`` write the ledger, and
    ``past_trades.json`` follows off the caller's thread (`flush()` waits for it).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.ledger_path = ledger_path(self.path)
        self._lock = threading.RLock()
        self._records: list[FillRecord] = []
        self._ids: set[str] = set()
        self._pending: list[FillRecord] = []  # in the file, not yet in the ledger (migration)
        self._loaded = False
        self._stale = False  # the exporter put records from the file into the ledger
        self._db: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._claim_fd: int | None = None  # held by claim() for a bot's whole run
        # The exporter: its own thread and sqlite connection, so an append never waits on it.
        self._export_lock = threading.Lock()
        self._export_wanted = threading.Event()
        self._export_done = threading.Condition()
        self._export_seq = 0  # appends asking for an export
        self._exported_seq = 0  # the newest of them an export has covered
        self._export_error: str | None = None
        self._export_failures = 0
        self._export_seconds = 0.0  # how long the last rewrite of the file took
        self._exporter: threading.Thread | None = None
        self._file_stamp: _Stamp | None = None  # the file as we last read or wrote it
        self._chunks: list[bytes] = []  # each exported record's JSON text, in rowid order
        self._chunks_rowid = 0  # the last rowid in _chunks
        self._closed = False

    # -- reading -------------------------------------------------------------------------------

    def load(self) -> list[FillRecord]:
        """Read the ledger and the file (both missing → empty). Corrupt → moved aside and JournalError."""
        with self._lock:
            in_ledger = self._read_own_ledger()
            ids = {r.id for r in in_ledger}
            # Records the ledger holds are not parsed out of the file again, only counted.
            self._pending, in_file, stamp = self._read_file(ids)
            self._set(in_ledger + self._pending)
            self._file_stamp = stamp
            if self.ledger_path.exists() and in_file - len(self._pending) < len(in_ledger):
                self._request_export()  # the file lags the ledger (a kill -9 before its export)
            return list(self._records)

    def ensure_writable(self) -> None:
        """Prove now, before any order, that fills can be recorded: open (or create) the ledger,
        migrate what only the file holds into it, and write a temp file in the journal's folder (as
        each export does), then write past_trades.json. A journal that can't be written must stop us at
        start, not lose a fill."""
        directory = self.path.parent
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{self.path.name}.probe-"):
                pass
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise PermissionError(f"{self.path} is read-only")
        except OSError as exc:
            raise JournalError(f"journal {self.path} is not writable: {exc.strerror or exc}") from None
        self.extend([])  # creates the ledger, or proves it takes a write; migrates the file's records
        # A migration leaves a long WAL; folded into the database now, the appends' commits never pay
        # for it (an autocheckpoint retried at each commit while the WAL stays long).
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._writer().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # Now, before any order: brings a file left behind by a kill -9 up to date, and serializes the
        # history once, so later exports only add the new records.
        self._export()

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
        """Bring past_trades.json up to date, then let another bot claim the journal (the lock file
        stays: removing it would race)."""
        self.close()
        with self._lock:
            if self._claim_fd is not None:
                os.close(self._claim_fd)
                self._claim_fd = None

    # -- writing -------------------------------------------------------------------------------

    def append(self, record: FillRecord) -> bool:
        """Add one fill; False if its id is already journaled (idempotent)."""
        return self.extend([record]) == 1

    def extend(self, records: Iterable[FillRecord]) -> int:
        """Add the fills not yet journaled, in order, in one committed (durable) transaction. Returns
        how many were added. On a write error nothing is added, so the caller may retry later."""
        new = list(records)
        with self._lock:
            self._ensure_loaded()
            db = self._writer()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    if self._changed_by_others(db):
                        self._reload(db)
                    for r in self._pending:
                        db.execute(_INSERT, _row(r))
                    added: list[FillRecord] = []
                    added_ids: set[str] = set()
                    for r in new:
                        if r.id in self._ids or r.id in added_ids:
                            continue
                        if db.execute(_INSERT, _row(r)).rowcount == 1:
                            added.append(r)
                            added_ids.add(r.id)
                    db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise JournalError(f"cannot write journal {self.ledger_path}: {exc}") from None
            self._data_version = _data_version(db)
            migrated = bool(self._pending)
            self._pending = []
            self._records.extend(added)
            self._ids.update(r.id for r in added)
            if added or migrated:
                self._request_export()
            return len(added)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until past_trades.json holds every record appended so far (JournalError if the export
        fails: the records are safe in the ledger, the file is behind)."""
        with self._export_done:
            wanted, failures = self._export_seq, self._export_failures
            if self._exported_seq >= wanted:
                return
            self._export_done.wait_for(
                lambda: self._exported_seq >= wanted or self._export_failures > failures, timeout
            )
            if self._exported_seq < wanted:
                problem = self._export_error or f"not written within {timeout:.0f} s"
                raise JournalError(f"cannot write journal {self.path}: {problem}")

    def close(self) -> None:
        """Write past_trades.json now if it is behind (on this thread), stop the exporter, close the ledger."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        exporter = self._exporter
        if exporter is not None:
            self._export_wanted.set()
            exporter.join(60)
        if self._exported_seq < self._export_seq:
            try:
                self._export()
            except JournalError as exc:
                log.error("%s", exc)
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._exporter = None
            self._closed = False  # usable again: the next append reopens the ledger
        _open_journals.discard(self)

    # -- internals -----------------------------------------------------------------------------

    def _set(self, records: list[FillRecord]) -> None:
        self._records = list(records)
        self._ids = {r.id for r in records}
        self._loaded = True
        self._stale = False

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()
        elif self._stale and self._db is not None:
            self._reload(self._db)

    def _reload(self, db: sqlite3.Connection) -> None:
        in_ledger = [_record_from_row(row) for row in db.execute(_SELECT)]
        ids = {r.id for r in in_ledger}
        self._pending = [r for r in self._pending if r.id not in ids]
        self._set(in_ledger + self._pending)

    def _changed_by_others(self, db: sqlite3.Connection) -> bool:
        # data_version moves when another connection (a process, or our exporter) commits.
        return self._stale or _data_version(db) != self._data_version

    def _writer(self) -> sqlite3.Connection:
        """The ledger's connection for appends (created, with its schema, on first use)."""
        if self._db is not None:
            return self._db
        try:
            fd = os.open(self.ledger_path, os.O_RDWR | os.O_CREAT, 0o644)  # an OSError names the cause
            os.close(fd)
            db = _connect(self.ledger_path)
            db.execute(_SCHEMA)
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror or exc}") from None
        except sqlite3.DatabaseError as exc:
            self._corrupt_ledger(str(exc))
        self._db = db
        self._data_version = None  # read (and compared) inside the first transaction
        return db

    def _read_own_ledger(self) -> list[FillRecord]:
        if not self.ledger_path.exists():
            return []
        if self._db is None and os.access(self.ledger_path.parent, os.W_OK):
            # Read through the appends' own connection: its data_version then says the first append
            # needs no second read of the whole ledger.
            self._writer()
        try:
            if self._db is not None:
                self._data_version = _data_version(self._db)
                return [_record_from_row(row) for row in self._db.execute(_SELECT)]
            return _read_ledger(self.ledger_path)
        except sqlite3.OperationalError as exc:
            raise JournalError(f"cannot read the ledger {self.ledger_path}: {exc}") from None
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            self._corrupt_ledger(str(exc))

    def _corrupt_ledger(self, problem: str) -> NoReturn:
        """Move a corrupt ledger (and its WAL) aside; the next start rebuilds it from the file and
        the broker's fills."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        target = _aside(self.ledger_path)
        try:
            for suffix in ("-wal", "-shm", ""):
                source = Path(f"{self.ledger_path}{suffix}")
                if source.exists():
                    os.replace(source, Path(f"{target}{suffix}"))
        except OSError as exc:
            raise JournalError(
                f"ledger {self.ledger_path} is corrupt ({problem}) and could not be moved aside: "
                f"{exc.strerror or exc}; fix or remove it"
            ) from None
        log.error(
            "ledger %s is corrupt (%s); moved to %s",
            self.ledger_path,
            problem,
            target,
            extra={"console": False},
        )
        raise JournalError(
            f"ledger {self.ledger_path} was corrupt ({problem}); moved it to {target}; "
            "start again (it is rebuilt from past_trades.json, and fills are reconciled from the broker)"
        )

    # -- the file: reading, moving a corrupt one aside, the export -------------------------------

    def _read_file(self, known: Collection[str] = ()) -> tuple[list[FillRecord], int, _Stamp | None]:
        """Read and validate the file (see `_parse`); a corrupt one is moved aside (under the file
        lock) and raises."""
        try:
            return self._read_once(known)
        except _Corrupt:
            pass
        # Re-check under the lock: another process may have replaced the file since we read it, and
        # we must never move a good file aside.
        with self._file_lock(required=False):
            try:
                return self._read_once(known)
            except _Corrupt as exc:
                self._move_aside(exc.problem)
                raise  # unreachable: _move_aside raises

    def _read_once(self, known: Collection[str] = ()) -> tuple[list[FillRecord], int, _Stamp | None]:
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                raw = fh.read()
        except FileNotFoundError:
            return [], 0, None
        except OSError as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc.strerror or exc}") from None
        try:
            records, count = _parse(raw, known)
        except ValueError as exc:
            raise _Corrupt(str(exc)) from None
        return records, count, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _move_aside(self, problem: str, *, quiet: bool = False) -> None:
        """Rename a corrupt journal out of the way (never overwrite it) and raise JournalError
        (quiet: log it only, for the exporter, whose ledger still holds every record)."""
        target = _aside(self.path)
        try:
            os.replace(self.path, target)
        except OSError as exc:
            raise JournalError(
                f"journal {self.path} is corrupt ({problem}) and could not be moved aside: "
                f"{exc.strerror or exc}; fix or remove it"
            ) from None
        self._file_stamp = None
        # File only: the JournalError raised below is the one line the terminal shows.
        log.error(
            "journal %s is corrupt (%s); moved to %s", self.path, problem, target, extra={"console": False}
        )
        if quiet:
            return
        raise JournalError(
            f"journal {self.path} was corrupt ({problem}); moved it to {target}; "
            "check it, then start again (fills are reconciled from the broker)"
        )

    def _request_export(self) -> None:
        with self._export_done:
            self._export_seq += 1
        _open_journals.add(self)
        if self._exporter is None or not self._exporter.is_alive():
            if self._closed:
                return
            self._exporter = threading.Thread(
                target=self._export_loop, name=f"journal-export {self.path.name}", daemon=True
            )
            self._exporter.start()
        self._export_wanted.set()

    def _export_loop(self) -> None:
        while True:
            self._export_wanted.wait()
            if not self._closed:
                self._export_wanted.clear()
                # Coalesce: the appends of one burst (a bracket's legs, a reconcile) share one export,
                # and a long history is rewritten at most a fifth of the time.
                threading.Event().wait(max(EXPORT_DELAY, 4 * self._export_seconds))
            with self._export_done:
                behind = self._exported_seq < self._export_seq
            try:
                if behind:  # else an earlier export of this burst covered it
                    self._export()
            except JournalError as exc:
                log.error("%s (the fills are in %s)", exc, self.ledger_path)
                threading.Event().wait(1.0)  # retried on the next append or at close
            if self._closed:
                return

    def _export(self) -> None:
        """Rewrite past_trades.json from the ledger (first taking in records only the file holds)."""
        with self._export_lock, self._file_lock():
            with self._export_done:
                covering = self._export_seq
            try:
                conn = _connect(self.ledger_path)
            except sqlite3.Error as exc:
                self._export_failed(str(exc))
            try:
                self._import_file(conn)
                # Rows are never deleted and rowids only grow: only the new ones need serializing,
                # so a burst at 100k records costs a join and a write, not 100k json.dumps.
                rows = conn.execute(_SELECT_AFTER, (self._chunks_rowid,)).fetchall()
            except (sqlite3.Error, JournalError) as exc:
                self._export_failed(str(exc))
            finally:
                conn.close()
            whole = self._chunks_rowid == 0  # this export serializes the whole history
            for rowid, *values in rows:
                self._chunks.append(_export_text(values))
                self._chunks_rowid = rowid
            self._cleanup_stale_temps()
            started = time.monotonic()
            try:
                # A start on a file that is up to date (30 MB at 100k records) does not rewrite it.
                if not (whole and self._file_holds(self._chunks)):
                    self._file_stamp = self._write(self._chunks)
                self._export_seconds = time.monotonic() - started
            except JournalError as exc:
                self._export_failed(str(exc))
            with self._export_done:
                self._export_error = None
                self._exported_seq = max(self._exported_seq, covering)
                self._export_done.notify_all()

    def _export_failed(self, problem: str) -> NoReturn:
        with self._export_done:
            self._export_error = problem
            self._export_failures += 1
            self._export_done.notify_all()
        raise JournalError(f"cannot write journal {self.path}: {problem}")

    def _import_file(self, conn: sqlite3.Connection) -> None:
        """Records someone put in the file since we last wrote it (a hand edit, an older breakout-bot)
        go into the ledger before the file is rewritten; a corrupt file is moved aside, not lost."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) == self._file_stamp:
            return
        try:
            in_file, _, _ = self._read_once()
        except _Corrupt as exc:
            self._move_aside(exc.problem, quiet=True)
            return
        with conn:
            added = sum(conn.execute(_INSERT, _row(r)).rowcount for r in in_file)
        if added:
            self._stale = True

    @contextlib.contextmanager
    def _file_lock(self, required: bool = True) -> Iterator[None]:
        """Advisory exclusive flock on the .lock file around a rewrite or a move of the file.

        Not while this process holds its claim (the claim is that lock). ``required=False``: proceed
        unlocked if the lock file cannot be created (a read-only directory can still be read).
        """
        if fcntl is None or self._claim_fd is not None:
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
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _cleanup_stale_temps(self) -> None:
        # Only under the flock: every writer holds it while its temp file exists, so any temp file
        # seen now is debris from a process that died mid-write.
        if fcntl is None:  # pragma: no cover - Windows
            return
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _file_holds(self, chunks: list[bytes]) -> bool:
        """Whether past_trades.json is, byte for byte, what an export of `chunks` would write."""
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                raw = fh.read()
        except OSError:
            return False
        if raw != b"".join(_file_slices(chunks)):
            return False
        self._file_stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        return True

    def _write(self, chunks: list[bytes]) -> _Stamp | None:
        directory = self.path.parent
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "wb") as fh:
                for piece in _file_slices(chunks):
                    fh.write(piece)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            tmp = None
            _fsync_dir(directory)
            st = os.stat(self.path)
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _export_text(values: Iterable[str | None]) -> bytes:
    """One record (its values in _FIELDS order) as json.dumps(records, indent=2) writes it inside the
    list, byte for byte: the C string encoder json.dumps uses (ensure_ascii) on each value, several
    times faster than json.dumps(record, indent=2), whose indenting encoder is pure Python."""
    return (
        _RECORD_TEMPLATE % tuple(["null" if v is None else encode_basestring_ascii(v) for v in values])
    ).encode()


def _file_slices(chunks: list[bytes]) -> Iterator[bytes]:
    # What json.dumps(records, indent=2) writes, from each record's own (cached) text, in slices:
    # one join of a long history would hold the GIL (the runner's thread) for tens of ms.
    if not chunks:
        yield b"[]\n"
        return
    for start in range(0, len(chunks), _WRITE_SLICE):
        head = b"[\n" if start == 0 else b",\n"
        yield head + b",\n".join(chunks[start : start + _WRITE_SLICE])
    yield b"\n]\n"


def _connect(db: Path) -> sqlite3.Connection:
    # WAL: appends are one sequential write, readers (the exporter, `trades`) never block them;
    # synchronous=FULL: the WAL is fsynced at every commit, so a committed fill survives a power cut.
    conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _data_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def _row(record: FillRecord) -> tuple[str | None, ...]:
    return tuple(getattr(record, name) for name in _FIELDS)


def _aside(path: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = path.with_name(f"{path.name}.corrupt-{stamp}")
    target = base
    n = 1
    while target.exists():  # two corruptions in one second: never clobber the first copy
        target = base.with_name(f"{base.name}-{n}")
        n += 1
    return target


def _parse(raw: bytes, known: Collection[str] = ()) -> tuple[list[FillRecord], int]:
    """Parse the file's bytes: its records but those whose id is `known` (the ledger has them: they
    are counted, not validated again), and how many records it holds. ValueError with a short
    reason if it is not a list of valid records."""
    if not raw.strip():  # e.g. `touch past_trades.json`: holds nothing that could be lost
        return [], 0
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list, got {type(data).__name__}")
    records: list[FillRecord] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        fill_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(fill_id, str) and fill_id in known and fill_id not in seen:
            seen.add(fill_id)
            continue
        try:
            record = FillRecord.from_dict(item)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"record {i}: {exc}") from None
        if record.id in seen:  # harmless (e.g. a hand merge): keep the first
            log.warning("journal: duplicate fill id %s at record %d ignored", record.id, i)
            continue
        seen.add(record.id)
        records.append(record)
    return records, len(seen)


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
