"""The journal: idempotent, ordered, durable, atomic, corrupt-safe, thread- and process-safe; the
sqlite ledger with past_trades.json as its export (written off the appending thread)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakout_bot import journal as journal_mod
from breakout_bot.errors import JournalError
from breakout_bot.journal import FillRecord, Journal


@pytest.fixture(autouse=True)
def quick_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_mod, "EXPORT_DELAY", 0.005)  # the tests wait on exports often


def fill(fid: str, **kw: str) -> FillRecord:
    base = dict(
        id=fid,
        order_id="ord-" + fid,
        client_order_id="AAPL-20240102-1",
        symbol="AAPL",
        side="buy",
        qty="100",
        price="187.15",
        timestamp="2024-01-02T14:41:00.123456789Z",
        leg="entry",
        source="stream",
    )
    base.update(kw)
    return FillRecord(**base)


def ids_on_disk(path: Path, *journals: Journal) -> list[str]:
    """past_trades.json's ids once the journals' exports have caught up."""
    for journal in journals:
        journal.flush()
    return [r["id"] for r in json.loads(path.read_text())]


# -- FillRecord ----------------------------------------------------------------------------------


def test_record_round_trip() -> None:
    r = fill("e1", side="sell", leg="stop_loss", source="rest", qty="37", price="0.1234")
    assert FillRecord.from_dict(r.to_dict()) == r
    assert r.to_dict()["qty"] == "37"
    with_cum = fill("e2", qty="40", cum_qty="140")
    assert FillRecord.from_dict(json.loads(json.dumps(with_cum.to_dict()))) == with_cum


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("side", "long"),
        ("leg", "exit"),
        ("source", "csv"),
        ("qty", "ten"),
        ("qty", "0"),
        ("price", "-1"),
        ("price", "NaN"),
        ("timestamp", "yesterday"),
        ("id", ""),
        ("cum_qty", "-3"),
    ],
)
def test_record_validation(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        fill("e1", **{field: value})


def test_record_from_dict_missing_field_and_defaults() -> None:
    d = fill("e1").to_dict()
    del d["leg"], d["source"], d["cum_qty"]
    r = FillRecord.from_dict({**d, "future_field": 1})  # unknown keys tolerated
    assert (r.leg, r.source, r.cum_qty) == ("unknown", "stream", None)
    del d["price"]
    with pytest.raises(ValueError, match="price"):
        FillRecord.from_dict(d)
    with pytest.raises(ValueError, match="string"):
        FillRecord.from_dict({**fill("e1").to_dict(), "qty": 100})


# -- basic behaviour -----------------------------------------------------------------------------


def test_missing_file_is_empty(tmp_path: Path) -> None:
    j = Journal(tmp_path / "past_trades.json")
    assert j.load() == []
    assert j.records() == []
    assert not j.has("x")
    assert not (tmp_path / "past_trades.json").exists()  # reading never creates it


def test_empty_list_file_and_blank_file(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    p.write_text("[]\n")
    assert Journal(p).load() == []
    p.write_text("")
    assert Journal(p).load() == []


def test_append_is_idempotent_and_ordered(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    assert j.append(fill("b")) is True
    assert j.append(fill("a")) is True
    assert j.append(fill("b", price="999")) is False  # same execution id: first wins
    assert j.has("a") and j.has("b")
    assert ids_on_disk(p, j) == ["b", "a"]
    assert j.records()[0].price == "187.15"
    # a fresh instance (a restart) sees the same and still refuses duplicates
    j2 = Journal(p)
    assert [r.id for r in j2.load()] == ["b", "a"]
    assert j2.append(fill("a")) is False
    assert j2.extend([fill("c"), fill("a"), fill("c"), fill("d")]) == 2
    assert ids_on_disk(p, j2) == ["b", "a", "c", "d"]


def test_appends_are_one_transaction_each_and_exports_coalesce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_mod, "EXPORT_DELAY", 0.25)
    j = Journal(tmp_path / "past_trades.json")
    calls: list[int] = []
    real = os.replace

    def counting_replace(src: str, dst: str) -> None:
        calls.append(1)
        real(src, dst)

    monkeypatch.setattr(journal_mod.os, "replace", counting_replace)
    assert j.extend([fill(str(i)) for i in range(50)]) == 50
    for i in range(50, 100):
        assert j.append(fill(str(i)))
    j.flush()
    assert 1 <= len(calls) <= 5  # a burst of appends shares a rewrite of past_trades.json
    assert j.extend([fill("1"), fill("2")]) == 0
    j.flush()
    assert ids_on_disk(tmp_path / "past_trades.json") == [str(i) for i in range(100)]
    before = len(calls)
    time.sleep(journal_mod.EXPORT_DELAY * 2)
    assert len(calls) == before  # nothing new: no rewrite at all
    j.close()


def test_append_is_durable_before_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The append returns with the fill in the ledger; the file follows on the exporter's thread."""
    p = tmp_path / "past_trades.json"
    gate = threading.Event()
    real = os.replace

    def slow_replace(src: str, dst: str) -> None:
        gate.wait(10)  # the export's rename: the disk is slow today
        real(src, dst)

    monkeypatch.setattr(journal_mod.os, "replace", slow_replace)
    j = Journal(p)
    t0 = time.perf_counter()
    assert j.append(fill("a"))
    assert time.perf_counter() - t0 < 2  # never waited on the export
    assert not p.exists()
    assert [r.id for r in journal_mod.read_journal(p)] == ["a"]  # readers see the ledger
    assert [r.id for r in Journal(p).load()] == ["a"]  # so does a restart
    gate.set()
    assert ids_on_disk(p, j) == ["a"]


