"""The labeling screen in real headless Chromium against the real server: keyboard only, two analysts at once."""
import os

from labeler.store.db import Dataset, Label, Lease, User, database, open_database
from labeler.worker import jobs
from tests.browser.conftest import LiveServer, _free_port, log_in


def on_screen(page):
    """(item id, suggested label) on screen; item id None when nothing is left."""
    workspace = page.locator("#labeling")
    item = workspace.get_attribute("data-item-id")
    return (int(item) if item else None), workspace.get_attribute("data-suggested")


def press_and_wait(page, *keys):
    """Press ``keys`` in turn and wait until the server's reply has replaced the workspace."""
    page.evaluate("document.getElementById('labeling').setAttribute('data-stale', '')")
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_selector("#labeling:not([data-stale])")


def open_screen(browser, server, name):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, server, name)
    page.goto(server.url + "/datasets/cc/label")
    page.wait_for_selector("#labeling[data-item-id]")
    return page


def read_store(server, name):
    """(standing labels of ``name`` as {item id: (value, reason, note)}, undo rows, deferred leases) in the store."""
    open_database(server.store)
    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "cc")
        user = User.get(User.name == name)
        standing = {l.item_id: (l.value, l.reason, l.note)
                    for l in Label.effective(dataset).where(Label.annotator == user)}
        undos = Label.select().where((Label.kind == "undo") & (Label.annotator == user)).count()
        deferred = {lease.item_id for lease in Lease.select().where((Lease.state == "deferred") & (Lease.user == user))}
    return standing, undos, deferred


def test_label_twenty_items_with_the_keyboard_only(browser, live_server, screenshots):
    page = open_screen(browser, live_server, "ana")
    expected = {}  # item id -> (value, reason, note)
    history = []  # item ids labeled, in order, for undo
    skipped = set()
    reasons_used = iter(["1", "Enter"] * 20)
    reason_names = {"1": "card not present", "Enter": None}
    plan = ["a", "x", "1", "2", "Space", "a", "z", "a", "1", "Backspace", "2", "x", "a", "Space", "1", "note",
            "a", "x", "2", "1", "a", "x", "1", "a", "1", "2"]
    for step in plan:
        item, suggested = on_screen(page)
        other = "genuine" if suggested == "fraud" else "fraud"
        if step in ("z", "Backspace"):
            press_and_wait(page, step)
            undone = history.pop()
            del expected[undone]
            assert on_screen(page)[0] == undone  # the undone item is back in front
            continue
        if step == "Space":
            press_and_wait(page, step)
            skipped.add(item)
            assert on_screen(page)[0] not in (None, item)
            continue
        note = None
        if step == "note":
            note = "a x 1 z: typed, not keys"
            page.focus("textarea[name=note]")
            page.keyboard.type(note)
            assert page.locator("#labeling[data-stale]").count() == 0  # nothing was sent while typing
            page.keyboard.press("Escape")
            step = "1"
        value = {"a": suggested, "x": other, "1": "genuine", "2": "fraud"}[step]
        page.evaluate("document.getElementById('labeling').setAttribute('data-stale', '')")
        page.keyboard.press(step)
        reason = None
        if value == "fraud":
            page.wait_for_selector("#reasons:not([hidden])")
            key = next(reasons_used)
            reason = reason_names[key]
            page.keyboard.press(key)
        page.wait_for_selector("#labeling:not([data-stale])")
        assert page.locator("[data-outcome=recorded]").count() == 1
        expected[item] = (value, reason, note)
        history.append(item)
    assert len(expected) == 20

    page.keyboard.press("?")
    page.wait_for_selector("#label-help:not([hidden])")
    page.keyboard.press("Escape")
    page.wait_for_selector("#label-help", state="hidden")

    assert page.locator(".recent li").count() == 10
    assert "20 labels this session" in page.inner_text("#session-stats")
    assert not page.locator("#reasons").is_visible()
    # the header's totals poll the server (every 5 s) and catch up without a reload
    page.wait_for_selector("#label-status:has-text('20 labeled in total')", timeout=15000)  # (no eval under the CSP)
    page.screenshot(path=os.path.join(screenshots, "labeling.png"), full_page=True)

    standing, undos, deferred = read_store(live_server, "ana")
    assert standing == expected
    assert undos == 2
    assert skipped <= deferred
    assert any(reason == "card not present" for _, reason, _ in standing.values())
    page.close()


