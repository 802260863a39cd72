"""The admin's generated-samples page: the worker's job fits the chapter's VAE and stores a latent walk, generated
and real samples (labeler.worker.generated); the page draws them as PNG images for an image dataset and as tables
for a tabular one, polls while the job runs, and is for admins only.

The job fits a Keras model: the tests that run it are in the slow tier; the page tests write the stored files
directly."""
import io
import os

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from labeler.store.artifacts import npy_file, store_artifacts
from labeler.store.db import Dataset, GeneratedSamples, Item, Job
from labeler.store.pool import load_pool
from labeler.web.generated import readable
from labeler.worker import generated, jobs
from tests.conftest import csrf_token_of, login

slow = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def digits(app):
    """An image dataset of 300 of scikit-learn's 8x8 digits, built in the store (pixels in [0, 1])."""
    data = load_digits()
    pixels = (data.data[:300] / 16).astype(np.float32)
    dataset = Dataset.create(name="digits", columns=[], feature_columns=[f"pixel {i}" for i in range(64)],
                             labels=[str(k) for k in range(10)], roles={"image": {"shape": [8, 8, 1]}})
    Item.insert_many([{"dataset": dataset, "external_id": f"d{row}", "row_number": row, "numbers": b"",
                       "features": pixels[row].tobytes()} for row in range(len(pixels))]).execute()
    return Dataset.get_by_id(dataset.id)


def store_samples(dataset, folder, grid_steps=4, samples=6, seed=0):
    """A GeneratedSamples row of ``dataset`` with arrays of the right shapes, as the job writes them (no VAE)."""
    ids, features = load_pool(dataset)
    rng = np.random.default_rng(seed)
    width = dataset.n_features
    real = rng.choice(len(ids), samples, replace=False)
    files = {"grid.npy": npy_file(rng.random((grid_steps ** 2, width), dtype=np.float32)),
             "generated.npy": npy_file(rng.random((samples, width), dtype=np.float32)),
             "real.npy": npy_file(features[real]), "real_ids.npy": npy_file(ids[real])}
    stats = {"real_mean": features.mean(axis=0).tolist(), "real_std": features.std(axis=0).tolist(),
             "generated_mean": [0.5] * width, "generated_std": [0.25] * width}

    def fields(paths):
        return dict(grid_path=paths["grid.npy"], generated_path=paths["generated.npy"], real_path=paths["real.npy"],
                    real_ids_path=paths["real_ids.npy"], pool_rows=len(ids), fit_rows=len(ids),
                    grid_steps=grid_steps, latent_dims=[1, 4], device="CPU", seconds=1.5,
                    details={"hidden_units": 16, "latent_dim": 6, "epochs": 3, "span": 2.5, "stats_rows": len(ids),
                             **stats})

    return store_artifacts(GeneratedSamples, dataset, os.path.join(folder, f"generated-{dataset.id}"), files, fields)


def image_of(response):
    assert response.status_code == 200 and response.mimetype == "image/png" and response.data.startswith(PNG)
    return Image.open(io.BytesIO(response.data))


# ---- the page ------------------------------------------------------------------------------------------------


def test_an_image_dataset_page_draws_the_walk_and_samples_as_pngs(digits, admin, client, config):
    store_samples(digits, config.MODEL_FOLDER)
    login(client, "root")
    html = client.get("/admin/datasets/digits/generated").get_data(as_text=True)
    for picture in ("grid", "generated", "real"):
        assert f'src="/admin/datasets/digits/generated/{picture}.png"' in html
    assert "hx-trigger" not in html and "latent dimension 1 from -2.5 to 2.5" in html
    grid = image_of(client.get("/admin/datasets/digits/generated/grid.png"))
    assert grid.size == (4 * 9 - 1, 4 * 9 - 1) and grid.mode == "L"  # 4 x 4 images of 8 x 8, 1 pixel apart
    assert image_of(client.get("/admin/datasets/digits/generated/real.png")).size == (6 * 9 - 1, 8)
    image_of(client.get("/admin/datasets/digits/generated/generated.png"))
    assert client.get("/admin/datasets/digits/generated/other.png").status_code == 404
    assert 'href="/admin/datasets/digits/generated"' in client.get("/datasets/digits").get_data(as_text=True)


