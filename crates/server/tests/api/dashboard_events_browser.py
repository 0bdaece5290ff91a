"""The dashboard's events page and the events on the traffic chart in a real headless Chromium
(Debian's), driven by Playwright, against a listening edgecap server where a simulated agent
fired a trigger (crates/server/tests/api/dashboard/events.rs starts it). Prints one JSON line
of findings; the Rust test asserts on them. Saves docs/screenshots/events.png."""

import json
import os

from playwright.sync_api import sync_playwright

BASE = os.environ["EDGECAP_BASE"]
TOKEN = os.environ["EDGECAP_TOKEN"]
OTHER = os.environ["EDGECAP_OTHER_TOKEN"]
SHOTS = os.environ["EDGECAP_SCREENSHOTS"]
out = {}


def login(page, token):
    page.goto(BASE + "/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(BASE + "/")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    console = []
    page.on("console", lambda m: console.append(m.type + ": " + m.text))
    # Every answer the pages got that failed (the API's and the pages' own).
    failed = []
    page.on("response", lambda r: failed.append("%d %s" % (r.status, r.url)) if r.status >= 400 else None)

    login(page, TOKEN)
    # The navigation links the page.
    page.click('header nav a[href="/events"]')
    page.wait_for_selector("#events section.event")
    out["events_url"] = page.url
    out["events"] = page.eval_on_selector_all(
        "#events section.event", "s => s.map(e => e.dataset.event)")
    out["event_text"] = page.text_content("#events section.event:nth-of-type(2)")
    out["ongoing_text"] = page.text_content("#events section.event:nth-of-type(1)")
    out["capture_links"] = page.eval_on_selector_all(
        "#events a.capture-link", "a => a.map(l => l.getAttribute('href'))")
    out["nft"] = page.eval_on_selector_all(".signature pre.nft", "p => p.map(x => x.textContent)")
    out["expression"] = page.text_content(".signature code.expression")
    page.screenshot(path=os.path.join(SHOTS, "events.png"), full_page=True)
    # The capture link opens the capture's detail.
    page.click("#events a.capture-link")
    page.wait_for_selector("#capture-status")
    out["capture_url"] = page.url

    # The traffic chart of the last 15 minutes: the event marked, with its tooltip; the
    # marker leads to the event.
    page.goto(BASE + "/traffic?span=900")
    page.wait_for_selector("#chart polyline[data-series]")
    page.wait_for_selector("#chart .event-marker")
    out["markers"] = page.eval_on_selector_all(
        "#chart .event-marker", "m => m.map(x => x.dataset.event)")
    out["ongoing_markers"] = page.eval_on_selector_all(
        "#chart .event-marker:has(rect.ongoing)", "m => m.map(x => x.dataset.event)")
    ended = "#chart .event-marker:has(rect:not(.ongoing))"
    out["marker_title"] = page.text_content(ended + " title")
    out["marker_width"] = page.locator(ended + " rect").bounding_box()["width"]
    out["chart_events"] = page.text_content("#chart-events")
    page.screenshot(path=os.path.join(SHOTS, "traffic-events.png"), full_page=True)
    page.click(ended + " rect")
    page.wait_for_url("**/events#event-*")
    out["marker_url"] = page.url
    # Script errors only: the browser also logs the missing favicon as a failed load.
    out["console_errors"] = [c for c in console
                             if c.startswith("error") and "Failed to load resource" not in c]
    out["failed_responses"] = failed

    # Another account: no events on its page, none on its chart.
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    page = other.new_page()
    login(page, OTHER)
    page.goto(BASE + "/events")
    page.wait_for_selector("#events")
    out["other_events"] = page.locator("#events section.event").count()
    out["other_text"] = page.text_content("#events")
    page.goto(BASE + "/traffic?span=900")
    page.wait_for_selector("#chart-events")
    out["other_markers"] = page.locator("#chart .event-marker").count()
    out["other_chart_events"] = page.text_content("#chart-events")
    browser.close()

print(json.dumps(out))
