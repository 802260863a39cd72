"""Finding items in real headless Chromium against the real server: open an item by its id from the labeling
screen with the key (the keys do nothing while the id is typed), and filter the item table by label (htmx)."""
from labeler.store.db import Item, database, open_database
from tests.browser.conftest import log_in
from tests.browser.test_labeling_browser import on_screen, open_screen, press_and_wait


def external_ids(server, item_ids):
    open_database(server.store)
    with database.connection_context():
        return dict(Item.select(Item.id, Item.external_id).where(Item.id.in_(item_ids)).tuples())


def test_open_an_item_by_id_with_the_key_and_filter_the_table_by_label(browser, live_server, screenshots):
    page = open_screen(browser, live_server, "ana")
    labeled = []
    for _ in range(3):
        labeled.append(on_screen(page)[0])
        press_and_wait(page, "1")  # genuine
    on_now = on_screen(page)[0]
    external = external_ids(live_server, labeled)
    target = external[labeled[0]]

    page.keyboard.press("g")
    field = page.locator("#find-panel input[name=id]")
    field.wait_for(state="visible")
    assert page.evaluate("document.activeElement.name") == "id"
    # typed digits are the id, not label keys: nothing is posted and the item on screen stays
    page.keyboard.type(f"2{target}")  # (2 is the key of fraud)
    page.keyboard.press("Home")
    page.keyboard.press("Delete")
    assert field.input_value() == target and on_screen(page)[0] == on_now
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/datasets/cc/items/{target}")
    standing = page.inner_text("[data-standing]")
    assert "genuine" in standing and "single" in standing
    assert page.locator("[data-decisions] tbody tr").count() == 1

    page.goto(live_server.url + "/datasets/cc/label")
    page.wait_for_selector("#labeling[data-item-id]")
    assert on_screen(page)[0] == on_now  # still this analyst's item
    page.keyboard.press("/")
    page.locator("#find-panel").wait_for(state="visible")
    page.keyboard.press("Escape")  # leaves the field, then closes the panel
    page.keyboard.press("Escape")
    page.locator("#find-panel").wait_for(state="hidden")

    page.goto(live_server.url + "/datasets/cc")
    page.select_option("select[name=label]", "genuine")
    page.click("form[data-filters] button[type=submit]")
    page.wait_for_selector("[data-matching]:text-matches('3 rows match')")  # (no eval under the CSP)
    assert "label=genuine" in page.url
    shown = page.locator("#items tbody tr td:first-child a").all_inner_texts()
    assert sorted(shown) == sorted(external.values())
    page.screenshot(path=f"{screenshots}/find-items.png", full_page=True)
    page.click(f"#items tbody a:text-is('{target}')")
    page.wait_for_url(f"{live_server.url}/datasets/cc/items/{target}")
    page.close()


def test_an_unknown_id_is_one_line(browser, live_server):
    page = browser.new_page()
    log_in(page, live_server, "ana")
    page.goto(live_server.url + "/datasets/cc")
    page.fill("form.find-item input[name=id]", "no-such-id")
    page.click("form.find-item button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "no item no-such-id in dataset cc"
    page.close()


def test_a_known_fraud_is_labeled_on_its_page(browser, live_server, screenshots):
    open_database(live_server.store)
    with database.connection_context():
        target = Item.select(Item.external_id).order_by(Item.id.desc()).scalar()  # in no analyst's hands
    page = browser.new_page()
    log_in(page, live_server, "ana")
    page.goto(live_server.url + "/datasets/cc")
    page.fill("form.find-item input[name=id]", target)
    page.click("form.find-item button[type=submit]")
    page.wait_for_url(f"{live_server.url}/datasets/cc/items/{target}")
    assert "No label yet" in page.inner_text("[data-standing]")
    form = page.locator("form[data-found-label]")
    form.locator("select[name=reason]").select_option("account takeover")
    form.locator("input[name=note]").fill("chargeback from the issuer")
    form.locator("button[value=fraud]").click()
    page.wait_for_selector("[data-flash]")
    assert page.inner_text("[data-flash]") == f"Labeled transaction {target} as fraud."
    assert "fraud" in page.inner_text("[data-standing]") and page.locator("form[data-found-label]").count() == 0
    row = page.locator("[data-decisions] tbody tr").inner_text()
    assert "account takeover" in row and "chargeback from the issuer" in row and "found by analyst" in row
    page.screenshot(path=f"{screenshots}/found-label.png", full_page=True)
    page.close()
