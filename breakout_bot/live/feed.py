"""The bar feed: closed one-minute bars per symbol, polled over REST once a minute or pushed by the
market-data websocket, merged so that each bar reaches the machine once and in order.

A bar still forming is never handed on; a streamed bar that leaves a gap is preceded by the missing
bars, fetched over REST; a repeated or older bar is dropped. Gaps are normal on the free IEX feed (a
minute without an IEX print has no bar: Market Data FAQ): the machine's box is the last `lookback` bars
that exist. An updated bar (`u`, recomputed 30 s after the minute with late trades) is not subscribed
to: a box already formed stays as it was (the guide freezes it while searching); history read over REST
at a (re)start includes the late trades.

A read the data plan refuses (FeedNotPermitted: `--feed sip` without a SIP subscription) is said once, in
one line, and the session goes on without new bars (the trade, the flatten and the exit are unaffected).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from ..broker.base import MarketData, StreamHandle, StreamStatus
from ..core.model import BAR_LENGTH, Bar, Session
from ..errors import BrokerError, FeedNotPermitted

log = logging.getLogger(__name__)

HISTORY_SLACK = 5  # bars read beyond the box's lookback, for the history at a (re)start


class BarFeed:
    def __init__(self, data: MarketData) -> None:
        self.data = data
        self.last: dict[str, datetime] = {}  # start of the newest bar handed on, per symbol
        self.stream: StreamHandle | None = None
        self._refused = False  # the plan refused the feed: said once

    def start_stream(
        self,
        symbols: Sequence[str],
        on_bar: Callable[[str, Bar], None],
        on_status: Callable[[StreamStatus, str], None],
    ) -> None:
        self.stream = self.data.stream_bars(list(symbols), on_bar, on_status)

    def stop_stream(self) -> None:
        if self.stream is not None:
            self.stream.stop()

    def has(self, symbol: str, bar_start: datetime) -> bool:
        """Has the bar starting at `bar_start` (or a later one) been handed on already?"""
        last = self.last.get(symbol)
        return last is not None and last >= bar_start

    def poll(self, symbol: str, session: Session, now: datetime) -> list[Bar]:
        """The bars of `symbol` closed since the last one handed on (this session's only), oldest first.
        [] when the read fails (the next poll catches up)."""
        last = self.last.get(symbol)
        start = session.open if last is None else last + BAR_LENGTH
        if start >= now:
            return []
        try:
            bars = self.data.get_bars(symbol, start, now)
        except BrokerError as exc:
            self._unavailable(symbol, exc)
            return []
        fresh = []
        for bar in bars:
            if bar.end > now or (last is not None and bar.t <= last):
                continue  # a bar still forming is not closed
            self.last[symbol] = last = bar.t
            fresh.append(bar)
        return fresh

    def streamed(self, symbol: str, bar: Bar, session: Session) -> list[Bar]:
        """A bar the websocket pushed, preceded by any it skipped (fetched over REST); [] when old."""
        last = self.last.get(symbol)
        if last is not None and bar.t <= last:
            return []
        missing = self.poll(symbol, session, bar.t) if last is not None and bar.t > last + BAR_LENGTH else []
        self.last[symbol] = bar.t
        return [*missing, bar]

    def history(self, symbol: str, session: Session | None, now: datetime, lookback: int) -> tuple[Bar, ...]:
        """The box's history for a reconcile: only while this session's bars have not reached the
        machine yet (start, new day). Later reconciles leave new bars to the minute's poll: a breakout bar
        merged as history would never be acted on. Yesterday's bars say nothing about today's box."""
        last = self.last.get(symbol)
        if last is not None and (session is None or last < session.open):
            del self.last[symbol]
            last = None
        if session is None or not session.open < now or last is not None:
            return ()
        start = max(session.open, now - timedelta(minutes=lookback + HISTORY_SLACK))
        try:
            recent = tuple(b for b in self.data.get_bars(symbol, start, now) if b.end <= now)
        except BrokerError as exc:
            self._unavailable(symbol, exc)  # the minute's poll reads them later
            return ()
        if recent:
            self.last[symbol] = recent[-1].t
        return recent

    def _unavailable(self, symbol: str, exc: BrokerError) -> None:
        if isinstance(exc, FeedNotPermitted):
            if not self._refused:
                log.error("%s: the data plan refuses this feed (%s): restart with --feed iex", symbol, exc)
            self._refused = True
            return
        log.warning("%s: bars unavailable: %s", symbol, exc)
