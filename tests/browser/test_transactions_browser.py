"""Raw transactions in real headless Chromium against the real server: the card's history on screen and one
decision for a run of the card's transactions with the keyboard (b, enter), taken back by undo; and a full disk
said in the server's own words."""
import gzip

import pytest

from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.store.db import Dataset, Item, Label, database, open_database
from labeler.store.migrations import upgrade
from labeler.worker import jobs
from tests.browser.conftest import LiveServer, _free_port, log_in, store_config
from tests.browser.test_labeling_browser import on_screen, press_and_wait
from tests.conftest import PASSWORD, ROOT

SAMPLE = f"{ROOT}/data/transactions_sample.csv.gz"


def transaction_store(tmp_path, rows, job, options=None):
    """A store with the sample's first ``rows`` transactions imported, analyst Ana, and the worker's ``job`` run
    (with ``options``); returns its SQLite file. Leaves the store open for more setup."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as stream:
        lines = stream.read().splitlines()[:rows + 1]
    path = tmp_path / "tx.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = str(tmp_path / "labeler.sqlite3")
    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = import_file(str(path), "tx", label_column="is_fraud", id_column="transaction_id",
                              time_column="timestamp", entity_columns=["card_id", "merchant_id"],
                              ignore=["scenario"]).dataset
        create_user("ana", PASSWORD, "analyst")
        jobs.request(dataset, job, "test", enqueue=False, options=options)
        assert set(jobs.run_queued(store_config(store)).values()) == {"done"}
    return store


@pytest.fixture
def transaction_server(tmp_path):
    store = transaction_store(tmp_path, 4000, jobs.REFILL)
    server = LiveServer(store, _free_port(), str(tmp_path / "server.log"))
    yield server
    server.stop()


def open_screen(browser, server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, server, "ana")
    page.goto(server.url + "/datasets/tx/label")
    page.wait_for_selector("#labeling[data-item-id]")
    return page


def labels_of(server):
    open_database(server.store)
    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "tx")
        return {label.item_id: (label.value, label.bulk_of_id) for label in Label.effective(dataset)}


def test_a_run_of_the_card_is_labeled_with_b_and_enter_and_undone_with_one_key(browser, transaction_server,
                                                                             screenshots):
    page = open_screen(browser, transaction_server)
    # find an item whose card has later transactions shown (skip until one does)
    for _ in range(20):
        if page.locator("[data-key=b]").count():
            break
        press_and_wait(page, "Space")
    assert page.locator("[data-key=b]").count() and page.locator("[data-history] > table tr.current").count() == 1
    item, _ = on_screen(page)
    page.keyboard.press("b")  # pressed while the last reply still settles, the key waits its turn (app.js's queue)
    confirm = page.locator("#run-confirm")
    confirm.wait_for(state="visible", timeout=5000)
    assert "taken back together by undo" in confirm.inner_text()
    later = int(confirm.inner_text().split("and the ")[1].split(" later")[0])
    page.screenshot(path=f"{screenshots}/run-confirm.png", full_page=True)
    press_and_wait(page, "Enter")
    assert f"and the {later} later transaction(s) of its card as fraud" in page.inner_text("[data-outcome]")
    standing = labels_of(transaction_server)
    anchor = [key for key, (value, bulk) in standing.items() if bulk is None]
    assert anchor == [item] and standing[item][0] == "fraud"
    open_database(transaction_server.store)
    with database.connection_context():
        decision = Label.get((Label.item == item) & (Label.kind == "label")).id
        card = Item.get_by_id(item).entity
        assert all(Item.get_by_id(key).entity == card for key in standing)
    assert [bulk for key, (_, bulk) in standing.items() if key != item] == [decision] * later
    press_and_wait(page, "Backspace")
    assert on_screen(page)[0] == item and labels_of(transaction_server) == {}
    page.close()


def test_the_merchants_latest_transactions_are_one_key_away(browser, transaction_server, screenshots):
    page = open_screen(browser, transaction_server)
    panel = page.locator("#merchant-panel")
    assert not panel.is_visible()
    page.keyboard.press("m")
    assert panel.is_visible() and panel.locator("tr.current").count() == 1
    assert "its latest" in panel.inner_text() and "this one" in panel.inner_text()
    page.screenshot(path=f"{screenshots}/merchant-panel.png", full_page=True)
    page.keyboard.press("1")  # keys go to the open panel: no decision is taken behind it
    assert panel.is_visible() and labels_of(transaction_server) == {}
    page.keyboard.press("Escape")
    assert not panel.is_visible()
    page.keyboard.press("m")
    page.keyboard.press("m")
    assert not panel.is_visible()
    page.close()


def test_a_full_disk_is_said_in_the_servers_words_and_the_key_works_again(browser, transaction_server):
    page = open_screen(browser, transaction_server)
    first, _ = on_screen(page)
    message = ("The server's disk is full, so this was not saved (nothing saved before is lost). Tell your admin, "
               "and try again once space is freed.")
    page.route("**/datasets/tx/label/*", lambda route: route.fulfill(
        status=507, body=message, headers={"Content-Type": "text/plain; charset=utf-8"}))
    page.keyboard.press("1")
    page.wait_for_selector("[data-role=failure]")
    assert page.inner_text("[data-role=failure]").startswith("The server's disk is full, so this was not saved")
    assert "the last key was not recorded" in page.inner_text("[data-role=failure]")
    page.unroute("**/datasets/tx/label/*")
    press_and_wait(page, "1")
    assert on_screen(page)[0] != first
    assert labels_of(transaction_server) == {first: ("genuine", None)}
    page.close()


def test_the_steps_that_reconstruct_worst_are_marked_and_said_in_words(browser, tmp_path, screenshots):
    """The sequence job (one epoch) on the sample's first 20,000 transactions (18 days); Ana holds a transaction of a card
    with nine earlier ones whose own step reconstructs worse than 99% of the pool's and whose history has
    something to say: the row is marked in the card's history and the words stand above it."""
    import numpy as np

    from labeler.labeling.history import unusual_in_words
    from labeler.store.artifacts import sequence_of
    from labeler.store.db import Lease, SequenceArtifacts, User, utcnow
    store = transaction_store(tmp_path, 20_000, jobs.SEQUENCES, {"epochs": 1, "fit_rows": 3_000})
    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "tx")
        record = SequenceArtifacts.get(SequenceArtifacts.dataset == dataset)
        ids, steps = np.load(record.ids_path), np.load(record.step_error_path)
        high = sequence_of(dataset, int(ids[0]))["step_high"]
        full = np.all(np.isfinite(steps), axis=1)  # a card with nine earlier transactions at least
        chosen = next(item for item in (Item.get_by_id(int(i)) for i in ids[full & (steps[:, -1] > high)])
                      if unusual_in_words(dataset, item))
        Lease.create(dataset=dataset, item=chosen, user=User.get(User.name == "ana"), state="active",
                     strategy="exploration", suggested="fraud", probability=0.5, offered_at=utcnow(),
                     expires_at=utcnow().replace(year=2100), rejected=[])
        words = unusual_in_words(dataset, chosen, sequence_of(dataset, chosen.id))
    server = LiveServer(store, _free_port(), str(tmp_path / "server.log"))
    try:
        page = open_screen(browser, server)
        assert on_screen(page)[0] == chosen.id
        marked = page.locator("[data-history] > table tr[data-unusual-step]")
        assert marked.count() >= 1 and page.locator("[data-history] > table tr.current[data-unusual-step]").count() == 1
        assert page.locator("[data-unusual] li").all_inner_texts() == words
        page.screenshot(path=f"{screenshots}/unusual-steps.png", full_page=True)
        page.close()
    finally:
        server.stop()
