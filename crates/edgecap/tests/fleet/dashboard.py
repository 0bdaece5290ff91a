"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, against a real
edgecap server and real agents in the lab (crates/edgecap/tests/fleet/dashboard.rs starts them
and sends the traffic). Reads what the pages show; the Rust test compares it with the lab's
truth (nft counters, the markers it sent, the files in the destination).

It talks to the test on its standard streams, one line each way: "live <id>" once the live
capture's page is open (the test answers "sent" after the first packets), then "more" once the
page showed that progress (the test answers "sent" after the rest); finally "result <JSON>".
On a failure it saves a screenshot of the page into $EDGECAP_SHOTS."""

import json
import os
import sys
import time
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import sync_playwright

BASE = os.environ["EDGECAP_BASE"]
TOKEN = os.environ["EDGECAP_TOKEN"]
OTHER = os.environ["EDGECAP_OTHER_TOKEN"]
DEST = os.environ["EDGECAP_DEST"]
SINCE = int(os.environ["EDGECAP_SINCE"])
UNTIL = int(os.environ["EDGECAP_UNTIL"])
BRUSH = (float(os.environ["EDGECAP_BRUSH_FROM"]), float(os.environ["EDGECAP_BRUSH_TO"]))
HITTER = os.environ["EDGECAP_HITTER"]
NODES = os.environ["EDGECAP_NODES"]
LIVE_FIRST = int(os.environ["EDGECAP_LIVE_FIRST"])
LIVE_FILTER = os.environ["EDGECAP_LIVE_FILTER"]
SHOTS = os.environ["EDGECAP_SHOTS"]
out = {}


def tell(line):
    """One line to the test, and its answer."""
    print(line, flush=True)
    answer = sys.stdin.readline().strip()
    if answer != "sent":
        raise RuntimeError("the test answered %r to %r" % (answer, line))


def login(page, token):
    page.goto(BASE + "/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(BASE + "/")


def chart_rows(page):
    """The chart's numbers as its table shows them: [series, step start, packets, rate]."""
    page.click("#chart-data summary")
    page.wait_for_selector("#chart-data tbody tr")
    return page.eval_on_selector_all(
        "#chart-data tbody tr",
        "rs => rs.map(r => [r.dataset.series, Number(r.dataset.t),"
        " r.querySelector('.packets').textContent, r.querySelector('.pps').textContent])")


def node_rows(page):
    """The capture page's per-node rows: [node, status, packets, file]."""
    return page.eval_on_selector_all(
        "#node-results tbody tr",
        "rs => rs.map(r => [r.dataset.node, r.children[1].textContent,"
        " Number(r.children[2].textContent), r.children[5].textContent])")


def brush(page, frm, to):
    """A real mouse drag across the chart from second `frm` to second `to`, placed with the
    chart's own geometry (its time axis runs along the x axis line, over the shown range)."""
    svg = page.locator("#chart svg.chart")
    box = svg.bounding_box()
    view_w = float(svg.get_attribute("viewBox").split()[2])
    axis = page.locator("#chart svg.chart line.axis").first
    x1, x2 = float(axis.get_attribute("x1")), float(axis.get_attribute("x2"))

    def px(sec):
        vx = x1 + (sec - SINCE) / (UNTIL - SINCE) * (x2 - x1)
        return box["x"] + vx / view_w * box["width"]

    y = box["y"] + box["height"] / 2
    page.mouse.move(px(frm), y)
    page.mouse.down()
    page.mouse.move(px(to), y, steps=8)
    page.mouse.up()