def test_two_analysts_at_once_never_see_the_same_item(browser, live_server):
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    pages = []
    for context, name in zip(contexts, ("ana", "bob")):
        page = context.new_page()
        log_in(page, live_server, name)
        page.goto(live_server.url + "/datasets/cc/label")
        page.wait_for_selector("#labeling[data-item-id]")
        pages.append(page)
    seen = [set(), set()]
    for _ in range(12):
        for index, page in enumerate(pages):
            item, suggested = on_screen(page)
            seen[index].add(item)
            assert item != on_screen(pages[1 - index])[0]
            key = "1" if suggested == "fraud" else "a"  # stay clear of the reason panel here
            press_and_wait(page, key)
    assert len(seen[0]) == 12 and len(seen[1]) == 12
    assert not seen[0] & seen[1]
    ana, _, _ = read_store(live_server, "ana")
    bob, _, _ = read_store(live_server, "bob")
    assert set(ana) == seen[0] and set(bob) == seen[1]
    for context in contexts:
        context.close()


def test_the_mouse_works_too_and_a_changed_mind_drops_the_pending_reason(browser, live_server):
    page = open_screen(browser, live_server, "ana")
    first, _ = on_screen(page)
    page.click(".keys button[data-key='2']")  # fraud: asks for a reason first
    page.wait_for_selector("#reasons:not([hidden])")
    page.evaluate("document.getElementById('labeling').setAttribute('data-stale', '')")
    page.click(".keys button[data-key='1']")  # changed mind: genuine
    page.wait_for_selector("#labeling:not([data-stale])")
    second, _ = on_screen(page)
    page.click(".keys button[data-key='2']")
    page.evaluate("document.getElementById('labeling').setAttribute('data-stale', '')")
    page.click("#reasons button:has-text('account takeover')")
    page.wait_for_selector("#labeling:not([data-stale])")
    standing, _, _ = read_store(live_server, "ana")
    assert standing == {first: ("genuine", None, None), second: ("fraud", "account takeover", None)}
    page.close()


def test_a_key_pressed_while_the_next_item_settles_in_is_not_lost(browser, live_server):
    """htmx wires the new item's buttons only after its settle delay; a key pressed in that window waits for it
    (it used to be dropped, or to post the form without htmx). A long settle delay makes the window certain."""
    page = open_screen(browser, live_server, "ana")
    page.evaluate("htmx.config.defaultSettleDelay = 600")
    first, _ = on_screen(page)
    press_and_wait(page, "1")
    second, _ = on_screen(page)
    assert page.locator("#labeling.htmx-settling").count() == 1  # still inside the settle window
    press_and_wait(page, "1")
    third, _ = on_screen(page)
    assert len({first, second, third}) == 3
    standing, _, _ = read_store(live_server, "ana")
    assert standing == {first: ("genuine", None, None), second: ("genuine", None, None)}
    assert page.evaluate("document.readyState") == "complete" and page.url.endswith("/datasets/cc/label")
    page.close()


def test_a_server_error_is_shown_and_the_key_works_again(browser, live_server):
    page = open_screen(browser, live_server, "ana")
    first, _ = on_screen(page)
    page.route("**/datasets/cc/label/*", lambda route: route.fulfill(status=500, body="boom"))
    page.keyboard.press("1")
    page.wait_for_selector("[data-role=failure]")
    assert "500" in page.inner_text("[data-role=failure]")
    page.unroute("**/datasets/cc/label/*")
    press_and_wait(page, "1")
    assert on_screen(page)[0] != first
    standing, _, _ = read_store(live_server, "ana")
    assert standing == {first: ("genuine", None, None)}
    page.close()


def test_the_page_waits_for_the_workers_first_queue_and_shows_it_unasked(browser, imported_store, tmp_path):
    """Before the worker's first refill the page says it is preparing and polls; once the job ran (here the
    test plays the worker) the first item appears without a reload or a key."""
    log_path = tmp_path / "server.log"
    server = LiveServer(imported_store, _free_port(), str(log_path))
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, server, "ana")
        page.goto(server.url + "/datasets/cc/label")
        preparing = page.locator("[data-preparing]")
        assert "Preparing the queue" in preparing.inner_text()
        assert page.locator("#labeling").get_attribute("data-item-id") is None
        open_database(imported_store)
        with database.connection_context():
            assert set(jobs.run_queued(server.config).values()) == {"done"}
        page.wait_for_selector("#labeling[data-item-id]", timeout=15000)
        assert page.locator("[data-preparing]").count() == 0
        assert page.locator("#labeling button.accept").count() == 1
        page.close()
    finally:
        server.stop()
        print(f"--- {log_path} ---\n{log_path.read_text()}")


