"""In a real browser: an image item on the labeling screen (the digits' 8×8 images drawn large and crisp, the
autoencoder's reconstruction beside them, the most similar labeled images as thumbnails with their labels, no
feature bars) and the item table's thumbnails."""
import os

import pytest

from labeler.data.images import import_images
from labeler.data.users import create_user
from labeler.store.db import GroundTruth, Item, Label, Standing, database, open_database
from labeler.store.migrations import upgrade
from labeler.worker import autoencoder, jobs
from tests.browser.conftest import LiveServer, _free_port, log_in, store_config
from tests.conftest import PASSWORD, ROOT

DIGITS = os.path.join(ROOT, "data", "digits.npz")
LABELED = 30


@pytest.fixture
def digits_server(tmp_path):
    """The live server on a store holding the bundled digits: LABELED of them labeled by 'ana' from ground truth,
    then the worker's queue refill (the queue, the pool's feature statistics) and its autoencoder (3 epochs)."""
    store = str(tmp_path / "labeler.sqlite3")
    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = import_images(DIGITS, "digits").dataset
        ana = create_user("ana", PASSWORD, "analyst")
        truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
                     .where(Item.dataset == dataset).tuples())
        items = list(dataset.items().order_by(Item.row_number))
        for item in items[:LABELED]:
            Label.create(item=item, value=truth[item.id], annotator=ana, source="human")
        Standing.refresh(item.id for item in items[:LABELED])
        jobs.request(dataset, jobs.REFILL, "after an import", enqueue=False)
        assert set(jobs.run_queued(store_config(store)).values()) == {"done"}
        autoencoder.compute(dataset, None, store_config(store).MODEL_FOLDER, epochs=3)
    log_path = tmp_path / "server.log"
    server = LiveServer(store, _free_port(), str(log_path))
    yield server
    server.stop()
    print(f"--- {log_path} ---\n{log_path.read_text()}")


def _natural_width(locator):
    return locator.evaluate("image => image.complete ? image.naturalWidth : -1")


def test_an_image_item_on_the_screen_and_the_item_table(browser, digits_server, screenshots):
    server = digits_server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, server, "ana")
    page.goto(server.url + "/datasets/digits/label")
    image = page.locator("img[data-item-image]")
    image.wait_for()
    page.wait_for_load_state("load")  # every image fetched
    assert _natural_width(image) == 8 and image.evaluate("image => image.naturalHeight") == 8
    assert image.evaluate("image => getComputedStyle(image).imageRendering") == "pixelated"
    assert image.bounding_box()["width"] == 224 and image.bounding_box()["height"] == 224
    reconstruction = page.locator("img[data-reconstruction-image]")
    assert _natural_width(reconstruction) == 8 and reconstruction.bounding_box()["width"] == 224
    assert reconstruction.bounding_box()["x"] > image.bounding_box()["x"]  # beside it
    thumbnails = page.locator("ul[data-similar-images] li")
    assert thumbnails.count() == 5
    for index in range(5):
        thumbnail = thumbnails.nth(index)
        assert _natural_width(thumbnail.locator("img")) == 8
        assert thumbnail.locator("span").first.inner_text() in [str(n) for n in range(10)]
    assert page.locator("figure.bars").count() == 0  # no feature bars for an image
    page.screenshot(path=os.path.join(screenshots, "image_item.png"), full_page=True)

    first = page.locator("#labeling").get_attribute("data-item-id")
    page.keyboard.press("Space")  # skip: the next image replaces this one
    page.wait_for_selector(f"#labeling[data-item-id]:not([data-item-id='{first}'])")
    second = page.locator("#labeling").get_attribute("data-item-id")
    swapped = page.locator("img[data-item-image]")
    assert swapped.get_attribute("src") == f"/datasets/digits/items/{second}.png"
    assert swapped.evaluate("image => getComputedStyle(image).imageRendering") == "pixelated"

    page.goto(server.url + "/datasets/digits")
    page.wait_for_load_state("load")
    cells = page.locator("table.items td img.pixelated")
    assert cells.count() > 10
    assert _natural_width(cells.first) == 8 and cells.first.bounding_box()["width"] == 48
    page.close()