def test_a_tabular_dataset_page_shows_generated_rows_beside_real_ones(dataset, admin, client, config):
    record = store_samples(dataset, config.MODEL_FOLDER)
    login(client, "root")
    html = client.get("/admin/datasets/cc/generated").get_data(as_text=True)
    assert '<table class="grid generated-rows">' in html and "<img" not in html
    assert html.count('<tr data-source="real">') == html.count('<tr data-source="generated">') == 6
    real_ids = np.load(record.real_ids_path)
    external = Item.get_by_id(int(real_ids[0])).external_id
    assert f'<th>real</th><td>{external}</td>' in html
    summary = html[html.index('<table class="grid generated-summary">'):]
    assert summary.count("<tr><th>") == dataset.n_features + 1 == 31
    assert summary.count('<td class="num">0.50</td><td class="num">') == dataset.n_features  # generated means
    assert client.get("/admin/datasets/cc/generated/grid.png").status_code == 404  # no pictures of rows


def test_readable_numbers():
    assert [readable(v) for v in (0, 1234.5678, -1.361, 0.0001234, 149.62)] == [
        "0.00", "1,234.57", "-1.36", "1.2e-04", "149.62"]


def test_the_button_queues_the_job_and_the_page_polls_until_it_is_done(digits, admin, client):
    login(client, "root")
    page = client.get("/admin/datasets/digits/generated").get_data(as_text=True)
    assert "No generated samples yet" in page and "hx-trigger" not in page
    posted = client.post("/admin/datasets/digits/generated", data={"csrf_token": csrf_token_of(page)})
    assert posted.status_code == 302 and posted.headers["Location"].endswith("/admin/datasets/digits/generated")
    job = jobs.latest(digits, jobs.GENERATED)
    assert (job.state, job.payload["reason"]) == ("queued", "asked on the generated-samples page")
    page = client.get("/admin/datasets/digits/generated").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in page and "about to compute" in page and "Compute the generated" not in page
    Job.update(state="running", stage="fitting the VAE", percent=40).where(Job.id == job.id).execute()
    poll = client.get("/admin/datasets/digits/generated", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert poll.lstrip().startswith('<section id="generated"') and "<html" not in poll
    assert 'hx-trigger="every 2s"' in poll and "(fitting the VAE, 40%)" in poll
    Job.update(state="failed", error="ValueError: boom").where(Job.id == job.id).execute()
    poll = client.get("/admin/datasets/digits/generated", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in poll and "The last computation failed: ValueError: boom" in poll and "<form" in poll


def test_the_page_is_for_admins(digits, analyst, client, config):
    store_samples(digits, config.MODEL_FOLDER)
    assert client.get("/admin/datasets/digits/generated").status_code == 302  # to the login page
    assert client.get("/admin/datasets/digits/generated/grid.png").status_code == 302
    login(client, "ana")
    for url in ("/admin/datasets/digits/generated", "/admin/datasets/digits/generated/grid.png"):
        assert client.get(url).status_code == 403
    assert client.post("/admin/datasets/digits/generated").status_code in (400, 403)
    assert jobs.latest(digits, jobs.GENERATED) is None
    assert "/generated" not in client.get("/datasets/digits").get_data(as_text=True)


def test_unreadable_files_show_no_samples(digits, admin, client, config):
    record = store_samples(digits, config.MODEL_FOLDER)
    os.remove(record.grid_path)
    login(client, "root")
    assert "No generated samples yet" in client.get("/admin/datasets/digits/generated").get_data(as_text=True)
    assert client.get("/admin/datasets/digits/generated/real.png").status_code == 404
    assert client.get("/admin/datasets/nope/generated").status_code == 404


# ---- the VAE's helpers and the job ---------------------------------------------------------------------------


@slow
def test_the_vae_walks_two_latent_dimensions_and_generates_from_the_prior(tmp_path):
    from models.vae import VAE

    pixels = (load_digits().data[:300] / 16).astype(np.float32)
    vae = VAE(hidden_units=32, seed=1, reconstruction="bernoulli").fit(pixels, epochs=2, batch_size=64)
    walk = vae.latent_walk(3, dims=(1, 4), span=2.0)
    corners = np.zeros((4, 6), dtype=np.float32)
    corners[:, 1] = [-2.0, 2.0, -2.0, 2.0]  # left to right
    corners[:, 4] = [2.0, 2.0, -2.0, -2.0]  # top to bottom
    assert walk.shape == (9, 64)
    assert np.allclose(walk[[0, 2, 6, 8]], vae.unscale(vae.decode_scaled(corners)), atol=1e-6)
    prior = np.random.default_rng(7).standard_normal((5, 6)).astype(np.float32)
    assert np.allclose(vae.generate(5, seed=7), vae.unscale(vae.decode_scaled(prior)), atol=1e-6)
    for bad in ({"steps": 1}, {"dims": (2, 2)}, {"dims": (0, 6)}, {"dims": (0,)}):
        with pytest.raises(ValueError):
            vae.latent_walk(**bad)
    with pytest.raises(ValueError, match="at least 1"):
        vae.generate(0)
    vae.save(tmp_path / "vae.keras")
    loaded = VAE.load(tmp_path / "vae.keras")
    assert loaded.reconstruction == "bernoulli" and np.array_equal(loaded.generate(3, seed=2), vae.generate(3, seed=2))
    assert loaded.loss_terms(pixels[:20])["reconstruction"] > 0
    with pytest.raises(ValueError, match="unknown reconstruction term 'l1'"):
        VAE(reconstruction="l1")




@slow
def test_the_job_fits_the_vae_and_stores_the_walk_and_samples_of_images(digits, admin, client, run_jobs):
    job, created = jobs.request(digits, jobs.GENERATED, "test", enqueue=False)
    assert created and run_jobs(digits) == {job.id: "done"}
    job = Job.get_by_id(job.id)
    record = GeneratedSamples.get(GeneratedSamples.dataset == digits)
    assert job.percent == 100.0 and job.payload["pool_rows"] == record.pool_rows == record.fit_rows == 300
    assert record.details["hidden_units"] == generated.IMAGE_HIDDEN and record.details["reconstruction"] == "bernoulli"
    assert record.details["epochs"] == generated.epochs_for(300) and record.device == "CPU"
    grid, samples, real = (np.load(path) for path in (record.grid_path, record.generated_path, record.real_path))
    assert grid.shape == (100, 64) and samples.shape == real.shape == (generated.IMAGE_SAMPLES, 64)
    assert samples.min() >= 0.0 and samples.max() <= 1.0 and grid.std(axis=0).max() > 0.1  # the walk varies
    ids, features = load_pool(digits)
    assert np.array_equal(features[np.searchsorted(ids, np.load(record.real_ids_path))], real)
    assert len(record.latent_dims) == 2 and len(record.details["generated_mean"]) == 64
    assert all(os.path.dirname(path).endswith(f"generated-{digits.id}") for path in
               (record.grid_path, record.generated_path, record.real_path, record.real_ids_path))
    login(client, "root")
    html = client.get("/admin/datasets/digits/generated").get_data(as_text=True)
    assert "128 hidden units" in html and "Compute the generated samples again" in html
    assert image_of(client.get("/admin/datasets/digits/generated/grid.png")).size == (89, 89)
    old = record.grid_path
    jobs.request(digits, jobs.GENERATED, "again", enqueue=False, options={"epochs": 1})
    assert set(run_jobs(digits).values()) == {"done"} and not os.path.exists(old)  # replaced whole


@slow
def test_the_job_on_a_tabular_dataset_generates_rows_of_its_features(dataset, run_jobs):
    jobs.request(dataset, jobs.GENERATED, "test", enqueue=False, options={"epochs": 2})
    assert set(run_jobs(dataset).values()) == {"done"}
    record = GeneratedSamples.get(GeneratedSamples.dataset == dataset)
    assert record.details["hidden_units"] == 16 and record.details["reconstruction"] == "gaussian"
    assert np.load(record.generated_path).shape == (generated.TABLE_SAMPLES, dataset.n_features)
    assert record.details["stats_rows"] == generated.STATS_ROWS
