"""The dashboard's one page: HTML, CSS and plain JavaScript, no build step. Its only script besides its
own is the installed plotly package's bundle, served by our server (`/plotly.min.js`). Every value is
written with `textContent` (never as HTML). A live page listens to `/events` (EventSource reconnects
by itself); a journal page picks a day from `/api/days` and reads `/api/day/DAY`."""

from __future__ import annotations

import html
import json

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{display:flex;gap:1.5em;align-items:baseline;padding:.6em 1em;background:#1d2330;color:#fff;flex-wrap:wrap}
header h1{font-size:1.1em;margin:0}
#conn.live{color:#7fd88f}#conn.down{color:#ff8f8f}
main{padding:1em;display:grid;gap:1em}
section.symbol{background:#fff;border:1px solid #d9dde5;border-radius:6px;padding:.8em 1em}
section.symbol h2{margin:0 0 .3em;font-size:1.2em}
.phase{font-weight:600;padding:.1em .5em;border-radius:4px;background:#e8ecf4}
.phase.active_trade{background:#d9f2dd}.phase.done_for_the_day{background:#eee}
.phase.order_sent,.phase.order_submitted{background:#fff1c9}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.5em 0}
dt{color:#667}dd{margin:0}
table{border-collapse:collapse;margin:.3em 0 .8em}td,th{padding:.15em .7em;border-bottom:1px solid #eee;text-align:left}
th{color:#667;font-weight:500}.num{text-align:right;font-variant-numeric:tabular-nums}
.chart{height:360px}.note{color:#a05a00}.empty{color:#999}
.cols{display:grid;grid-template-columns:minmax(18em,1fr) 2fr;gap:1em}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
</style>
<script src="plotly.min.js"></script>
</head><body>
<header><h1>__TITLE__</h1><span id="mode"></span><span id="clock"></span>
<span id="stream"></span><span id="equity"></span><span id="total"></span><span id="conn"></span>
<label id="picker" hidden>day <select id="day"></select></label></header>
<main id="symbols"><p class="empty" id="waiting">waiting for the bot's first step…</p></main>
<script>
"use strict";
const MODE = __MODE__;
const $ = (sel, root) => (root || document).querySelector(sel);
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function price(v) { return v === null || v === undefined ? "" : Number(v).toFixed(v >= 1 ? 2 : 4); }
function fillTable(tbody, rows, cells) {
  tbody.replaceChildren(...rows.map(r => {
    const tr = el("tr");
    for (const [value, cls] of cells(r)) tr.appendChild(el("td", cls ? {class: cls} : {}, value));
    return tr;
  }));
  if (!rows.length) { const tr = el("tr"); tr.appendChild(el("td", {class: "empty", colspan: 6}, "none")); tbody.appendChild(tr); }
}
function section(sym) {
  const id = "sym-" + sym.replace(/[^A-Za-z0-9_-]/g, "_");
  let s = document.getElementById(id);
  if (s) return s;
  s = el("section", {class: "symbol", id: id, "data-symbol": sym});
  s.innerHTML = `<h2><span class="name"></span> <span class="phase"></span></h2>
  <div class="cols"><div>
  <dl><dt>position</dt><dd class="position"></dd><dt>stop</dt><dd class="stop"></dd>
  <dt>take-profit</dt><dd class="take-profit"></dd><dt>box</dt><dd class="box"></dd>
  <dt>last bar</dt><dd class="last-bar"></dd><dt>unrealized</dt><dd class="unrealized"></dd>
  <dt>realized</dt><dd class="realized"></dd></dl>
  <h3>working orders</h3><table><thead><tr><th>order</th><th>side</th><th>qty</th><th>type</th><th>price</th><th>status</th></tr></thead><tbody class="orders"></tbody></table>
  <h3>fills</h3><table><thead><tr><th>time</th><th>side</th><th>qty</th><th>price</th><th>leg</th></tr></thead><tbody class="fills"></tbody></table>
  <h3>trades</h3><table><thead><tr><th>side</th><th>qty</th><th>entry</th><th>exit</th><th>P&amp;L</th></tr></thead><tbody class="trades"></tbody></table>
  </div><div><p class="note" hidden></p><div class="chart"></div></div></div>`;
  $(".name", s).textContent = sym;
  $("#symbols").appendChild(s);
  return s;
}
function chart(s, v) {
  const div = $(".chart", s);
  const note = $(".note", s);
  if (v.bars_cached === false) { note.hidden = false; note.textContent = "no bars for " + v.symbol + " on this day in the bars cache (breakout-bot bars fetches them): fills only"; }
  else note.hidden = true;
  if (typeof Plotly === "undefined") return;
  const bars = v.bars || [];
  const traces = [{type: "candlestick", name: "1 min", x: bars.map(b => b.t), open: bars.map(b => b.open),
    high: bars.map(b => b.high), low: bars.map(b => b.low), close: bars.map(b => b.close), showlegend: false}];
  const fills = v.fills || [];
  for (const [leg, symbol, name] of [["entry", "triangle-up", "entries"], [null, "x", "exits"]]) {
    const f = fills.filter(x => leg ? x.leg === leg : x.leg !== "entry");
    if (f.length) traces.push({type: "scatter", mode: "markers", name: name, x: f.map(x => x.time), y: f.map(x => x.price),
      text: f.map(x => x.side + " " + x.qty + " @ " + price(x.price) + " (" + x.leg + ")"), hoverinfo: "text+x",
      marker: {size: 12, symbol: f.map(x => x.side === "buy" ? "triangle-up" : "triangle-down"), color: leg ? "#1f6feb" : "#d2691e", line: {width: 1, color: "#000"}}});
  }
  const shapes = [], annotations = [];
  const end = bars.length ? bars[bars.length - 1].t : null;
  if (v.box) {
    shapes.push({type: "rect", x0: v.box.start, x1: v.box.end, y0: v.box.low, y1: v.box.high, fillcolor: "rgba(31,111,235,.12)", line: {color: "#1f6feb", width: 1}});
  }
  const from = v.box ? v.box.end : (bars.length ? bars[0].t : null);
  for (const [level, color, label] of [[v.stop, "#d03030", "stop"], [v.take_profit, "#2c9a3c", "take-profit"]]) {
    if (level !== null && level !== undefined && from && end) {
      shapes.push({type: "line", x0: from, x1: end, y0: level, y1: level, line: {color: color, dash: "dot", width: 2}});
      annotations.push({x: end, y: level, text: label + " " + price(level), showarrow: false, xanchor: "right", yanchor: "bottom", font: {color: color}});
    }
  }
  Plotly.react(div, traces, {margin: {l: 50, r: 10, t: 10, b: 30}, xaxis: {rangeslider: {visible: false}},
    shapes: shapes, annotations: annotations, legend: {orientation: "h"}}, {displayModeBar: false, responsive: true});
}
function renderSymbol(v) {
  const s = section(v.symbol);
  const f = v.fields || {};
  const phase = $(".phase", s);
  phase.textContent = v.phase_words || (MODE === "journal" ? "" : v.phase);
  phase.className = "phase " + (v.phase || "");
  phase.hidden = !phase.textContent;
  $(".position", s).textContent = f.position || "";
  $(".stop", s).textContent = price(v.stop);
  $(".take-profit", s).textContent = price(v.take_profit);
  $(".box", s).textContent = v.box ? price(v.box.low) + " – " + price(v.box.high) + " (range " + Number(v.box.range).toFixed(2) + (v.box.floored ? ", floored" : "") + ")" : "";
  $(".last-bar", s).textContent = f["last bar"] || "";
  $(".unrealized", s).textContent = f.unrealized || "";
  $(".realized", s).textContent = v.realized_text || "";
  fillTable($(".orders", s), v.working_orders || [], o => [[o.order], [o.side], [o.qty, "num"], [o.type], [price(o.price), "num"], [o.status]]);
  fillTable($(".fills", s), v.fills || [], x => [[x.time.slice(11)], [x.side], [x.qty, "num"], [price(x.price), "num"], [x.leg]]);
  fillTable($(".trades", s), v.trades || [], t => [[t.direction], [t.qty, "num"], [price(t.entry_price), "num"], [t.exit_price === null ? "open" : price(t.exit_price), "num"], [t.realized_text, "num"]]);
  chart(s, v);
}
function render(page) {
  if (!page) return;
  const w = $("#waiting"); if (w) w.remove();
  if (page.kind === "run") {
    $("#mode").textContent = page.simulated ? "SIMULATED" : "";
    $("#clock").textContent = page.now.replace("T", " ") + " New York";
    $("#stream").textContent = page.stream_up ? "trade stream up" : "trade stream DOWN: entries wait";
    $("#equity").textContent = page.equity === null ? "" : "equity " + Number(page.equity).toFixed(2);
  }
  $("#total").textContent = "realized " + page.realized_text;
  const keep = new Set(page.symbols.map(s => s.symbol));
  for (const s of document.querySelectorAll("section.symbol")) if (!keep.has(s.dataset.symbol)) s.remove();
  for (const v of page.symbols) renderSymbol(v);
}
if (MODE === "run") {
  const conn = $("#conn");
  const source = new EventSource("events");
  source.addEventListener("state", e => render(JSON.parse(e.data)));
  source.onopen = () => { conn.textContent = "live"; conn.className = "live"; };
  source.onerror = () => { conn.textContent = "reconnecting… (is the bot running?)"; conn.className = "down"; };
} else {
  const picker = $("#picker"), select = $("#day");
  picker.hidden = false;
  $("#waiting").textContent = "reading the journal…";
  const show = d => fetch("api/day/" + d).then(r => r.json()).then(render);
  fetch("api/days").then(r => r.json()).then(days => {
    if (!days.length) { $("#waiting").textContent = "the journal has no fills yet"; return; }
    for (const d of days) select.appendChild(el("option", {value: d}, d));
    const wanted = new URLSearchParams(location.search).get("day");
    if (wanted && days.includes(wanted)) select.value = wanted;
    select.onchange = () => show(select.value);
    show(select.value);
  });
}
</script></body></html>
"""


def page_html(mode: str, title: str) -> str:
    """The page for a running bot (`mode` "run") or a journal's past days ("journal")."""
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__MODE__", json.dumps(mode))
