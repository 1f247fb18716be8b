"""What may import what (docs/architecture.md): every import inside the package, checked against the map.

Each part of the package may import only the parts listed for it; nothing but the CLI and the test
support reaches the simulator and the live shell together, and no product code imports the testkit. A
part's own modules import each other freely. Imports inside functions and under TYPE_CHECKING count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import breakout_bot

PACKAGE = Path(breakout_bot.__file__).parent

LEAVES = {"errors", "redaction"}  # anyone may import these; they import nothing of ours
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "market": {"core"},
    "roundtrips": {"core"},
    "journal": set(),
    "logging_setup": set(),
    "config": {"core"},
    "broker": {"core", "config"},
    "live": {"core", "broker", "journal", "roundtrips"},
    "backtest": {"core", "market", "broker"},
    "sim": {"core", "market"},
    "cli": {
        "core",
        "market",
        "broker",
        "live",
        "backtest",
        "sim",
        "config",
        "journal",
        "roundtrips",
        "logging_setup",
    },
    "testkit": {"core", "market", "broker", "live", "backtest", "sim", "config", "journal", "roundtrips"},
}
# Inside a part, modules only some parts may reach: the SDK adapters are chosen by the CLI (and the
# tests); the runner and the backtest see a broker through broker/base.py's protocols alone.
ADAPTERS = {
    "breakout_bot.broker.alpaca": {"broker", "cli", "testkit"},
    "breakout_bot.broker.alpacapy": {"broker", "cli", "testkit"},
}
# Each SDK is imported by its binding alone, so the bot runs with either SDK installed by itself.
SDK_HOMES = {"alpaca_trade_api": "broker/alpaca/sdk.py", "alpaca": "broker/alpacapy/sdk.py"}
# The dashboard only reads: nothing that can trade (the broker, the executor, the runner's machinery)
# is within its reach; it sees the runner through RunnerStatus alone.
READ_ONLY = "live/dashboard/"
READ_ONLY_MAY_IMPORT = (
    "breakout_bot.core",
    "breakout_bot.journal",
    "breakout_bot.roundtrips",
    "breakout_bot.errors",
    "breakout_bot.redaction",
    "breakout_bot.live.status",
    "breakout_bot.live.dashboard",
    "breakout_bot.live.runner.RunnerStatus",
)
# Entry points may start the CLI (python -m breakout_bot, python -m breakout_bot.sim).
ENTRY_POINTS = {"__main__.py", "sim/__main__.py"}


def part_of(module: str) -> str:
    """breakout_bot.live.runner -> live; breakout_bot.errors -> errors; breakout_bot -> __init__."""
    segments = module.split(".")
    return segments[1] if len(segments) > 1 else "__init__"


def imported_modules(path: Path, source: str) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of everything `source` (the file at `path`) imports from the package:
    `import breakout_bot.a.b` -> breakout_bot.a.b; `from .b import c` in breakout_bot/a/ -> breakout_bot.a.b.c
    (c may be a module or a name in b: either way it lies inside breakout_bot.a.b)."""
    # The package a relative import starts from: the directory, for a module and for an __init__.py alike.
    package = ["breakout_bot", *path.relative_to(PACKAGE).parts[:-1]]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "breakout_bot":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module.split(".")[0] == "breakout_bot":
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"


