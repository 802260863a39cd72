"""The web skeleton in a real browser: log in, see the datasets, page through items with htmx (keyset pages)."""
import os

from tests.browser.conftest import log_in


def test_login_datasets_and_htmx_paging(browser, live_server, screenshots):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, live_server, "root")
    assert page.locator("table.grid td a", has_text="cc").count() == 1
    page.click("text=cc")
    page.wait_for_selector("#items")
    assert "rows" in page.inner_text(".pager")
    first_id = page.inner_text("#items tbody tr:first-child td:first-child")
    page.click("#items .pager >> text=Next")
    page.wait_for_selector(".pager a:text-matches('First')")  # (no eval under the CSP)
    assert page.inner_text("#items tbody tr:first-child td:first-child") != first_id
    assert "?after=49,50" in page.url.replace("%2C", ",")  # the keyset page after row 49 (item 50)
    page.screenshot(path=os.path.join(screenshots, "dataset.png"))
    page.close()


def test_wrong_password_is_refused(browser, live_server):
    page = browser.new_page()
    page.goto(live_server.url + "/login")
    page.fill("input[name=name]", "ana")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Unknown user or wrong password."
    page.close()
