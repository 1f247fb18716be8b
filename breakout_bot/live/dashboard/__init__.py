"""The read-only web dashboard: `view.py` (status and journal → the page's JSON, pure), `server.py`
(aiohttp on its own thread and loop: the page, plotly's bundle, server-sent events, the token),
`feed.py` (the runner observer and the journal's past days), `page.py` (the HTML and its script).
It imports nothing that can trade (tests/test_architecture.py holds it to that)."""
