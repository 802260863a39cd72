"""In a real browser: the autoencoder's reconstruction beside the actual values on the labeling screen, and the
admin's latent map reached from the dataset page."""
import os

import pytest

from labeler.data.datasets import get_dataset
from labeler.store.db import GroundTruth, Item, Label, Standing, User, database, open_database
from labeler.worker import autoencoder
from tests.browser.conftest import LiveServer, _free_port, log_in, store_config


@pytest.fixture
def server_with_outputs(seeded_store, tmp_path):
    """The live server on a store whose autoencoder outputs were computed (PCA map, 3 epochs)."""
    open_database(seeded_store)
    with database.connection_context():
        dataset = get_dataset("cc")
        ana = User.get(User.name == "ana")
        truth = (GroundTruth.select().join(Item).where(Item.dataset == dataset).order_by(GroundTruth.item))
        frauds = [row for row in truth if row.value == "fraud"]
        genuine = [row for row in truth if row.value == "genuine"][:150]
        for row in frauds[:30] + genuine:  # labeled before the map: coloured by label on it
            Label.create(item=row.item_id, value=row.value, annotator=ana, source="human")
        Standing.refresh(row.item_id for row in frauds[:30] + genuine)
        autoencoder.compute(dataset, None, store_config(seeded_store).MODEL_FOLDER, epochs=3)
    log_path = tmp_path / "server.log"
    server = LiveServer(seeded_store, _free_port(), str(log_path))
    yield server
    server.stop()
    print(f"--- {log_path} ---\n{log_path.read_text()}")


def test_reconstruction_bars_and_the_latent_map(browser, server_with_outputs, screenshots):
    server = server_with_outputs
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, server, "ana")
    page.goto(server.url + "/datasets/cc/label")
    figure = page.locator("figure[data-reconstruction]")
    figure.wait_for()
    assert page.locator("figure[data-reconstruction] g.recon").count() == 30
    assert page.locator("figure[data-reconstruction] rect.rebuilt").first.bounding_box()["width"] > 0
    assert figure.bounding_box()["x"] + figure.bounding_box()["width"] <= 1400  # fits beside the work area
    first = page.locator("#labeling").get_attribute("data-item-id")
    page.keyboard.press("1")  # label it genuine: the next item's bars replace these
    page.wait_for_selector(f"#labeling[data-item-id]:not([data-item-id='{first}'])")  # (no eval under the CSP)
    assert page.locator("figure[data-reconstruction] g.recon").count() == 30
    page.screenshot(path=os.path.join(screenshots, "reconstruction.png"), full_page=True)
    admin = browser.new_page(viewport={"width": 1000, "height": 900})
    log_in(admin, server, "root")
    admin.goto(server.url + "/datasets/cc")
    admin.click("text=Latent map")
    admin.wait_for_url(server.url + "/admin/datasets/cc/latent-map")
    assert admin.locator("svg.latent circle").count() > 2000
    assert admin.locator("ul.legend li").count() == 3  # unlabeled, genuine, fraud
    assert "fraud (30)" in admin.inner_text("ul.legend")
    assert admin.locator("[data-projection]").inner_text() == "PCA"
    admin.screenshot(path=os.path.join(screenshots, "latent_map.png"), full_page=True)
    page.close()
    admin.close()