def test_file_format_is_plain_json_list(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("e1"))
    j.flush()
    data = json.loads(p.read_text())
    assert data == [fill("e1").to_dict()]
    assert isinstance(data[0]["qty"], str) and isinstance(data[0]["price"], str)


# -- atomicity and write errors ------------------------------------------------------------------


def test_a_failed_export_keeps_the_file_and_the_fill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("a"))
    j.flush()
    before = p.read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_mod.os, "replace", boom)
    assert j.append(fill("b")) is True  # durable in the ledger: the export is what failed
    with pytest.raises(JournalError, match=r"cannot write journal .*No space left on device"):
        j.flush(timeout=5)
    assert p.read_bytes() == before  # the old file, whole
    assert [x.name for x in tmp_path.iterdir() if x.name.endswith(".tmp")] == []  # temp removed
    assert [r.id for r in journal_mod.read_journal(p)] == ["a", "b"]
    monkeypatch.undo()
    assert j.append(fill("c")) is True
    assert ids_on_disk(p, j) == ["a", "b", "c"]


class _FailingCommit:
    """The ledger's connection, with its commits failing as a full or broken disk makes them fail."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self.real.execute(sql, *args)

    def close(self) -> None:
        self.real.close()


def test_a_failed_commit_adds_nothing_and_a_retry_works(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("a"))
    real = j._db
    assert real is not None
    j._db = _FailingCommit(real)  # type: ignore[assignment]
    with pytest.raises(JournalError, match=r"cannot write journal .*disk I/O error") as info:
        j.extend([fill("b"), fill("c")])
    assert "\n" not in str(info.value)
    assert [r.id for r in j.records()] == ["a"]  # memory unchanged
    assert [r.id for r in journal_mod.read_journal(p)] == ["a"]  # rolled back: neither b nor c
    j._db = real
    assert j.extend([fill("b"), fill("c")]) == 2
    assert ids_on_disk(p, j) == ["a", "b", "c"]


def test_leftover_temp_from_crashed_writer_is_ignored_and_cleaned(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    first = Journal(p)
    first.append(fill("a"))
    first.close()
    # what a process killed between write and os.replace leaves behind: a half-written temp file
    leftover = tmp_path / ".past_trades.json.abc123.tmp"
    leftover.write_text('[{"id": "half')
    j = Journal(p)
    assert [r.id for r in j.load()] == ["a"]  # ignored on read
    j.append(fill("b"))
    assert ids_on_disk(p, j) == ["a", "b"]
    assert not leftover.exists()  # cleaned under the lock on the next write


def test_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    p = d / "past_trades.json"
    first = Journal(p)
    first.append(fill("a"))
    first.close()
    d.chmod(0o500)
    try:
        probe = d / "probe"
        try:  # root ignores permissions: then inject the error the kernel would give
            probe.write_text("x")
            probe.unlink()

            def denied(*a: object, **k: object) -> object:
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(journal_mod.tempfile, "NamedTemporaryFile", denied)
        except PermissionError:
            pass
        j = Journal(p)
        assert [r.id for r in j.load()] == ["a"]  # reading still works
        assert [r.id for r in journal_mod.read_journal(p)] == ["a"]
        with pytest.raises(JournalError) as info:
            j.ensure_writable()  # at the bot's start, before any order
        msg = str(info.value)
        assert "\n" not in msg and "Permission denied" in msg and str(p) in msg
        assert info.value.exit_code == 5
        assert ids_on_disk(p) == ["a"]
    finally:
        d.chmod(0o700)


# -- corruption ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '[{"id": "a", ',  # truncated
        '{"id": "a"}',  # not a list
        '[{"id": "a"}]',  # record missing fields
        "\x00\x01garbage",
        json.dumps([{**fill("a").to_dict(), "side": "long"}]),
    ],
)
def test_corrupt_file_is_moved_aside(tmp_path: Path, content: str) -> None:
    p = tmp_path / "past_trades.json"
    p.write_text(content)
    j = Journal(p)
    with pytest.raises(JournalError) as info:
        j.load()
    msg = str(info.value)
    assert "\n" not in msg
    aside = list(tmp_path.glob("past_trades.json.corrupt-*"))
    assert len(aside) == 1
    assert str(aside[0]) in msg
    assert aside[0].read_text() == content  # preserved byte for byte
    assert not p.exists()
    # next start: a fresh journal, and a second corruption never clobbers the first copy
    assert j.load() == []
    p.write_text("not json")
    with pytest.raises(JournalError):
        Journal(p).load()
    assert len(list(tmp_path.glob("past_trades.json.corrupt-*"))) == 2


def test_corrupt_file_found_while_running_is_moved_aside_and_rewritten(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("a"))
    j.flush()
    p.write_text("oops")  # someone broke the file while we run
    assert j.append(fill("b")) is True  # the ledger is intact: appends go on
    assert ids_on_disk(p, j) == ["a", "b"]  # the export rewrote it from the ledger
    aside = list(tmp_path.glob("past_trades.json.corrupt-*"))
    assert [x.read_text() for x in aside] == ["oops"]  # and kept the broken copy


def test_records_added_to_the_file_by_hand_are_kept(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("a"))
    j.flush()
    data = json.loads(p.read_text())
    p.write_text(json.dumps([*data, fill("hand").to_dict()]))  # an edit, or an older breakout-bot
    j.append(fill("b"))
    assert ids_on_disk(p, j) == ["a", "b", "hand"]  # taken into the ledger before the next rewrite
    assert j.has("hand")
    assert [r.id for r in Journal(p).load()] == ["a", "b", "hand"]


def test_a_corrupt_ledger_is_moved_aside_and_rebuilt_from_the_file(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.extend([fill("a"), fill("b")])
    j.close()
    ledger = journal_mod.ledger_path(p)
    ledger.write_bytes(b"SQLite format 3\x00" + os.urandom(3000))
    with pytest.raises(JournalError, match=r"ledger .* was corrupt") as info:
        Journal(p).load()
    assert "\n" not in str(info.value)
    assert len(list(tmp_path.glob("past_trades.json.sqlite.corrupt-*"))) == 1
    again = Journal(p)
    assert [r.id for r in again.load()] == ["a", "b"]
    again.ensure_writable()
    again.append(fill("c"))
    again.close()
    assert [r.id for r in journal_mod.read_journal(p)] == ["a", "b", "c"]


def test_duplicate_ids_in_file_keep_first(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    p.write_text(json.dumps([fill("a").to_dict(), fill("a", price="1").to_dict(), fill("b").to_dict()]))
    recs = Journal(p).load()
    assert [(r.id, r.price) for r in recs] == [("a", "187.15"), ("b", "187.15")]


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_appends_from_threads(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    n_threads, per_thread = 8, 25
    barrier = threading.Barrier(n_threads)
    added = [0] * n_threads

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            # every id is also offered by a second thread: stream and REST report the same fill
            added[t] += j.append(fill(f"{(t + i) % n_threads}-{i}"))
            added[t] += j.append(fill(f"{t}-{i}"))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    on_disk = ids_on_disk(p, j)
    assert sorted(on_disk) == sorted({f"{t}-{i}" for t in range(n_threads) for i in range(per_thread)})
    assert len(on_disk) == len(set(on_disk)) == sum(added) == n_threads * per_thread


def _process_worker(path: str, prefix: str, count: int) -> None:
    j = Journal(Path(path))  # each process: its own Journal, only the file lock is shared
    for i in range(count):
        j.append(fill(f"{prefix}-{i}", symbol=prefix))
        j.append(fill(f"shared-{i}"))  # both processes report these
    j.close()  # a multiprocessing child skips atexit: close() brings the file up to date


def test_concurrent_appends_from_processes(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_worker, args=(str(p), name, 30)) for name in ("AAPL", "MSFT")]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(60)
        assert pr.exitcode == 0
    on_disk = ids_on_disk(p)
    expected = {f"{s}-{i}" for s in ("AAPL", "MSFT", "shared") for i in range(30)}
    assert set(on_disk) == expected
    assert len(on_disk) == len(expected)
    # per-process order is preserved
    aapl = [x for x in on_disk if x.startswith("AAPL-")]
    assert aapl == [f"AAPL-{i}" for i in range(30)]


def test_other_process_records_are_kept(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    mine, theirs = Journal(p), Journal(p)
    mine.append(fill("m1"))
    theirs.append(fill("t1"))  # re-reads under the lock: keeps m1
    mine.append(fill("m2"))  # notices the file changed: keeps t1
    theirs.flush()
    assert ids_on_disk(p, mine) == ["m1", "t1", "m2"]
    assert mine.has("t1")


# -- property ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=4), max_size=12), st.booleans())
def test_file_equals_unique_ids_in_first_seen_order(
    tmp_path: Path, batches: list[list[str]], reopen: bool
) -> None:
    p = tmp_path / f"pt-{os.urandom(4).hex()}.json"
    j = Journal(p)
    offered: list[str] = []
    opened = [j]
    for batch in batches:
        if reopen:
            j = Journal(p)
            opened.append(j)  # a restart between batches must not change the outcome
        if len(batch) == 1:
            j.append(fill(batch[0]))
        else:
            j.extend([fill(x) for x in batch])
        offered.extend(batch)
    expected = list(dict.fromkeys(offered))
    for each in opened:
        each.flush()
    assert (ids_on_disk(p) if p.exists() else []) == expected
    assert [r.id for r in Journal(p).load()] == expected


# -- issue 17: tags, one bot per journal, read-only readers -----------------------------------------


def test_records_carry_mode_account_and_run_and_old_records_still_load(tmp_path: Path) -> None:
    tagged = fill("t1", mode="paper", account="PA3TEST", run="20240304T140000Z-abc123")
    assert FillRecord.from_dict(json.loads(json.dumps(tagged.to_dict()))) == tagged
    old = {k: v for k, v in fill("o1").to_dict().items() if k not in ("mode", "account", "run", "cum_qty")}
    p = tmp_path / "past_trades.json"
    p.write_text(json.dumps([old, tagged.to_dict()]))
    loaded = Journal(p).load()
    assert (loaded[0].mode, loaded[0].account, loaded[0].run) == (None, None, None)
    assert loaded[1] == tagged
    with pytest.raises(ValueError, match="mode"):
        fill("bad", mode="demo")


def _claim_and_report(path: str, answer: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        Journal(Path(path)).claim("pid other")
        answer.put("claimed")
    except JournalError as exc:
        answer.put(str(exc))


def test_a_claimed_journal_refuses_a_second_bot(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    first = Journal(p)
    first.claim(f"pid {os.getpid()}, started today")
    ctx = multiprocessing.get_context("spawn")
    answer = ctx.Queue()
    other = ctx.Process(target=_claim_and_report, args=(str(p), answer))
    other.start()
    other.join(60)
    message = answer.get(timeout=10)
    assert f"is in use by another breakout-bot (pid {os.getpid()}, started today)" in message
    first.append(fill("w1"))  # the claimer still writes (its flock is the one held)
    first.release()
    again = ctx.Process(target=_claim_and_report, args=(str(p), answer))
    again.start()
    again.join(60)
    assert answer.get(timeout=10) == "claimed"
    assert ids_on_disk(p) == ["w1"]


def test_read_journal_changes_nothing(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    assert journal_mod.read_journal(p) == []
    j = Journal(p)
    j.append(fill("r1"))
    j.close()
    (tmp_path / "past_trades.json.lock").unlink()
    before = sorted(x.name for x in tmp_path.iterdir())
    assert before == ["past_trades.json", "past_trades.json.sqlite"]
    ledger = journal_mod.ledger_path(p).read_bytes()
    assert [r.id for r in journal_mod.read_journal(p)] == ["r1"]
    p.write_text('[{"id": "broken"')
    with pytest.raises(JournalError, match=r"is corrupt .*left as it is"):
        journal_mod.read_journal(p)
    after = {x.name for x in tmp_path.iterdir()} - {
        "past_trades.json.sqlite-wal",
        "past_trades.json.sqlite-shm",
    }
    assert sorted(after) == before  # no lock, nothing moved (sqlite's own -wal/-shm aside)
    assert journal_mod.ledger_path(p).read_bytes() == ledger


# -- issue 21: the sqlite ledger -------------------------------------------------------------------


def test_an_existing_journal_migrates_into_the_ledger_without_a_step(tmp_path: Path) -> None:
    old = {k: v for k, v in fill("o1").to_dict().items() if k not in ("mode", "account", "run", "cum_qty")}
    older = {k: v for k, v in fill("o2").to_dict().items() if k not in ("leg", "source", "cum_qty")}
    tagged = fill("t1", mode="paper", account="PA3TEST", run="20240304T140000Z-abc123", cum_qty="100")
    p = tmp_path / "past_trades.json"
    p.write_text(json.dumps([old, older, tagged.to_dict()], indent=2))
    j = Journal(p)
    assert [r.id for r in j.load()] == ["o1", "o2", "t1"]
    assert not journal_mod.ledger_path(p).exists()  # reading creates nothing
    j.ensure_writable()  # the bot's start: the ledger is created and takes the file's records
    with contextlib.closing(sqlite3.connect(journal_mod.ledger_path(p))) as db:
        assert [row[0] for row in db.execute("SELECT id FROM fills ORDER BY rowid")] == ["o1", "o2", "t1"]
    j.append(fill("n1", mode="live", account="A1", run="r2"))
    j.close()
    back = journal_mod.read_journal(p)
    assert [r.id for r in back] == ["o1", "o2", "t1", "n1"]
    assert (back[0].mode, back[0].cum_qty, back[1].leg, back[1].source) == (None, None, "unknown", "stream")
    assert back[2] == tagged  # every field kept
    assert ids_on_disk(p) == ["o1", "o2", "t1", "n1"]


_KILL_WRITER = """
import sys
from pathlib import Path
from breakout_bot.journal import FillRecord, Journal

