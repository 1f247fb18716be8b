"""past_trades.json: idempotent, ordered, atomic, corrupt-safe, thread- and process-safe."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakout_bot import journal as journal_mod
from breakout_bot.errors import JournalError
from breakout_bot.journal import FillRecord, Journal


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


def ids_on_disk(path: Path) -> list[str]:
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
    assert ids_on_disk(p) == ["b", "a"]
    assert j.records()[0].price == "187.15"
    # a fresh instance (a restart) sees the same and still refuses duplicates
    j2 = Journal(p)
    assert [r.id for r in j2.load()] == ["b", "a"]
    assert j2.append(fill("a")) is False
    assert j2.extend([fill("c"), fill("a"), fill("c"), fill("d")]) == 2
    assert ids_on_disk(p) == ["b", "a", "c", "d"]


def test_extend_writes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(tmp_path / "past_trades.json")
    calls: list[int] = []
    real = os.replace

    def counting_replace(src: str, dst: str) -> None:
        calls.append(1)
        real(src, dst)

    monkeypatch.setattr(journal_mod.os, "replace", counting_replace)
    assert j.extend([fill(str(i)) for i in range(50)]) == 50
    assert len(calls) == 1
    assert j.extend([fill("1"), fill("2")]) == 0
    assert len(calls) == 1  # nothing new: no write at all


def test_file_format_is_plain_json_list(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    Journal(p).append(fill("e1"))
    data = json.loads(p.read_text())
    assert data == [fill("e1").to_dict()]
    assert isinstance(data[0]["qty"], str) and isinstance(data[0]["price"], str)


# -- atomicity and write errors ------------------------------------------------------------------


def test_crash_during_replace_keeps_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("a"))
    before = p.read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_mod.os, "replace", boom)
    with pytest.raises(JournalError, match=r"cannot write journal .*No space left on device"):
        j.append(fill("b"))
    assert p.read_bytes() == before
    assert [x.name for x in tmp_path.iterdir() if x.name.endswith(".tmp")] == []  # temp removed
    assert not j.has("b")  # memory unchanged, so a retry works
    monkeypatch.undo()
    assert j.append(fill("b")) is True
    assert ids_on_disk(p) == ["a", "b"]


def test_fsync_failure_is_journal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("a"))

    def bad_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_mod.os, "fsync", bad_fsync)
    with pytest.raises(JournalError, match="Input/output error"):
        j.append(fill("b"))
    assert ids_on_disk(p) == ["a"]
    assert [r.id for r in j.records()] == ["a"]


def test_leftover_temp_from_crashed_writer_is_ignored_and_cleaned(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    Journal(p).append(fill("a"))
    # what a process killed between write and os.replace leaves behind: a half-written temp file
    leftover = tmp_path / ".past_trades.json.abc123.tmp"
    leftover.write_text('[{"id": "half')
    j = Journal(p)
    assert [r.id for r in j.load()] == ["a"]  # ignored on read
    j.append(fill("b"))
    assert not leftover.exists()  # cleaned under the lock on the next write
    assert ids_on_disk(p) == ["a", "b"]


def test_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    p = d / "past_trades.json"
    Journal(p).append(fill("a"))
    d.chmod(0o500)
    try:
        probe = d / "probe"
        try:  # root ignores permissions: then inject the error the kernel would give
            probe.write_text("x")
            probe.unlink()

            def denied(*a: object, **k: object) -> object:
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(journal_mod.tempfile, "mkstemp", denied)
        except PermissionError:
            pass
        j = Journal(p)
        assert [r.id for r in j.load()] == ["a"]  # reading still works
        with pytest.raises(JournalError) as info:
            j.append(fill("b"))
        msg = str(info.value)
        assert "\n" not in msg and "Permission denied" in msg and str(p) in msg
        assert info.value.exit_code == 5
        assert not j.has("b")
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


def test_corrupt_file_found_during_append_then_retry(tmp_path: Path) -> None:
    p = tmp_path / "past_trades.json"
    j = Journal(p)
    j.append(fill("a"))
    p.write_text("oops")  # someone broke the file while we run
    with pytest.raises(JournalError, match="moved it to"):
        j.append(fill("b"))
    assert not j.has("b")
    # the retry rewrites what this process knew plus the new fill: nothing is lost
    assert j.append(fill("b")) is True
    assert ids_on_disk(p) == ["a", "b"]


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
    on_disk = ids_on_disk(p)
    assert sorted(on_disk) == sorted({f"{t}-{i}" for t in range(n_threads) for i in range(per_thread)})
    assert len(on_disk) == len(set(on_disk)) == sum(added) == n_threads * per_thread


def _process_worker(path: str, prefix: str, count: int) -> None:
    j = Journal(Path(path))  # each process: its own Journal, only the file lock is shared
    for i in range(count):
        j.append(fill(f"{prefix}-{i}", symbol=prefix))
        j.append(fill(f"shared-{i}"))  # both processes report these


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
    assert ids_on_disk(p) == ["m1", "t1", "m2"]
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
    for batch in batches:
        if reopen:
            j = Journal(p)  # a restart between batches must not change the outcome
        if len(batch) == 1:
            j.append(fill(batch[0]))
        else:
            j.extend([fill(x) for x in batch])
        offered.extend(batch)
    expected = list(dict.fromkeys(offered))
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
    Journal(p).append(fill("r1"))
    (tmp_path / "past_trades.json.lock").unlink()
    assert [r.id for r in journal_mod.read_journal(p)] == ["r1"]
    p.write_text('[{"id": "broken"')
    with pytest.raises(JournalError, match=r"is corrupt .*left as it is"):
        journal_mod.read_journal(p)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["past_trades.json"]  # no lock, nothing moved
