"""The bar feed: closed one-minute bars per symbol, polled over REST once a minute or pushed by the
market-data websocket, merged so that each bar reaches the machine once and in order.

A bar still forming is never handed on; a streamed bar that leaves a gap waits for the minute's poll,
which reads it with the missing bars (one request for every symbol); a repeated or older bar is dropped. Gaps are normal on the free IEX feed (a
minute without an IEX print has no bar: Market Data FAQ): the machine's box is the last `lookback` bars
that exist. An updated bar (`u`, recomputed 30 s after the minute with late trades) is not subscribed
to: a box already formed stays as it was (the guide freezes it while searching); history read over REST
at a (re)start includes the late trades. A streamed bar after a gap is left to the minute's poll.

A read the data plan refuses (FeedNotPermitted: `--feed sip` without a SIP subscription) is said once, in
one line, and the session goes on without new bars (the trade, the flatten and the exit are unaffected).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from ..broker.base import MarketData, StreamHandle, StreamStatus
from ..core.model import BAR_LENGTH, Bar, Session
from ..errors import BrokerError, FeedNotPermitted

log = logging.getLogger(__name__)

HISTORY_SLACK = 5  # bars read beyond the box's lookback, for the history at a (re)start
# The minute's poll reads every symbol in one request from the oldest bar any of them still needs. A
# thin symbol (no IEX print for an hour) would stretch that window over the whole universe, so a symbol
# already polled is read again only this far back: a bar published later than this after its minute is
# not waited for (it would be far too old to trade on: core/search.py, MAX_SIGNAL_AGE).
LATE_BAR_SLACK = timedelta(minutes=5)


class BarFeed:
    def __init__(self, data: MarketData) -> None:
        self.data = data
        self.last: dict[str, datetime] = {}  # start of the newest bar handed on, per symbol
        self.polled: dict[str, datetime] = {}  # end of the last successful poll that read the symbol
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

    def poll_all(self, sessions: Mapping[str, Session], now: datetime) -> dict[str, list[Bar]]:
        """Each symbol's bars closed since the last one handed on (this session's only), oldest first,
        read in one request for all of them (MarketData.get_bars_multi). {} when the read fails (the
        next poll catches up); a symbol with nothing new is absent."""
        starts = {s: self._poll_start(s, session, now) for s, session in sessions.items()}
        wanted = {s: start for s, start in starts.items() if start < now}
        if not wanted:
            return {}
        try:
            read = self.data.get_bars_multi(list(wanted), min(wanted.values()), now)
        except BrokerError as exc:
            self._unavailable(", ".join(wanted) if len(wanted) <= 3 else f"{len(wanted)} symbols", exc)
            return {}
        out = {}
        for symbol in wanted:
            self.polled[symbol] = now
            fresh = self._take(symbol, read.get(symbol, []), now)
            if fresh:
                out[symbol] = fresh
        return out

    def _poll_start(self, symbol: str, session: Session, now: datetime) -> datetime:
        last = self.last.get(symbol)
        start = session.open if last is None else last + BAR_LENGTH
        polled = self.polled.get(symbol)
        if polled is not None and session.open <= polled <= now:
            start = max(start, polled - LATE_BAR_SLACK)
        return start

    def _take(self, symbol: str, bars: Sequence[Bar], now: datetime) -> list[Bar]:
        """The closed bars newer than the last handed on, which become the last."""
        last = self.last.get(symbol)
        fresh = []
        for bar in bars:
            if bar.end > now or (last is not None and bar.t <= last):
                continue  # a bar still forming is not closed
            self.last[symbol] = last = bar.t
            fresh.append(bar)
        return fresh

    def streamed(self, symbol: str, bar: Bar, session: Session) -> list[Bar]:
        """A bar the websocket pushed; [] when old, and [] when it leaves a gap: the minute's poll
        (BarFeed.poll_all, due seconds after the close) then reads it with whatever came before it, in
        one request for every symbol. A gap is common on IEX (a minute without a print has no bar): a
        REST read per symbol and gap would make the request cost grow with the universe."""
        last = self.last.get(symbol)
        if last is not None and bar.t <= last:
            return []
        if last is not None and bar.t > last + BAR_LENGTH:
            return []
        self.last[symbol] = bar.t
        return [bar]

    def histories(
        self, symbols: Sequence[str], session: Session | None, now: datetime, lookback: int
    ) -> dict[str, tuple[Bar, ...]]:
        """The boxes' history for a reconcile, in one read for every symbol that needs it: only while
        this session's bars have not reached its machine yet (start, new day). Later reconciles leave new
        bars to the minute's poll: a breakout bar merged as history would never be acted on. Yesterday's
        bars say nothing about today's box. A symbol without history is absent."""
        needed = []
        for symbol in symbols:
            last = self.last.get(symbol)
            if last is not None and (session is None or last < session.open):
                del self.last[symbol]
                self.polled.pop(symbol, None)
                last = None
            if last is None:
                needed.append(symbol)
        if session is None or not session.open < now or not needed:
            return {}
        start = max(session.open, now - timedelta(minutes=lookback + HISTORY_SLACK))
        try:
            read = self.data.get_bars_multi(needed, start, now)
        except BrokerError as exc:
            self._unavailable(", ".join(needed) if len(needed) <= 3 else f"{len(needed)} symbols", exc)
            return {}  # the minute's poll reads them later
        out = {}
        for symbol in needed:
            recent = tuple(b for b in read.get(symbol, []) if b.end <= now)
            if recent:
                self.last[symbol] = recent[-1].t
                out[symbol] = recent
        return out

    def _unavailable(self, symbol: str, exc: BrokerError) -> None:
        if isinstance(exc, FeedNotPermitted):
            if not self._refused:
                log.error("%s: the data plan refuses this feed (%s): restart with --feed iex", symbol, exc)
            self._refused = True
            return
        log.warning("%s: bars unavailable: %s", symbol, exc)
