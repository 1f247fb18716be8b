"""An entry whose outcome is unknown (`order_sent`) is resolved in bounded time, never waited on forever.

Part of the machine (core/machine.py has the entry point and the rules it keeps). The broker's answer
to the POST may be lost (a reset, a timeout, a 5xx) after the adapter's own lookup and its one re-send
with the same client_order_id (broker/alpaca/broker.py). Then, on the clock:

* from `LOOKUP_AFTER` on, every `LOOKUP_AFTER`, the machine asks the broker for the entry by its
  client_order_id (`LookupEntry`): found, it is adopted (an `OrderUpdate`); provably absent
  (`EntryNotFound`) once `ABSENT_AFTER` has passed since it was sent, it never arrived;
* a reconcile that lists today's orders without it, `ABSENT_AFTER` after it was sent, says the same;
* after `GIVE_UP_AFTER` with no answer at all (the broker unreachable), it is treated as not sent, and
  whatever of ours works at the broker is canceled (had it arrived, it could fill unseen).

"Not sent" searches again and gives the entry's number back: the next entry carries the same
client_order_id, so if the lost one reaches the broker after all, the broker refuses the second as a
duplicate (422 "client_order_id must be unique") and the adapter adopts the first. Two live entries
cannot exist. Issue 16: one lost entry used to keep the machine in `order_sent` for the rest of the day.
"""

from __future__ import annotations

from datetime import timedelta

from .events import Action, CancelAll, EntryNotFound, Log, LookupEntry
from .ids import entry_number
from .search import resume_search
from .state import ORDER_SENT, State, advance, evolve

LOOKUP_AFTER = timedelta(seconds=30)
# A POST that has not reached the broker this long after it was sent never will: the adapter gives each
# attempt 10 s, and a re-send follows the first at once.
ABSENT_AFTER = timedelta(seconds=60)
GIVE_UP_AFTER = timedelta(minutes=3)


def on_entry_timer(state: State, actions: list[Action]) -> tuple[State, list[Action]]:
    """In order_sent on a tick: ask the broker for the entry, or give up on it."""
    entry, sent_at, now = state.entry, state.entry_sent_at, state.now
    if entry is None or sent_at is None or now is None:
        return state, actions
    waited = now - sent_at
    if waited >= GIVE_UP_AFTER:
        # Unanswered, it may still have arrived: cancel whatever of ours works there (nothing holds a
        # position in order_sent), so that a lost entry cannot fill unseen later in the day.
        why = f"outcome still unknown after {int(waited.total_seconds())} s"
        return entry_not_sent(state, why, [*actions, CancelAll(state.symbol)])
    last = state.entry_lookup_at
    if waited < LOOKUP_AFTER or (last is not None and now - last < LOOKUP_AFTER):
        return state, actions
    return evolve(state, entry_lookup_at=now), [
        *actions,
        Log("info", f"{state.symbol}: entry {entry.client_order_id} unanswered; asking the broker"),
        LookupEntry(state.symbol, entry.client_order_id),
    ]


def on_entry_not_found(state: State, event: EntryNotFound) -> tuple[State, list[Action]]:
    entry = state.entry
    if state.phase is not ORDER_SENT or entry is None or entry.client_order_id != event.client_order_id:
        return state, []
    state = advance(state, event.now)
    return absent_at_broker(state, [])


def absent_at_broker(state: State, actions: list[Action]) -> tuple[State, list[Action]]:
    """The broker (a lookup, or today's orders) does not have the entry: it never arrived, if enough time
    has passed since it was sent for any attempt still on its way to have landed."""
    entry, sent_at, now = state.entry, state.entry_sent_at, state.now
    assert entry is not None
    if sent_at is not None and now is not None and now - sent_at < ABSENT_AFTER:
        return state, [
            *actions,
            Log("info", f"{state.symbol}: entry {entry.client_order_id} not seen at the broker yet"),
        ]
    return entry_not_sent(state, "is not at the broker", actions)


def entry_not_sent(state: State, why: str, actions: list[Action]) -> tuple[State, list[Action]]:
    """Search again, and let the next entry use this one's number (see the module docstring)."""
    entry = state.entry
    assert entry is not None
    number = entry_number(entry.client_order_id)
    state = evolve(state, entries_sent_today=min(state.entries_sent_today, number - 1))
    return resume_search(
        state,
        state.now,
        [
            *actions,
            Log(
                "warning",
                f"{state.symbol}: entry {entry.client_order_id} {why}; treating it as not sent and "
                "searching again (the next entry reuses its client_order_id, so it cannot be doubled)",
            ),
        ],
    )
