"""In a real browser: two analysts label the same transaction differently (overlap 1, the second one blind to
the first answer), a reviewer sees both answers on the review screen and settles it with one key, and the
export holds all three answers and the label that stands."""
import json
import os

from labeler.data import exporter
from labeler.data.users import create_user
from labeler.store.db import Dataset, Label, database, open_database
from labeler.store.settings import update_labeling_settings
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD


def label_on_screen(page, server, keys):
    """Open the labeling screen, press ``keys`` on the first item and wait for the next; returns the item id."""
    page.goto(server.url + "/datasets/cc/label")
    page.wait_for_selector("#labeling[data-item-id]")
    item = page.locator("#labeling").get_attribute("data-item-id")
    page.evaluate("document.getElementById('labeling').setAttribute('data-stale', '')")
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_selector("#labeling:not([data-stale])")
    assert page.locator("[data-outcome=recorded]").count() == 1
    return int(item)


def test_two_analysts_disagree_a_reviewer_settles_it_and_the_export_shows_all_three(browser, live_server,
                                                                                  screenshots, tmp_path):
    open_database(live_server.store)
    with database.connection_context():
        create_user("rita", PASSWORD, "reviewer")
        update_labeling_settings(Dataset.get(Dataset.name == "cc"), {"overlap_share": 1.0})

    ana = browser.new_context().new_page()
    log_in(ana, live_server, "ana")
    item = label_on_screen(ana, live_server, ["2", "1"])  # fraud, first reason code
    bob = browser.new_context().new_page()
    log_in(bob, live_server, "bob")
    assert label_on_screen(bob, live_server, ["1"]) == item  # the blind second look comes first: genuine

    rita = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    log_in(rita, live_server, "rita")
    rita.goto(live_server.url + "/datasets/cc")
    rita.click("text=Review (1 waiting)")
    rita.wait_for_url(f"{live_server.url}/datasets/cc/review/{item}")
    assert rita.locator("[data-answer=ana]").inner_text().count("fraud") >= 1
    assert "genuine" in rita.locator("[data-answer=bob]").inner_text()
    rita.screenshot(path=os.path.join(screenshots, "review.png"), full_page=True)
    rita.keyboard.press("2")  # fraud
    rita.wait_for_selector("[data-review-empty]")
    assert "Settled transaction" in rita.locator("[data-flash]").inner_text()

    open_database(live_server.store)
    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "cc")
        out = tmp_path / "labels.jsonl"
        assert exporter.export(dataset, str(out), "jsonl") == 1
        assert Label.select().where(Label.source == "review").count() == 1
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert (record["label"], record["standing"], record["decided_by"], record["answers"]) == (
        "fraud", "adjudicated", "rita", 3)
    answers = sorted((d["annotator"], d["label"], d["source"]) for d in record["decisions"])
    assert answers == [("ana", "fraud", "human"), ("bob", "genuine", "human"), ("rita", "fraud", "review")]
    ana_answer = next(d for d in record["decisions"] if d["annotator"] == "ana")
    assert ana_answer["reason"] == "card not present" and ana_answer["strategy"]