def violations(path: Path, source: str) -> list[str]:
    relative = path.relative_to(PACKAGE)
    own = relative.parts[0].removesuffix(".py")
    out = []
    for line, module in imported_modules(path, source):
        target = part_of(module)
        if relative.as_posix().startswith(READ_ONLY) and not any(
            module == allowed or module.startswith(allowed + ".") for allowed in READ_ONLY_MAY_IMPORT
        ):
            out.append(f"{relative}:{line}: the read-only dashboard imports {module}")
        for adapter, users in ADAPTERS.items():
            if (module == adapter or module.startswith(adapter + ".")) and own not in users:
                out.append(f"{relative}:{line}: {own} imports the adapter {module}")
        if target in (own, "__init__", "__version__") or target in LEAVES:
            continue
        if relative.as_posix() in ENTRY_POINTS and target == "cli":
            continue
        if own in LEAVES or target not in ALLOWED.get(own, set()):
            out.append(f"{relative}:{line}: {own} imports {module}")
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_part_is_on_the_map() -> None:
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert parts - {"__init__", "__main__"} <= set(ALLOWED) | LEAVES


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(PACKAGE).as_posix() for p in MODULES])
def test_imports_follow_the_map(path: Path) -> None:
    assert violations(path, path.read_text()) == []


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("core/machine.py", "from ..live import runner\n"),
        ("core/model.py", "def f():\n    from breakout_bot.broker.base import Broker\n"),
        ("backtest/kernel.py", "from ..sim.exchange import Exchange\n"),
        ("sim/exchange.py", "from ..broker.alpaca import convert\n"),
        ("live/runner.py", "from ..testkit.fakes import FakeBroker\n"),
        ("errors.py", "from .core import model\n"),
        ("market/bars.py", "import breakout_bot.backtest.engine\n"),
        ("live/runner.py", "from ..broker.alpaca.broker import AlpacaBroker\n"),
        ("backtest/broker.py", "from ..broker import alpaca\n"),
        ("live/executor.py", "from ..broker.alpacapy import sdk\n"),
        ("live/dashboard/feed.py", "from ..executor import Executor\n"),
        ("live/dashboard/server.py", "from ...broker.base import Broker\n"),
        ("live/dashboard/view.py", "def f():\n    from ..runner import Runner\n"),
    ],
)
def test_a_forbidden_import_fails(where: str, source: str) -> None:
    """The checker itself: each of these breaks the map."""
    assert violations(PACKAGE / where, source) != []


def sdk_imports(source: str) -> set[str]:
    """The SDK packages (SDK_HOMES' keys) that `source` imports, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in SDK_HOMES)
    return found


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(PACKAGE).as_posix() for p in MODULES])
def test_each_sdk_is_imported_by_its_binding_alone(path: Path) -> None:
    home = path.relative_to(PACKAGE).as_posix()
    assert {sdk for sdk in sdk_imports(path.read_text()) if SDK_HOMES[sdk] != home} == set()


def test_the_sdk_import_check_finds_them() -> None:
    assert sdk_imports("import alpaca_trade_api\nfrom alpaca.trading.client import TradingClient\n") == {
        "alpaca_trade_api",
        "alpaca",
    }
    assert sdk_imports("from .alpaca import sdk\nimport alpacapy_like\n") == set()


def test_allowed_imports_pass() -> None:
    assert (
        violations(PACKAGE / "live/runner.py", "from ..core import machine\nfrom ..errors import BotError\n")
        == []
    )
    assert violations(PACKAGE / "sim/__main__.py", "from ..cli.main import main\n") == []


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """Each `_name` of the package that `source` takes from another module: `from m import _x`, or
    `m._x` / `Cls._x` on a module or a class it imported from the package."""
    tree = ast.parse(source)
    out, imported = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("breakout_bot")
        ):
            for alias in node.names:
                if private(alias.name):
                    out.append(f"{node.lineno}: from {node.module or '.'} import {alias.name}")
                imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            imported.update(
                alias.asname or alias.name.split(".")[0]
                for alias in node.names
                if alias.name.split(".")[0] == "breakout_bot"
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in imported:
                out.append(f"{node.lineno}: {ast.unparse(node)}")
    return out


ROOT = PACKAGE.parent
OUR_FILES = sorted(p for d in ("breakout_bot", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def test_no_private_name_crosses_a_module() -> None:
    """A `_`-prefixed name of the package is used in its own module only (product, tests, benchmarks)."""
    found = [f"{p.relative_to(ROOT)}:{use}" for p in OUR_FILES for use in private_uses(p.read_text())]
    assert found == []


def test_the_private_name_check_finds_them() -> None:
    assert private_uses("from breakout_bot.core.state import _evolve\n") != []
    assert private_uses("from ..live import runner\nrunner._helper()\n") != []
    assert private_uses("from breakout_bot.live.runner import Runner\nRunner._step\n") != []
    assert private_uses("from breakout_bot.core import machine\nmachine.step\nmachine.__name__\n") == []