j = Journal(Path(sys.argv[1]))
j.load()
j.ensure_writable()
start = int(sys.argv[2])
for i in range(start, start + 100000):
    r = FillRecord(id=f"k{i}", order_id=f"o{i}", client_order_id="c", symbol="AAPL", side="buy",
                   qty="1", price="1.5", timestamp="2024-01-02T14:41:00Z", leg="entry")
    j.append(r)
    j.append(r)  # the same fill again (stream and REST): never twice
    print(r.id, flush=True)  # acknowledged: the bot may now rely on it
"""


def test_kill_9_never_loses_an_acknowledged_fill_nor_doubles_one(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    acknowledged: list[str] = []
    start = 0
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILL_WRITER, str(p), str(start)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        wanted = 20 + 37 * round_  # killed at a different point each round
        for _ in range(wanted):
            acknowledged.append(proc.stdout.readline().strip())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        acknowledged.extend(line.strip() for line in proc.stdout.read().splitlines())
        records = journal_mod.read_journal(p)
        ids = [r.id for r in records]
        assert len(ids) == len(set(ids))  # exactly once
        assert set(acknowledged) <= set(ids)  # nothing acknowledged is lost
        start = int(ids[-1][1:]) + 1  # the next "restart" goes on after what was recorded
    j = Journal(p)
    assert [r.id for r in j.load()] == ids
    j.ensure_writable()
    j.close()  # the file catches up with the ledger at the next start
    assert ids_on_disk(p) == ids


# -- the export's own encoder and the start on a large journal (issue 21) ---------------------------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(_text, _text, st.one_of(st.none(), _text)), min_size=1, max_size=4, unique_by=lambda t: t[0]
    )
)
def test_the_export_is_what_json_dumps_writes(
    tmp_path: Path, texts: list[tuple[str, str, str | None]]
) -> None:
    # past_trades.json stays exactly json.dumps(records, indent=2): quotes, backslashes, control
    # characters and non-ASCII escaped as json.dumps escapes them (the export has its own encoder).
    p = tmp_path / f"j{abs(hash(tuple(texts)))}" / "past_trades.json"
    p.parent.mkdir()
    records = [fill(fid, client_order_id=coid, account=acct) for fid, coid, acct in texts]  # type: ignore[arg-type]
    j = Journal(p)
    j.ensure_writable()
    j.extend(records)
    j.flush()
    j.close()
    assert p.read_text() == json.dumps([r.to_dict() for r in records], indent=2) + "\n"


def test_a_start_on_an_up_to_date_journal_neither_rewrites_nor_revalidates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.ensure_writable()
    j.extend([fill(f"e{i}") for i in range(50)])
    j.close()
    stamp = os.stat(p)
    validated: list[str] = []
    real = FillRecord.from_dict

    def counting(data: object) -> FillRecord:
        validated.append(str(data))
        return real(data)  # type: ignore[arg-type]

    monkeypatch.setattr(FillRecord, "from_dict", staticmethod(counting))
    again = Journal(p)
    assert len(again.load()) == 50
    again.ensure_writable()
    again.close()
    assert validated == []  # the file's records are the ledger's: counted, not parsed into records
    after = os.stat(p)
    assert (after.st_ino, after.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)  # not rewritten
    assert [r["id"] for r in json.loads(p.read_text())] == [f"e{i}" for i in range(50)]


def test_a_hand_edited_file_is_rewritten_from_the_ledger_at_start(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.ensure_writable()
    j.extend([fill("a"), fill("b")])
    j.close()
    data = json.loads(p.read_text())
    data[0]["price"] = "1.00"  # an edit of a record the ledger holds: the ledger wins
    data.append(fill("hand").to_dict())  # a record only the file holds: taken in
    p.write_text(json.dumps(data, indent=2) + "\n")
    again = Journal(p)
    assert [r.id for r in again.load()] == ["a", "b", "hand"]
    again.ensure_writable()
    again.close()
    written = json.loads(p.read_text())
    assert [r["id"] for r in written] == ["a", "b", "hand"]
    assert written[0]["price"] == "187.15"


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-02T14:41:00.123456789Z",  # Alpaca's nine digits (Python 3.10's fromisoformat takes 3 or 6)
        "2024-01-02T14:41:00Z",
        "2024-01-02t14:41:00.5z",
        "2024-01-02 09:41:00.123-05:00",
        "2024-01-02T14:41:00.000000001+00:00",
    ],
)
def test_a_records_time_is_read_as_the_brokers_timestamps_are(stamp: str) -> None:
    """One reading of a record's timestamp for the dashboard, `trades` and `replay`, the same as the
    Alpaca adapters' (broker/timestamps.py, which the journal may not import)."""
    from breakout_bot.broker.timestamps import parse_time

    when = fill("f", timestamp=stamp).filled_at
    assert when == parse_time(stamp) and when.utcoffset() is not None
