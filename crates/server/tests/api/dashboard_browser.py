"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, against a
listening edgecap server with simulated agents (crates/server/tests/api/dashboard.rs starts
it). Prints one JSON line of findings; the Rust test asserts on them. Saves a screenshot of
each view into $EDGECAP_SCREENSHOTS."""

import json
import os
import sys

from playwright.sync_api import sync_playwright

BASE = os.environ["EDGECAP_BASE"]
TOKEN = os.environ["EDGECAP_TOKEN"]
OTHER = os.environ["EDGECAP_OTHER_TOKEN"]
CAPTURE = os.environ["EDGECAP_CAPTURE"]
SHOTS = os.environ["EDGECAP_SCREENSHOTS"]
DEST = os.environ["EDGECAP_DEST"]
out = {}


def shot(page, name, full_page=True):
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=full_page)


def login(page, token):
    page.goto(BASE + "/login")
    page.fill("#token", token)
    page.click("button[type=submit]")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    console = []
    page.on("console", lambda m: console.append(m.type + ": " + m.text))

    # Without a session: sent to the login page. The CSP is on the answer.
    resp = page.goto(BASE + "/captures")
    out["no_session_url"] = page.url
    out["csp"] = resp.headers.get("content-security-policy", "")

    # A wrong token: the server's reason on the login page, no cookie.
    login(page, "ecp_" + "0" * 64)
    out["bad_login"] = page.text_content("#token-error")
    out["cookies_after_bad_login"] = len(ctx.cookies())
    shot(page, "login")

    # Log in: the fleet lists the nodes.
    login(page, TOKEN)
    page.wait_for_selector("#nodes tbody tr")
    out["fleet_url"] = page.url
    out["fleet_nodes"] = page.eval_on_selector_all(
        "#nodes tbody tr", "rows => rows.map(r => r.dataset.node)")
    out["fleet_text"] = page.text_content("#nodes")
    out["fleet_rate_ord01"] = page.text_content('#nodes tr[data-node="ord01"] td.num')
    cookie = [c for c in ctx.cookies() if c["name"] == "edgecap_session"][0]
    out["cookie"] = {"httpOnly": cookie["httpOnly"], "sameSite": cookie["sameSite"],
                     "looks_like_token": cookie["value"].startswith("ecp_")}
    out["cookie_visible_to_script"] = page.evaluate("document.cookie")
    shot(page, "fleet")

    # Captures: the capture is listed with its status.
    page.goto(BASE + "/captures")
    row = f'#captures tr[data-capture="{CAPTURE}"]'
    page.wait_for_selector(row)
    out["listed_status"] = page.text_content(row + " .status")

    # Bad input: the server's error next to the field.
    page.fill("#f-time_limit", "-5")
    page.fill("#f-filter", "udp port 53")
    page.click("#start")
    # (Selectors, not wait_for_function: the CSP forbids the eval that needs.)
    page.wait_for_selector('.field-error[data-for="time_limit"]:not(:empty)')
    out["field_error"] = page.text_content('.field-error[data-for="time_limit"]')
    out["url_after_bad_input"] = page.url
    shot(page, "captures")

    # The capture's detail, live: stop it and see the status pushed (server-sent events).
    page.goto(BASE + "/captures/" + CAPTURE)
    try:
        page.wait_for_selector("#capture-status")
    except Exception:
        print(page.content(), console, file=sys.stderr)
        raise
    out["detail_status"] = page.text_content("#capture-status")
    out["detail_nodes"] = page.eval_on_selector_all(
        "#node-results tbody tr", "rows => rows.map(r => r.dataset.node)")
    shot(page, "capture")
    page.click("#stop")
    page.wait_for_selector("#capture-status.success", timeout=15000)
    out["pushed_status"] = page.text_content("#capture-status")
    out["reloads"] = page.evaluate("performance.getEntriesByType('navigation').length")

    # Traffic: the chart and the heavy hitters (the simulated nodes observe nothing).
    page.goto(BASE + "/traffic")
    page.wait_for_selector("#chart svg")
    page.wait_for_selector("#hitters table")
    page.wait_for_selector("#chart polyline[data-series]")
    out["traffic_series"] = page.eval_on_selector_all(
        "#chart polyline[data-series]", "ls => ls.map(l => l.dataset.series)")
    out["hitters"] = page.eval_on_selector_all(
        "#top tbody tr[data-key]", "rows => rows.map(r => r.dataset.key)")
    # Brush the last ~3.5 minutes of the hour to zoom in (a look-back reaches at most the
    # account's time limit, 5 minutes): over 100 of the sampled seconds, which may have ended
    # up to half a minute before the test started.
    box = page.locator("#chart svg").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.94, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.999, y, steps=5)
    page.mouse.up()
    page.wait_for_url("**/traffic?*since=*")
    out["zoomed_url"] = page.url
    page.wait_for_selector("#chart polyline[data-series]")
    zoomed = page.url
    shot(page, "traffic")
    # The chart's numbers as a table (opened: built on demand).
    page.click("#chart-data summary")
    page.wait_for_selector("#chart-data tbody tr")
    out["chart_rates_ord01"] = page.eval_on_selector_all(
        '#chart-data tbody tr[data-series="ord01"] td.pps', "tds => tds.map(t => t.textContent)")
    top = '#top tr[data-key="198.18.1.1"]'
    page.click(top + " button.lookback")
    try:
        page.wait_for_url("**/captures/*", timeout=10000)
    except Exception:
        print(page.text_content("#action-error"), file=sys.stderr)
        raise
    page.wait_for_selector("#capture-status")
    out["lookback_url"] = page.url
    out["lookback_type"] = page.text_content("dl.facts dd:nth-of-type(2)")
    out["lookback_filter"] = page.text_content("dl.facts dd:nth-of-type(6)")
    lookback_url = page.url

    # Its packets: the sampled packets with their markers, then a display filter applied by
    # the server, a packet's header tree and hex, and a bad filter's message by the field.
    page.click("#packets-link")
    page.wait_for_selector("#packets tbody tr[data-index]")
    out["packet_payloads"] = page.eval_on_selector_all(
        "#packets tbody td.payload", "tds => tds.map(t => t.textContent)")
    out["packet_note"] = page.text_content("#packet-note")
    shot(page, "packets", full_page=False)  # the first rows; the whole page is 100 of them
    page.fill("#f-filter", "src port 40000")
    page.click("#apply-filter")
    page.wait_for_selector('#packets[data-filter="src port 40000"] tbody tr[data-index]')
    out["filtered_payloads"] = page.eval_on_selector_all(
        "#packets tbody td.payload", "tds => tds.map(t => t.textContent)")
    out["filtered_sources"] = page.eval_on_selector_all(
        "#packets tbody td.src", "tds => tds.map(t => t.textContent)")
    page.click("#packets tbody tr[data-index]")
    page.wait_for_selector("#packet-tree details")
    out["packet_layers"] = page.eval_on_selector_all(
        "#packet-tree details", "ds => ds.map(d => d.dataset.layer)")
    out["packet_hex"] = page.text_content("#hex")
    shot(page, "packet")
    page.fill("#f-filter", "tcp and and")
    page.click("#apply-filter")
    page.wait_for_selector('.field-error[data-for="filter"]:not(:empty)')
    out["bad_filter_error"] = page.text_content('.field-error[data-for="filter"]')

    page.goto(zoomed)
    page.click(top + " a.live")
    page.wait_for_selector(".estimate-result")
    out["live_url"] = page.url
    out["live_filter"] = page.input_value("#f-filter")
    out["live_estimate"] = page.text_content(".estimate-result")
    shot(page, "live")

    # Triggers: a bad threshold is refused with the server's message by its field; a good
    # trigger is listed.
    page.goto(BASE + "/triggers")
    page.wait_for_selector("#triggers")
    page.fill("#f-name", "udp flood")
    page.fill("#f-scope-filter", "udp")
    page.fill("#f-scope-colo_name", "ORD")
    page.fill("#f-condition-above", "-5")
    page.fill("#f-capture-destination_conf", DEST)
    page.click("#create-trigger")
    page.wait_for_selector('.field-error[data-for="condition.above"]:not(:empty)')
    out["trigger_field_error"] = page.text_content('.field-error[data-for="condition.above"]')
    out["triggers_after_bad"] = page.eval_on_selector_all(
        "#triggers tbody tr[data-trigger]", "r => r.length")
    page.fill("#f-condition-above", "50000")
    page.click("#create-trigger")
    try:
        page.wait_for_selector("#triggers tbody tr[data-trigger]", timeout=10000)
    except Exception:
        print(page.text_content("#new-trigger"), file=sys.stderr)
        raise
    out["trigger_names"] = page.eval_on_selector_all(
        "#triggers tbody tr[data-trigger] td.name", "tds => tds.map(t => t.textContent)")
    shot(page, "triggers")

    # Buckets: a destination that cannot be one shows the server's message by the field.
    page.goto(BASE + "/buckets")
    page.wait_for_selector("#ownerships")
    page.fill("#f-destination_conf", "s3://pcaps")
    page.click("#add-ownership")
    page.wait_for_selector('.field-error[data-for="destination_conf"]:not(:empty)')
    out["bucket_field_error"] = page.text_content('.field-error[data-for="destination_conf"]')
    # A directory on this host: the challenge file is written there; a wrong token is refused
    # by its field, the token read from the file validates.
    page.fill("#f-destination_conf", DEST)
    page.click("#add-ownership")
    row = "#ownerships tbody tr[data-ownership]"
    page.wait_for_selector(row)
    filename = page.get_attribute(row, "data-filename")
    out["challenge_place"] = page.text_content(row + " code")
    page.fill(row + " input[name=ownership_challenge]", "wrong")
    page.click(row + " form.validate button[type=submit]")
    page.wait_for_selector(row + ' .field-error[data-for="ownership_challenge"]:not(:empty)')
    out["challenge_error"] = page.text_content(
        row + ' .field-error[data-for="ownership_challenge"]')
    with open(os.path.join(DEST[len("file://"):], filename)) as f:
        token = f.read().strip()
    page.fill(row + " input[name=ownership_challenge]", token)
    page.click(row + " form.validate button[type=submit]")
    page.wait_for_selector(row + " .status.success")
    out["ownership_status"] = page.text_content(row + " .status")
    out["challenge_file"] = filename
    shot(page, "buckets")

    # A second account, in its own browser context: none of the first's captures.
    other = browser.new_context()
    op = other.new_page()
    login(op, OTHER)
    op.wait_for_selector("#nodes")
    op.goto(BASE + "/captures")
    op.wait_for_selector("#captures")
    out["other_sees_capture"] = op.query_selector(f'tr[data-capture="{CAPTURE}"]') is not None
    out["other_rows"] = op.eval_on_selector_all("#captures tbody tr[data-capture]", "r => r.length")
    op.goto(BASE + "/captures/" + CAPTURE)
    op.wait_for_selector("#view .error")
    out["other_detail"] = op.text_content("#view .error")
    op.goto(lookback_url + "/packets")
    op.wait_for_selector("#display-filter .form-error:not(:empty)")
    out["other_packets"] = op.text_content("#display-filter .form-error")
    op.goto(BASE + "/triggers")
    op.wait_for_selector("#triggers")
    out["other_triggers"] = op.eval_on_selector_all(
        "#triggers tbody tr[data-trigger]", "r => r.length")
    other.close()

    # The trigger can be deleted.
    page.goto(BASE + "/triggers")
    page.click("#triggers tbody tr[data-trigger] button.delete")
    page.wait_for_selector("#triggers tbody td.muted")
    out["triggers_after_delete"] = page.eval_on_selector_all(
        "#triggers tbody tr[data-trigger]", "r => r.length")

    # Log out: the session ends; the next page is the login.
    page.goto(BASE + "/")
    page.click("#logout")
    page.wait_for_url("**/login")
    page.goto(BASE + "/traffic")
    out["after_logout_url"] = page.url
    # Script errors only: the browser also logs the expected 401/400 answers (and the
    # missing favicon) as failed resource loads.
    out["console_errors"] = [c for c in console
                             if c.startswith("error") and "Failed to load resource" not in c]
    browser.close()

print(json.dumps(out))
sys.stdout.flush()