def test_the_page_runs_under_its_content_security_policy(browser, live_server):
    """The server's CSP allows no inline script or style: the page loads, htmx and the keys work, and the browser
    reports no violation."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    messages, violations = [], []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(str(error)))
    log_in(page, live_server, "ana")
    page.evaluate("document.addEventListener('securitypolicyviolation', e => window.__csp = (window.__csp || [])"
                  ".concat([e.violatedDirective + ' ' + e.blockedURI]))")
    reply = page.goto(live_server.url + "/datasets/cc/label")
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    page.evaluate("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                  "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI))")
    page.wait_for_selector("#labeling[data-item-id]")
    first, _ = on_screen(page)
    press_and_wait(page, "1")
    press_and_wait(page, "Space")
    violations = page.evaluate("window.__csp")
    assert violations == []
    assert not [text for text in messages if "Content Security Policy" in text or "Refused" in text], messages
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    assert page.locator("style").count() == 0  # htmx added no inline style
    standing, _, deferred = read_store(live_server, "ana")
    assert standing == {first: ("genuine", None, None)} and len(deferred) == 1
    page.close()


def _slow_requests(page, milliseconds=400):
    """Each request leaves the page ``milliseconds`` late, so keys certainly arrive while a reply is on its way."""
    page.evaluate("""ms => { const send = XMLHttpRequest.prototype.send;
        XMLHttpRequest.prototype.send = function (body) { setTimeout(() => send.call(this, body), ms); }; }""",
                  milliseconds)


def test_keys_pressed_during_a_round_trip_are_queued_and_applied_in_order(browser, live_server):
    page = open_screen(browser, live_server, "ana")
    _slow_requests(page)
    first, _ = on_screen(page)
    page.keyboard.press("Space")
    page.wait_for_timeout(50)
    page.keyboard.press("Space")  # 50 ms later: the first skip is still on its way
    page.keyboard.press("1")
    queued = page.locator("#key-queue")
    assert queued.is_visible() and queued.inner_text() == "2 keys queued: space 1"
    page.wait_for_selector("#key-queue[hidden]", state="attached", timeout=10000)
    page.wait_for_selector("[data-outcome=recorded]", timeout=10000)  # the "1" comes last
    third, _ = on_screen(page)
    standing, _, deferred = read_store(live_server, "ana")
    assert first in deferred and len(deferred) == 2  # two skips, not one
    (labeled,) = standing
    assert standing[labeled] == ("genuine", None, None) and labeled not in deferred and third != labeled
    page.close()


def test_a_key_never_falls_through_to_a_focused_button(browser, live_server):
    """With "accept genuine" focused, x (fraud, which asks for a reason) then space must not click it: space
    means skip, and has no meaning while the reason panel is open."""
    page = open_screen(browser, live_server, "ana")
    for _ in range(30):
        if on_screen(page)[1] == "genuine":
            break
        press_and_wait(page, "Space")
    item, suggested = on_screen(page)
    assert suggested == "genuine"
    page.focus(".keys button.accept")
    page.keyboard.press("x")
    page.wait_for_selector("#reasons:not([hidden])")
    page.keyboard.press("Space")
    page.wait_for_timeout(500)
    assert on_screen(page)[0] == item and page.locator("#reasons:not([hidden])").count() == 1
    assert read_store(live_server, "ana")[0] == {}
    press_and_wait(page, "Enter")  # enter's own meaning here: fraud without a reason
    assert read_store(live_server, "ana")[0] == {item: ("fraud", None, None)}
    # a button clicked with the mouse does not keep the focus for a later space or enter
    shown, _ = on_screen(page)
    page.click(".keys button.skip")
    page.wait_for_selector(f"#labeling[data-item-id]:not([data-item-id='{shown}'])")
    assert page.evaluate("document.activeElement.tagName") != "BUTTON"
    page.close()