def run(p):
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    console, streams = [], []
    page.on("console", lambda m: console.append(m.type + ": " + m.text))
    page.on("request", lambda r: streams.append(r.url) if r.url.endswith("/events") else None)
    try:
        # 1. Log in with the API token: the fleet lists the lab's nodes, connected.
        login(page, TOKEN)
        page.wait_for_selector("#nodes tbody tr[data-node]")
        out["fleet"] = page.eval_on_selector_all(
            "#nodes tbody tr[data-node]", "rs => rs.map(r => [r.dataset.node, r.children[1].textContent])")

        # 2. The traffic of the lab's range, by node; brush the range around the middle phase.
        page.goto(BASE + "/traffic?since=%d&until=%d" % (SINCE, UNTIL))
        page.wait_for_selector("#chart polyline[data-series]")
        out["series"] = page.eval_on_selector_all(
            "#chart polyline[data-series]", "ls => ls.map(l => l.dataset.series)")
        unzoomed = page.url
        brush(page, *BRUSH)
        page.wait_for_url(lambda u: u != unzoomed)
        q = parse_qs(urlparse(page.url).query)
        out["brushed"] = [int(q["since"][0]), int(q["until"][0])]
        zoomed = page.url
        page.wait_for_selector("#chart polyline[data-series]")
        out["chart_rows"] = chart_rows(page)
        out["hitters"] = page.eval_on_selector_all(
            "#top tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)")

        # 3. A look-back capture of the brushed range and the top destination: its packets.
        page.click('#top tr[data-key="%s"] button.lookback' % HITTER)
        page.wait_for_url("**/captures/*", timeout=15000)
        page.wait_for_selector("#capture-status")
        out["lookback_url"] = page.url
        out["lookback_status"] = page.text_content("#capture-status")
        page.click("#packets-link")
        payloads = []
        while True:
            page.wait_for_selector("#packets tbody tr[data-index], #packet-note")
            payloads += page.eval_on_selector_all(
                "#packets tbody td.payload", "tds => tds.map(t => t.textContent)")
            nxt = page.locator("#next-page")
            if nxt.count() == 0 or nxt.is_disabled():
                break
            last = page.get_attribute("#packets tbody tr[data-index]:last-child", "data-index")
            nxt.click()
            page.wait_for_selector('#packets tbody tr[data-index="%d"]' % (int(last) + 1))
        out["lookback_payloads"] = payloads
        out["lookback_note"] = page.text_content("#packet-note")

        # 4. A live capture from the form, opened from the brushed range's top destination
        # (pre-filled, its size estimated from the rings), then given the test's own filter:
        # progress pushed to its page, then its files.
        page.goto(zoomed)
        page.click('#top tr[data-key="%s"] a.live' % HITTER)
        page.wait_for_selector(".estimate-result")
        out["live_prefilled"] = [page.input_value("#f-filter"), page.input_value("#f-nodes")]
        out["live_estimate"] = page.text_content(".estimate-result")
        page.fill("#f-nodes", NODES)
        page.fill("#f-filter", LIVE_FILTER)
        page.fill("#f-time_limit", "60")
        page.fill("#f-destination_conf", DEST)
        # Fewer packets than the selected nodes: the server's refusal under the field.
        page.fill("#f-packet_limit", "1")
        page.click("#start")
        page.wait_for_selector('.field-error[data-for="packet_limit"]:not(:empty)')
        out["limit_error"] = page.text_content('.field-error[data-for="packet_limit"]')
        out["url_after_limit_error"] = page.url
        page.fill("#f-packet_limit", "20")
        page.click("#start")
        page.wait_for_url("**/captures/*")
        page.wait_for_selector("#capture-status")
        live = urlparse(page.url).path.rsplit("/", 1)[1]
        out["live_id"] = live
        tell("live " + live)
        deadline = time.monotonic() + 30
        rows = node_rows(page)
        while time.monotonic() < deadline:
            rows = node_rows(page)
            if len(rows) == 2 and all(r[2] >= LIVE_FIRST for r in rows):
                break
            time.sleep(0.1)
        out["live_progress"] = rows
        out["live_progress_status"] = page.text_content("#capture-status")
        tell("more")
        page.wait_for_selector("#capture-status.success", timeout=30000)
        out["live_done"] = node_rows(page)
        out["live_page_loads"] = page.evaluate("performance.getEntriesByType('navigation').length")
        out["live_streams"] = [u for u in streams if "/pcaps/" + live + "/" in u]
        # Its packets: the server reads the nodes' files in the directory (its own host).
        page.click("#packets-link")
        page.wait_for_selector("#packets tbody tr[data-index]")
        out["live_files"] = page.eval_on_selector_all("#f-file option", "os => os.map(o => o.value)")
        out["live_payloads"] = page.eval_on_selector_all(
            "#packets tbody td.payload", "tds => tds.map(t => t.textContent)")

        # 5. A second account (restricted to its own prefix): none of the first's captures,
        # and in the same range only its own traffic.
        other = browser.new_context(viewport={"width": 1280, "height": 900})
        op = other.new_page()
        login(op, OTHER)
        op.goto(BASE + "/captures")
        op.wait_for_selector("#captures")
        out["other_captures"] = op.eval_on_selector_all(
            "#captures tbody tr[data-capture]", "rs => rs.map(r => r.dataset.capture)")
        op.goto(out["lookback_url"])
        op.wait_for_selector("#view .error")
        out["other_detail"] = op.text_content("#view .error")
        op.goto(out["lookback_url"] + "/packets")
        op.wait_for_selector("#display-filter .form-error:not(:empty)")
        out["other_packets"] = op.text_content("#display-filter .form-error")
        a, b = out["brushed"]
        op.goto(BASE + "/traffic?since=%d&until=%d&by=src" % (a, b))
        op.wait_for_selector("#hitters table")
        out["other_chart_rows"] = chart_rows(op) if op.locator("#chart-data").count() else []
        out["other_hitters"] = op.eval_on_selector_all(
            "#top tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)")
        other.close()
        out["zoomed_url"] = zoomed
    except Exception:
        page.screenshot(path=os.path.join(SHOTS, "failure.png"), full_page=True)
        print(page.content(), file=sys.stderr)
        raise
    finally:
        # Script errors only: the browser also logs the expected 4xx answers as failed loads.
        out["console_errors"] = [c for c in console
                                 if c.startswith("error") and "Failed to load resource" not in c]
        browser.close()


with sync_playwright() as pw:
    run(pw)
print("result " + json.dumps(out), flush=True)
