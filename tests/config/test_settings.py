"""Settings: precedence, validation (all problems at once, named by source), redaction, live guard."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from breakout_bot.cli.args import (
    add_connection_arguments,
    add_strategy_arguments,
    add_symbol_argument,
    overrides_from_args,
    settings_from_args,
)
from breakout_bot.config.settings import LIVE_URL, PAPER_URL, Settings, is_live_url, load_settings
from breakout_bot.errors import ConfigError

KEY = "PKDISTINCTKEYID12345"
SECRET = "s3cr3tDISTINCTsecretVALUEzz9"


def load(
    tmp_path: Path,
    dotenv: str | None = None,
    env: dict[str, str] | None = None,
    **overrides: object,
) -> Settings:
    path = tmp_path / ".env"
    if dotenv is not None:
        path.write_text(dotenv)
    return load_settings(overrides, env=env or {}, dotenv_path=path)


def problems(
    tmp_path: Path, dotenv: str | None = None, env: dict[str, str] | None = None, **ov: object
) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, dotenv, env, **ov)
    assert info.value.exit_code == 2
    return str(info.value)


# -- defaults and precedence ---------------------------------------------------------------------


def test_defaults_without_anything(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s == Settings()
    assert (s.base_url, s.feed, s.params.qty, s.params.lookback, s.params.min_range_pct) == (
        PAPER_URL,
        "iex",
        100,
        10,
        0.3,
    )
    assert (
        s.params.no_entry_minutes,
        s.params.flatten_minutes,
        s.params.max_trades,
        s.params.max_daily_loss,
    ) == (20, 5, 0, 0.0)
    assert s.params.risk_pct is None and s.symbols == () and not s.live
    assert s.journal_path == Path("past_trades.json") and s.log_dir == Path("logs")
    assert s.mode == "simulator" and not s.has_keys


def test_precedence_flag_over_env_over_dotenv_over_default(tmp_path: Path) -> None:
    dotenv = "BREAKOUT_QTY=10\nBREAKOUT_LOOKBACK=12\nBREAKOUT_FEED=sip\n"
    env = {"BREAKOUT_QTY": "20", "BREAKOUT_LOOKBACK": "15"}
    s = load(tmp_path, dotenv, env, qty=30)
    assert s.params.qty == 30  # flag
    assert s.params.lookback == 15  # env beats .env
    assert s.feed == "sip"  # .env beats default
    assert s.params.min_range_pct == 0.3  # default
    assert load(tmp_path, dotenv, env).params.qty == 20
    assert load(tmp_path, dotenv).params.qty == 10


def test_none_override_means_not_given_and_empty_env_means_unset(tmp_path: Path) -> None:
    s = load(
        tmp_path, "BREAKOUT_QTY=7\nAPCA_API_KEY_ID=\nAPCA_API_SECRET_KEY=\n", {"BREAKOUT_QTY": " "}, qty=None
    )
    assert s.params.qty == 7 and not s.has_keys


def test_dotenv_is_not_loaded_into_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("BREAKOUT_QTY", raising=False)
    (tmp_path / ".env").write_text("BREAKOUT_QTY=42\n")
    assert load_settings({}, env=None, dotenv_path=tmp_path / ".env").params.qty == 42
    assert "BREAKOUT_QTY" not in os.environ


def test_dotenv_values_are_literal(tmp_path: Path) -> None:
    s = load(tmp_path, f"APCA_API_KEY_ID={KEY}\nAPCA_API_SECRET_KEY='ab$HOME${{X}}cd'\n")
    assert s.secret_key == "ab$HOME${X}cd"


def test_dotenv_syntax_export_quotes_comments(tmp_path: Path) -> None:
    text = '# comment\n\nexport BREAKOUT_SYMBOLS="aapl, msft"\nBREAKOUT_FEED=sip  # inline\n'
    s = load(tmp_path, text)
    assert s.symbols == ("AAPL", "MSFT") and s.feed == "sip"


def test_missing_dotenv_is_fine_but_required_one_is_not(tmp_path: Path) -> None:
    assert load_settings({}, env={}, dotenv_path=tmp_path / "nope.env").params.qty == 100
    assert load_settings({}, env={}, dotenv_path=None).params.qty == 100
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, env={}, dotenv_path=tmp_path / "nope.env", dotenv_required=True)


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("BREAKOUT_QTY", "ten", "BREAKOUT_QTY: expected a positive whole number, got 'ten'"),
        ("BREAKOUT_QTY", "0", "expected a positive whole number"),
        ("BREAKOUT_QTY", "1.5", "expected a positive whole number"),
        ("BREAKOUT_LOOKBACK", "1", "2..390"),
        ("BREAKOUT_LOOKBACK", "391", "2..390"),
        ("BREAKOUT_MIN_RANGE_PCT", "0", "above 0 and below 20"),
        ("BREAKOUT_MIN_RANGE_PCT", "20", "above 0 and below 20"),
        ("BREAKOUT_MIN_RANGE_PCT", "nan", "above 0 and below 20"),
        ("BREAKOUT_MAX_TRADES", "-1", ">= 0"),
        ("BREAKOUT_MAX_DAILY_LOSS", "-5", ">= 0"),
        ("BREAKOUT_RISK_PCT", "100", "above 0 and below 100"),
        ("BREAKOUT_RISK_PCT", "0", "above 0 and below 100"),
        ("BREAKOUT_FEED", "nasdaq", "expected one of iex, sip"),
        ("BREAKOUT_SYMBOLS", "AAPL,TOOLONGSYMBOL", "got 'TOOLONGSYMBOL'"),
        ("BREAKOUT_SYMBOLS", "BRK$B", "1-10 of A-Z"),
        ("BREAKOUT_NO_ENTRY_MINUTES", "0", "1..390"),
        ("BREAKOUT_JSON_LOGS", "maybe", "true or false"),
        ("APCA_API_BASE_URL", "paper-api.alpaca.markets", "URL starting with"),
        ("APCA_API_DATA_URL", "ftp://x", "URL starting with"),
    ],
)
def test_invalid_env_values(tmp_path: Path, var: str, value: str, expected: str) -> None:
    msg = problems(tmp_path, env={var: value})
    assert expected in msg
    assert msg.startswith(var + ":")


def test_valid_edge_values(tmp_path: Path) -> None:
    env = {
        "BREAKOUT_QTY": "1",
        "BREAKOUT_LOOKBACK": "390",
        "BREAKOUT_MIN_RANGE_PCT": "19.99",
        "BREAKOUT_MAX_TRADES": "0",
        "BREAKOUT_MAX_DAILY_LOSS": "0",
        "BREAKOUT_RISK_PCT": "0.5",
        "BREAKOUT_SYMBOLS": "brk.b rds-a,AAPL aapl",
        "BREAKOUT_FEED": "SIP",
        "BREAKOUT_JSON_LOGS": "yes",
        "BREAKOUT_JOURNAL": "/tmp/j.json",
        "APCA_API_BASE_URL": "https://paper-api.alpaca.markets/v2/",
    }
    s = load(tmp_path, env=env)
    assert s.symbols == ("BRK.B", "RDS-A", "AAPL")  # upper-cased, de-duplicated, order kept
    assert s.feed == "sip" and s.json_logs and s.params.risk_pct == 0.5 and s.params.lookback == 390
    assert s.journal_path == Path("/tmp/j.json")
    assert s.base_url == PAPER_URL  # the dashboard's /v2 suffix is dropped: the client adds it


def test_all_problems_reported_at_once_with_sources(tmp_path: Path) -> None:
    msg = problems(
        tmp_path,
        "# settings\nBREAKOUT_LOOKBACK=one\nBREAKOUT_FEED=sip\n",
        {"BREAKOUT_QTY": "ten"},
        min_range_pct=50.0,
    )
    lines = msg.splitlines()
    assert "BREAKOUT_QTY: expected a positive whole number, got 'ten'" in lines
    assert any(line.startswith(f"BREAKOUT_LOOKBACK ({tmp_path / '.env'} line 2): ") for line in lines)
    assert any(line.startswith("--min-range-pct: ") and "got '50.0'" in line for line in lines)
    assert len(lines) == 3


def test_flatten_must_be_before_no_entry(tmp_path: Path) -> None:
    msg = problems(tmp_path, env={"BREAKOUT_FLATTEN_MINUTES": "20"})
    assert "flatten minutes (20) must be less than no-entry minutes (20)" in msg
    assert load(tmp_path, flatten_minutes=10, no_entry_minutes=11).params.flatten_minutes == 10
    # a bad value is reported once, without a second confusing cross-field line
    assert problems(tmp_path, flatten_minutes="x").count("\n") == 0


def test_only_one_key_is_an_error(tmp_path: Path) -> None:
    assert "APCA_API_SECRET_KEY is not" in problems(tmp_path, env={"APCA_API_KEY_ID": KEY})
    assert "APCA_API_KEY_ID is not" in problems(tmp_path, f"APCA_API_SECRET_KEY={SECRET}\n")


def test_typo_in_breakout_variable(tmp_path: Path) -> None:
    msg = problems(tmp_path, "BREAKOUT_MAX_DAILY_LOS=100\n")
    assert "line 1): unknown variable (did you mean BREAKOUT_MAX_DAILY_LOSS?)" in msg
    assert "did you mean BREAKOUT_QTY" in problems(tmp_path, "", env={"BREAKOUT_QYT": "5"})
    assert "did you mean BREAKOUT_SYMBOLS" in problems(tmp_path, "", env={"BREAKOUT_SYMBOL": "AAPL"})
    # unrelated variables are nobody's typo
    assert (
        load(tmp_path, "", env={"BREAKOUT_SOMETHING_ELSE": "x", "PATH": "/bin", "BREAKOUT_SPEED": "5"}).speed
        == 5
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("BREAKOUT_QTY=5\nthis is not valid\n", 2),
        ("# c\n\n\nBREAKOUT_QTY=5\nJUSTAKEY\n", 5),
        ('BREAKOUT_QTY=5\nAPCA_API_SECRET_KEY="unterminated\n', 2),
    ],
)
def test_malformed_dotenv_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    msg = problems(tmp_path, text)
    assert f".env line {line}: cannot parse" in msg
    assert "unterminated" not in msg and "JUSTAKEY" not in msg  # line text never echoed


def test_dotenv_line_numbers_skip_blank_lines(tmp_path: Path) -> None:
    msg = problems(tmp_path, "# header\n\n\nBREAKOUT_QTY=zero\n")
    assert ".env line 4): expected a positive whole number" in msg


def test_unreadable_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    assert "cannot read" in problems(tmp_path)


def test_unknown_override_name(tmp_path: Path) -> None:
    assert "unknown setting 'quantity'" in problems(tmp_path, quantity=5)


# -- live guard and modes ------------------------------------------------------------------------


def test_is_live_url() -> None:
    assert is_live_url("https://api.alpaca.markets")
    assert is_live_url("https://API.alpaca.markets/v2")
    assert is_live_url("https://api.alpaca.markets:443")
    assert not is_live_url("https://paper-api.alpaca.markets")
    assert not is_live_url("http://127.0.0.1:8765")
    assert not is_live_url("https://api.alpaca.markets.evil.example")


def test_modes(tmp_path: Path) -> None:
    keys = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
    assert load(tmp_path).mode == "simulator"
    paper = load(tmp_path, env=keys)
    assert paper.mode == "paper" and paper.has_keys and paper.base_url == PAPER_URL
    live = load(tmp_path, env=keys, live=True)
    assert live.mode == "live" and live.base_url == LIVE_URL  # --live alone selects the live endpoint
    local = load(tmp_path, env={**keys, "APCA_API_BASE_URL": "http://127.0.0.1:8765"})
    assert local.mode == "paper"


def test_live_url_without_live_flag_is_refused(tmp_path: Path) -> None:
    env = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET, "APCA_API_BASE_URL": LIVE_URL}
    assert "refusing to trade live without --live" in problems(tmp_path, env=env)
    assert "refusing to trade live without --live" in problems(tmp_path, f"APCA_API_BASE_URL={LIVE_URL}\n")
    assert load(tmp_path, env=env, live=True).mode == "live"


def test_live_flag_conflicts(tmp_path: Path) -> None:
    keys = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
    assert "not https://api.alpaca.markets" in problems(
        tmp_path, env={**keys, "APCA_API_BASE_URL": PAPER_URL}, live=True
    )
    assert "--live needs APCA_API_KEY_ID" in problems(tmp_path, live=True)


def test_live_cannot_come_from_env(tmp_path: Path) -> None:
    msg = problems(tmp_path, "BREAKOUT_LIVE=1\n", {"BREAKOUT_LIVE": "1"})
    assert msg.splitlines() == [
        "BREAKOUT_LIVE: live trading is enabled only by the --live flag, never by a variable",
        f"BREAKOUT_LIVE ({tmp_path / '.env'} line 1): live trading is enabled only by the --live flag, "
        "never by a variable",
    ]


# -- secrets -------------------------------------------------------------------------------------


def test_repr_str_format_redact_secrets(tmp_path: Path) -> None:
    s = load(tmp_path, env={"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET})
    for text in (repr(s), str(s), f"{s}", f"{s!r}", format(s, ""), str(s.redacted())):
        assert SECRET not in text
        assert KEY not in text
        assert "PKDI…(redacted)" in text
        assert "'***'" in text
    assert s.secret_key == SECRET and s.key_id == KEY  # the values themselves are intact
    assert set(s.secrets) == {KEY, SECRET}
    assert "secret_key=None" in repr(Settings())


def test_secrets_never_leak_in_error_messages(tmp_path: Path) -> None:
    dotenv = (
        f"APCA_API_KEY_ID={KEY}\n"
        f"APCA_API_SECRET_KEY={SECRET}\n"
        f"BREAKOUT_QTY={SECRET}\n"  # a key pasted into the wrong variable
        f"BREAKOUT_SYMBOLS={KEY}\n"
        f"APCA_API_BASE_URL={SECRET}\n"
        "BREAKOUT_LOOKBACK=0\n"
    )
    msg = problems(tmp_path, dotenv)
    assert msg.count("\n") >= 3
    assert SECRET not in msg and KEY not in msg
    # a secret with a bad character is reported without echoing it
    bad = "ab cd" + SECRET
    msg = problems(tmp_path, f'APCA_API_KEY_ID={KEY}\nAPCA_API_SECRET_KEY="{bad}"\n')
    assert "APCA_API_SECRET_KEY" in msg and SECRET not in msg and "ab cd" not in msg
    # ...even when that unparseable secret is also pasted, long, into another variable
    long_secret = SECRET * 3
    msg = problems(
        tmp_path, f"APCA_API_KEY_ID={KEY}\nAPCA_API_SECRET_KEY={long_secret}\nBREAKOUT_FEED={long_secret}\n"
    )
    assert SECRET[:10] not in msg and "BREAKOUT_FEED" in msg
    # a malformed line holding a secret
    msg = problems(tmp_path, f"{SECRET}\n")
    assert SECRET not in msg and "line 1" in msg


# -- argparse helpers ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_strategy_arguments(p)
    add_connection_arguments(p)
    add_symbol_argument(p)
    p.add_argument("--speed", type=float)
    p.add_argument("--days", type=int)
    return p


def test_no_flags_means_no_overrides() -> None:
    args = parser().parse_args([])
    assert overrides_from_args(args) == {}


def test_flags_map_to_settings_names() -> None:
    argv = [
        *("--qty", "5", "--lookback", "12", "--min-range-pct", "0.5", "--no-entry-minutes", "30"),
        *("--flatten-minutes", "10", "--max-trades", "3", "--max-daily-loss", "250", "--risk-pct", "1"),
        *("--feed", "sip", "--live", "--yes", "--journal", "j.json", "--log-dir", "L", "--log-file", "f.log"),
        *("--json-logs", "--verbose", "-s", "aapl", "--symbol", "msft,spy", "--speed", "10", "--days", "3"),
        *("--env-file", "x.env"),
    ]
    ov = overrides_from_args(parser().parse_args(argv))
    assert ov == {
        "qty": 5,
        "lookback": 12,
        "min_range_pct": 0.5,
        "no_entry_minutes": 30,
        "flatten_minutes": 10,
        "max_trades": 3,
        "max_daily_loss": 250.0,
        "risk_pct": 1.0,
        "feed": "sip",
        "live": True,
        "journal_path": Path("j.json"),
        "log_dir": Path("L"),
        "log_file": Path("f.log"),
        "json_logs": True,
        "symbols": ["aapl", "msft,spy"],
        "speed": 10.0,
        "days": 3,
    }
    keys = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
    s = load_settings(ov, env=keys, dotenv_path=None)
    assert s.symbols == ("AAPL", "MSFT", "SPY") and s.live and s.journal_path == Path("j.json")


def test_flag_beats_env_through_argparse(tmp_path: Path) -> None:
    args = parser().parse_args(["--qty", "7", "--env-file", str(tmp_path / "my.env")])
    (tmp_path / "my.env").write_text("BREAKOUT_QTY=3\nBREAKOUT_LOOKBACK=4\nBREAKOUT_JSON_LOGS=1\n")
    s = settings_from_args(args, env={})
    assert (s.params.qty, s.params.lookback, s.json_logs) == (
        7,
        4,
        True,
    )  # --json-logs absent: .env value stands
    missing = parser().parse_args(["--env-file", str(tmp_path / "missing.env")])
    with pytest.raises(ConfigError, match=r"missing\.env does not exist"):
        settings_from_args(missing, env={})


def test_bad_flag_value_named_by_flag(tmp_path: Path) -> None:
    args = parser().parse_args(["--qty", "-3", "--lookback", "1000"])
    with pytest.raises(ConfigError) as info:
        load_settings(overrides_from_args(args), env={}, dotenv_path=None)
    assert str(info.value).splitlines() == [
        "--qty: expected a positive whole number, got '-3'",
        "--lookback: expected a whole number 2..390, got '1000'",
    ]


# -- .env.example --------------------------------------------------------------------------------


def test_env_example_documents_every_variable_and_loads(tmp_path: Path) -> None:
    import re

    from breakout_bot.config.settings import ENV_VARS

    example = Path(__file__).resolve().parents[2] / ".env.example"
    text = example.read_text()
    assert [v for v in ENV_VARS if f"{v}=" not in text] == []
    assert re.search(r"^APCA_API_(KEY_ID|SECRET_KEY)=\S", text, re.M) is None  # no keys shipped
    assert load_settings({}, env={}, dotenv_path=example, dotenv_required=True) == Settings()
    # every commented example line, uncommented, is a valid setting and equals the default
    uncommented = tmp_path / "uncommented.env"
    uncommented.write_text(re.sub(r"(?m)^#((APCA|BREAKOUT)_\w+=)", r"\1", text))
    s = load_settings({}, env={}, dotenv_path=uncommented, dotenv_required=True)
    assert s == Settings(symbols=("AAPL",))
