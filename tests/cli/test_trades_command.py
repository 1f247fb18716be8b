"""`breakout-bot trades`: fills → round trips with P&L per trade, day and symbol."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from breakout_bot.cli.main import main
from breakout_bot.roundtrips import FillLike, round_trips


def _fill(symbol: str, side: str, qty: str, price: str, minute: int, day: int = 4) -> FillLike:
    return FillLike(
        symbol, side, Decimal(qty), Decimal(price), datetime(2024, 3, day, 15, minute, tzinfo=timezone.utc)
    )


def test_long_and_short_round_trips() -> None:
    trips = round_trips(
        [
            _fill("AAPL", "buy", "100", "10.00", 1),
            _fill("AAPL", "sell", "100", "10.50", 5),
            _fill("AAPL", "sell", "100", "11.00", 7),
            _fill("AAPL", "buy", "100", "11.25", 9),
        ]
    )
    assert [(t.direction, t.realized, t.closed is not None) for t in trips] == [
        ("long", Decimal("50.00"), True),
        ("short", Decimal("-25.00"), True),
    ]


def test_partial_fills_average_and_open_trip() -> None:
    trips = round_trips(
        [
            _fill("MSFT", "buy", "40", "100.00", 1),
            _fill("MSFT", "buy", "60", "101.00", 2),
            _fill("MSFT", "sell", "50", "102.00", 3),
        ]
    )
    assert len(trips) == 1
    trip = trips[0]
    assert trip.entry_price == Decimal("100.6")
    assert trip.realized == Decimal("70.0")  # (102 - 100.6) * 50
    assert trip.closed is None and trip.qty == 100


def _journal(path: Path) -> None:
    records = []
    for i, (sym, side, qty, price, minute, day) in enumerate(
        [
            ("AAPL", "buy", "100", "10.00", 1, 4),
            ("AAPL", "sell", "100", "10.40", 9, 4),
            ("MSFT", "sell", "10", "50.00", 1, 5),
            ("MSFT", "buy", "10", "51.00", 9, 5),
        ]
    ):
        records.append(
            {
                "id": f"x{i}",
                "order_id": f"o{i}",
                "client_order_id": f"bb-{sym}-2024030{day}-1",
                "symbol": sym,
                "side": side,
                "qty": qty,
                "price": price,
                "timestamp": f"2024-03-0{day}T15:{minute:02d}:00Z",
                "leg": "entry",
                "source": "rest",
            }
        )
    path.write_text(json.dumps(records))


def test_trades_table_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "past_trades.json"
    _journal(journal)
    assert main(["trades", "--file", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "+40.00" in out and "-10.00" in out
    assert "10.40" in out and "10.4000" not in out  # a price as it trades: two decimals from $1
    assert "2 trades: 1 won, 1 lost; realized P&L +30.00" in out
    assert main(["trades", "--file", str(journal), "--summary"]) == 0
    summary = capsys.readouterr().out
    assert "AAPL" in summary and "MSFT" in summary and "2024-03-05" in summary
    assert main(["trades", "--file", str(journal), "--since", "2024-03-05"]) == 0
    assert "1 trade: 0 won, 1 lost; realized P&L -10.00" in capsys.readouterr().out


def test_trades_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trades", "--file", str(tmp_path / "missing.json")]) == 2
    assert "no journal" in capsys.readouterr().err
    journal = tmp_path / "past_trades.json"
    _journal(journal)
    assert main(["trades", "--file", str(journal), "--since", "yesterday"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--since" in err


def _tagged(fid: str, side: str, price: str, minute: int, mode: str | None, account: str | None) -> dict:
    return {
        "id": fid,
        "order_id": "o" + fid,
        "client_order_id": "bb-AAPL-20240304-1",
        "symbol": "AAPL",
        "side": side,
        "qty": "100",
        "price": price,
        "timestamp": f"2024-03-04T15:{minute:02d}:00Z",
        **({"mode": mode, "account": account, "run": f"run-{account}"} if mode else {}),
    }


def test_fills_of_different_accounts_never_meet_in_one_trade(tmp_path: Path) -> None:
    """Two runs' shorts interleaved in one journal made a phantom `short 200`."""
    from .helpers import bot

    journal = tmp_path / "past_trades.json"
    rows = [
        _tagged("a1", "sell", "10.00", 1, "simulator", "PSIM1"),
        _tagged("b1", "sell", "20.00", 2, "simulator", "PSIM2"),
        _tagged("a2", "buy", "9.00", 3, "simulator", "PSIM1"),
        _tagged("b2", "buy", "21.00", 4, "simulator", "PSIM2"),
        _tagged("p1", "buy", "50.00", 5, "paper", "PA3PAPER"),
        _tagged("p2", "sell", "51.00", 6, "paper", "PA3PAPER"),
        _tagged("x1", "buy", "5.00", 7, None, None),
        _tagged("x2", "sell", "5.50", 8, None, None),
    ]
    journal.write_text(json.dumps(rows))
    proc = bot("trades", "--journal", str(journal), cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "simulator · account PSIM1 · run run-PSIM1" in out and "simulator · account PSIM2" in out
    assert "paper · account PA3PAPER" in out and "recorded by an earlier breakout-bot" in out
    assert " 200 " not in out
    assert [line for line in out.splitlines() if "realized P&L" in line] == [
        "1 trade: 1 won, 0 lost; realized P&L +100.00",
        "1 trade: 0 won, 1 lost; realized P&L -100.00",
        "1 trade: 1 won, 0 lost; realized P&L +100.00",
        "1 trade: 1 won, 0 lost; realized P&L +50.00",
    ]
    assert all(len(line) <= 80 for line in out.splitlines())  # fits a terminal: nothing cut either
    assert "…" not in out


def test_trades_only_reads_a_corrupt_journal(tmp_path: Path) -> None:
    """It renamed the file, printed the message twice, and every read left a `.lock` behind."""
    from .helpers import bot, error_line

    journal = tmp_path / "past_trades.json"
    journal.write_text('[{"id": "x1", "symbol": ')
    before = journal.read_bytes()
    proc = bot("trades", cwd=tmp_path, timeout=60)
    assert proc.returncode == 5
    line = error_line(proc)
    assert "is corrupt" in line and "left as it is" in line
    assert journal.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["past_trades.json"]
    _journal(journal)
    assert bot("trades", cwd=tmp_path, timeout=60).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["past_trades.json"]  # no .lock from a read
