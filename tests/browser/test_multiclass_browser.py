"""In a real browser: ten labels (the bundled digits) after a real retrain. The suggestion is the most likely
digit; `x` opens the other labels with the model's probabilities, most likely first, and each digit's key is the
digit itself there as on the label buttons, so typing a digit records that digit."""
import os

import pytest

from labeler.data.images import import_images
from labeler.data.users import create_user
from labeler.store.db import GroundTruth, Item, Label, Standing, database, open_database
from labeler.store.migrations import upgrade
from labeler.worker import autoencoder
from labeler.worker.retrain import retrain
from tests.browser.conftest import LiveServer, _free_port, log_in, store_config
from tests.conftest import PASSWORD, ROOT

DIGITS = os.path.join(ROOT, "data", "digits.npz")
PER_DIGIT = 4


@pytest.fixture
def trained_digits(tmp_path):
    """A live server on the digits, PER_DIGIT of each labeled by 'ana' from ground truth and a model retrained on
    them (the weak models only: the SGAN candidate is switched off to keep the test short)."""
    store = str(tmp_path / "labeler.sqlite3")
    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = import_images(DIGITS, "digits").dataset
        dataset.settings = {**dataset.settings, "generative_candidates": []}
        dataset.save()
        ana = create_user("ana", PASSWORD, "analyst")
        truth = GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item).where(Item.dataset == dataset)
        taken = {}
        for item, value in truth.order_by(GroundTruth.item).tuples():
            if taken.get(value, 0) < PER_DIGIT:
                taken[value] = taken.get(value, 0) + 1
                Label.create(item=item, value=value, annotator=ana, source="human")
                Standing.refresh([item])
        assert retrain(dataset, store_config(store).MODEL_FOLDER)["serving"]
        autoencoder.compute(dataset, None, store_config(store).MODEL_FOLDER)  # images: at least 2,000 batches
    log_path = tmp_path / "server.log"
    server = LiveServer(store, _free_port(), str(log_path))
    yield server
    server.stop()
    print(f"--- {log_path} ---\n{log_path.read_text()}")


def test_the_reject_panel_lists_the_digits_by_probability_and_a_digit_key_records_that_digit(browser,
                                                                                             trained_digits,
                                                                                             screenshots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, trained_digits, "ana")
    page.goto(trained_digits.url + "/datasets/digits/label")
    page.locator("img[data-item-image]").wait_for()
    suggested = page.locator("#labeling").get_attribute("data-suggested")
    assert suggested in [str(digit) for digit in range(10)]
    for digit in range(10):
        assert page.locator(f"button.direct[value='label:{digit}']").get_attribute("data-key") == str(digit)
    page.keyboard.press("x")
    panel = page.locator("#alternatives")
    panel.wait_for(state="visible")
    buttons = panel.locator("button[value^='reject:']")
    assert buttons.count() == 9
    texts = [buttons.nth(index).inner_text() for index in range(9)]
    probabilities = [float(text.rsplit("(", 1)[1].rstrip(")")) for text in texts]
    assert probabilities == sorted(probabilities, reverse=True)
    page.screenshot(path=os.path.join(screenshots, "digits.png"))
    second = buttons.nth(0).get_attribute("value").split(":", 1)[1]  # the next most likely digit
    assert buttons.nth(0).get_attribute("data-key") == second and second != suggested
    item = page.locator("#labeling").get_attribute("data-item-id")
    page.keyboard.press(second)
    page.wait_for_selector(f"#labeling[data-item-id]:not([data-item-id='{item}'])")
    with database.connection_context():
        label = Label.select().where((Label.item == int(item)) & (Label.source == "human")).get()
    assert (label.value, label.suggested, label.accepted) == (second, suggested, False)
    other = next(str(digit) for digit in range(10) if str(digit) not in (second, suggested))
    recent = page.locator("ol.decisions li").first  # ten labels: a change is chosen from a list
    recent.locator("select").select_option(other)
    recent.locator("button", has_text="change").click()
    page.wait_for_selector("[data-outcome='edited']")
    with database.connection_context():
        standing = (Label.select().where((Label.item == int(item)) & (Label.kind == "label"))
                    .order_by(Label.id.desc()).first())
    assert standing.value == other
