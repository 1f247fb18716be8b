"""The pure core: the strategy's arithmetic and the trading state machine. No I/O, no clock, no threads;
it imports nothing of the package outside `core` (tests/test_architecture.py holds the rule).

    model.py      bars, boxes, sessions, orders, fills; the order vocabularies adapters map to
    ticks.py      prices on Alpaca's ticks
    strategy.py   box, signal, bracket prices, sizing
    positions.py  average-cost position bookkeeping
    params.py     the strategy's parameters
    ids.py        our client order ids
    events.py     what the machine hears and asks for
    machine.py    step(state, event) -> (state, actions), and the rules it keeps
"""
