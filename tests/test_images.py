"""Image items: the importer (NPZ files and folders of PNG files), the bundled digits, the command, the PNG
routes, the item table and the labeling screen (image, reconstruction, similar labeled thumbnails).

Every bad input is tried through the service (one-line ImportFailed naming file and what is wrong where) and the
command (exit 1, one line on stderr); both must leave the store exactly as it was. Nothing here trains Keras but
the last test, in the slow tier; elsewhere the autoencoder's stored outputs are written as the worker writes
them."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from labeler.data.images import MAX_VALUES, feature_names, import_images
from labeler.data.importer import ImportFailed, import_file
from labeler.labeling import decisions, leases
from labeler.labeling.image_view import image_view
from labeler.store import artifacts
from labeler.store.artifacts import npy_file, store_artifacts
from labeler.store.db import Dataset, GenerativeArtifacts, GroundTruth, Item, Job, Label, Standing, utcnow
from labeler.store.files import write_atomically
from labeler.store.pool import load_pool
from labeler.worker import jobs
from tests.bad_inputs import HEADER, csv_rows
from tests.conftest import ROOT, login
from tests.test_import import store_snapshot

DIGITS = os.path.join(ROOT, "data", "digits.npz")
HEIGHT, WIDTH = 6, 5  # not square: a transposed image would show


def images(count=20, channels=None, seed=0):
    """``count`` random 8-bit images of HEIGHT×WIDTH (×``channels`` when given)."""
    shape = (count, HEIGHT, WIDTH) if channels is None else (count, HEIGHT, WIDTH, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def png(path, array):
    """Write ``array`` as a PNG (its mode from its shape and dtype: L, RGB, RGBA, I;16)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return str(path)


def items_of(dataset):
    return list(dataset.items().order_by(Item.row_number))


def truth_of(dataset):
    return dict(GroundTruth.select(Item.external_id, GroundTruth.value).join(Item)
                .where(Item.dataset == dataset).tuples())


# ---- NPZ files -----------------------------------------------------------------------------------------------


def test_a_3d_npz_with_labels(app, tmp_path):
    pixels = images()
    y = np.arange(20) % 3 * 5  # 0, 5, 10: natural order puts 5 before 10
    result = import_images(npz(tmp_path / "grey.npz", X=pixels, y=y), "grey")
    dataset = result.dataset
    assert (result.created, result.rows_read, result.rows_added, result.rows_skipped) == (True, 20, 20, 0)
    assert (dataset.columns, dataset.text_columns) == ([], [])
    assert dataset.feature_columns == [f"px_{r}_{c}" for r in range(HEIGHT) for c in range(WIDTH)]
    assert dataset.image_shape == (HEIGHT, WIDTH, 1)
    assert dataset.roles == {"image": {"shape": [HEIGHT, WIDTH, 1], "scale": 255.0}}
    assert (dataset.labels, dataset.label_column, dataset.id_column) == (["0", "5", "10"], "y", None)
    assert dataset.positive_labels == [] and dataset.positive_label is None  # three classes: none is fraud
    rows = items_of(dataset)
    assert [item.external_id for item in rows] == [str(n) for n in range(20)]
    stored = np.stack([item.feature_vector for item in rows])
    assert stored.dtype == np.float32
    assert np.array_equal(stored, (pixels.reshape(20, -1) / 255.0).astype(np.float32))
    assert truth_of(dataset) == {str(n): str(value) for n, value in enumerate(y)}
    assert "divided by 255" in result.notes[0] and "6×5 grey" in result.notes[0]


def test_a_4d_npz_in_colour_keeps_row_column_channel_order(app, tmp_path):
    pixels = images(channels=3)
    dataset = import_images(npz(tmp_path / "rgb.npz", X=pixels), "rgb").dataset
    assert dataset.image_shape == (HEIGHT, WIDTH, 3)
    assert dataset.feature_columns[:4] == ["px_0_0_0", "px_0_0_1", "px_0_0_2", "px_0_1_0"]
    first = items_of(dataset)[0].feature_vector
    assert first[dataset.feature_columns.index("px_2_3_1")] == np.float32(pixels[0, 2, 3, 1] / 255.0)
    assert dataset.labels == ["genuine", "fraud"] and truth_of(dataset) == {}  # no y: no ground truth
    single = import_images(npz(tmp_path / "one.npz", X=images(channels=1)), "one-channel").dataset
    assert single.image_shape == (HEIGHT, WIDTH, 1) and single.feature_columns == feature_names((HEIGHT, WIDTH, 1))


def test_the_scale_rule_and_appends_on_the_dataset_s_scale(app, tmp_path):
    sixteen = np.random.default_rng(1).integers(0, 17, size=(10, 4, 4)).astype(np.int64)
    sixteen[0, 0, 0] = 16
    dataset = import_images(npz(tmp_path / "a.npz", X=sixteen, ids=np.arange(10)), "sixteen").dataset
    assert dataset.roles["image"]["scale"] == 16.0
    assert items_of(dataset)[0].feature_vector[0] == 1.0
    smaller = np.full((2, 4, 4), 8.0)  # its own maximum is 8, but the dataset divides by 16
    import_images(npz(tmp_path / "b.npz", X=smaller, ids=np.array([10, 11])), "sixteen")
    assert items_of(dataset)[-1].feature_vector.tolist() == [0.5] * 16
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="holds 8-bit pixels, but dataset 'sixteen' divides pixels by 16"):
        import_images(npz(tmp_path / "c.npz", X=np.zeros((1, 4, 4), np.uint8), ids=np.array([12])), "sixteen")
    with pytest.raises(ImportFailed, match="values up to 40, but dataset 'sixteen' divides pixels by 16"):
        import_images(npz(tmp_path / "d.npz", X=np.full((1, 4, 4), 40.0), ids=np.array([12])), "sixteen")
    assert store_snapshot() == before
    unit = import_images(npz(tmp_path / "unit.npz", X=np.full((3, 2, 2), 0.25, np.float32)), "unit").dataset
    assert unit.roles["image"]["scale"] == 1.0 and items_of(unit)[0].feature_vector.tolist() == [0.25] * 4


def test_reimport_adds_nothing_and_a_longer_file_appends(app, tmp_path):
    pixels, y = images(30), np.arange(30) % 2
    first = import_images(npz(tmp_path / "head.npz", X=pixels[:20], y=y[:20]), "rows")
    assert first.dataset.labels == ["genuine", "fraud"]  # 0/1 ground truth reads as the CSV's does
    before = store_snapshot()
    again = import_images(npz(tmp_path / "head.npz", X=pixels[:20], y=y[:20]), "rows")
    assert (again.created, again.rows_read, again.rows_added, again.rows_skipped) == (False, 20, 0, 20)
    assert store_snapshot() == before
    longer = import_images(npz(tmp_path / "all.npz", X=pixels, y=y), "rows")
    assert (longer.rows_added, longer.rows_skipped) == (10, 20)
    assert [item.external_id for item in items_of(first.dataset)] == [str(n) for n in range(30)]
    assert truth_of(first.dataset)["25"] == "fraud"
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="image 0 differs from image 0 already in dataset 'rows'"):
        import_images(npz(tmp_path / "other.npz", X=images(30, seed=9)), "rows")
    assert store_snapshot() == before


def test_ids_name_the_items_and_known_ids_are_skipped(app, tmp_path):
    pixels = images(4)
    ids = np.array(["a", "b", "c", "d"])
    dataset = import_images(npz(tmp_path / "ids.npz", X=pixels, ids=ids), "named").dataset
    assert [item.external_id for item in items_of(dataset)] == ["a", "b", "c", "d"] and dataset.id_column == "ids"
    more = import_images(npz(tmp_path / "more.npz", X=images(2, seed=3), ids=np.array(["d", "e"])), "named")
    assert (more.rows_added, more.rows_skipped) == (1, 1)
    assert [item.external_id for item in items_of(dataset)] == ["a", "b", "c", "d", "e"]


# ---- folders of PNG files ------------------------------------------------------------------------------------


@pytest.fixture
def png_folder(tmp_path):
    """shapes/: 2 images in label folder 'circle', 1 in '10', 1 in '2', 1 with no label; 6×5 grey."""
    folder = tmp_path / "shapes"
    pixels = images(5)
    png(folder / "circle" / "a.png", pixels[0])
    png(folder / "circle" / "b.png", pixels[1])
    png(folder / "10" / "c.png", pixels[2])
    png(folder / "2" / "d.png", pixels[3])
    png(folder / "loose.png", pixels[4])
    (folder / ".hidden").write_text("skipped: its name starts with a dot")
    return str(folder), pixels


def test_a_png_folder_with_label_folders(app, png_folder):
    folder, pixels = png_folder
    result = import_images(folder, "shapes")
    dataset = result.dataset
    assert (result.rows_added, dataset.image_shape, dataset.id_column) == (5, (HEIGHT, WIDTH, 1), "file")
    assert dataset.labels == ["2", "10", "circle"] and dataset.positive_labels == []
    rows = {item.external_id: item for item in items_of(dataset)}
    assert sorted(rows) == ["10/c.png", "2/d.png", "circle/a.png", "circle/b.png", "loose.png"]
    assert np.array_equal(rows["circle/b.png"].feature_vector, (pixels[1].reshape(-1) / 255.0).astype(np.float32))
    assert truth_of(dataset) == {"10/c.png": "10", "2/d.png": "2", "circle/a.png": "circle",
                                 "circle/b.png": "circle"}  # the loose image has none
    before = store_snapshot()
    again = import_images(folder, "shapes")
    assert (again.rows_added, again.rows_skipped) == (0, 5) and store_snapshot() == before
    png(os.path.join(folder, "2", "e.png"), images(1, seed=5)[0])
    grown = import_images(folder, "shapes")
    assert (grown.rows_added, grown.rows_skipped) == (1, 5) and truth_of(dataset)["2/e.png"] == "2"


def test_a_png_folder_of_colour_and_grey_images_is_rgb(app, tmp_path):
    folder = tmp_path / "mixed"
    colour, grey = images(1, channels=3)[0], images(1, seed=2)[0]
    png(folder / "a.png", colour)
    png(folder / "b.png", grey)
    opaque = np.dstack([colour, np.full((HEIGHT, WIDTH), 255, np.uint8)])
    png(folder / "c.png", opaque)
    dataset = import_images(str(folder), "mixed").dataset
    assert dataset.image_shape == (HEIGHT, WIDTH, 3) and dataset.labels == ["genuine", "fraud"]
    rows = {item.external_id: item.feature_vector for item in items_of(dataset)}
    assert np.array_equal(rows["b.png"].reshape(HEIGHT, WIDTH, 3)[..., 2], (grey / 255.0).astype(np.float32))
    assert np.array_equal(rows["c.png"], rows["a.png"])  # an opaque alpha channel is dropped


# ---- bad input -----------------------------------------------------------------------------------------------


def _write(folder, name, data):
    path = os.path.join(folder, name)
    with open(path, "wb") as out:
        out.write(data)
    return path


def _pngs(*arrays, sizes=None):
    """A maker of a folder 'imgs' holding ``arrays`` as a.png, b.png, ..."""
    def make(folder):
        target = os.path.join(folder, "imgs")
        for index, array in enumerate(arrays):
            png(os.path.join(target, f"{'abcdefgh'[index]}.png"), array)
        return target
    return make


def _folder_with(files):
    """A maker of a folder 'imgs' holding ``files`` ({relative path: bytes})."""
    def make(folder):
        target = os.path.join(folder, "imgs")
        os.makedirs(target)
        for relative, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(target, relative)), exist_ok=True)
            _write(target, relative, data)
        return target
    return make


def _png_bytes(array, format="PNG"):
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, format=format)
    return stream.getvalue()


def _npz_maker(file_name="bad.npz", **arrays):
    return lambda folder: npz(os.path.join(folder, file_name), **arrays)


GOOD = images(3)
WITH_NAN = np.zeros((3, 4, 4), np.float32)
WITH_NAN[1, 2, 3] = np.nan
WITH_INF = np.zeros((3, 4, 4, 1))
WITH_INF[2, 0, 1, 0] = np.inf
NEGATIVE = np.zeros((3, 4, 4), np.int16)
NEGATIVE[0, 3, 2] = -3
BAD_IMAGE_INPUTS = {
    # name: (maker(folder) -> path, dataset name, fragments of the one-line message)
    "missing file": (lambda folder: os.path.join(folder, "nosuch.npz"), "new", ["nosuch.npz", "no such file"]),
    "empty file": (lambda folder: _write(folder, "bad.npz", b""), "new", ["bad.npz: the file is empty"]),
    "not a zip": (lambda folder: _write(folder, "bad.npz", b"X,y\n1,2\n"), "new",
                  ["bad.npz: not a readable NPZ file"]),
    "NUL bytes": (lambda folder: _write(folder, "bad.npz", b"\x00" * 5000), "new", ["bad.npz: not a readable NPZ"]),
    "one array saved with np.save": (lambda folder: _write(folder, "bad.npz", _npy_bytes(GOOD)), "new",
                                     ["bad.npz: holds one array, not an NPZ archive"]),
    "no X": (_npz_maker(x_train=GOOD), "new", ["bad.npz: no array 'X' (arrays: x_train)"]),
    "another array beside X": (_npz_maker(X=GOOD, extra=np.zeros(3)), "new", ["bad.npz", "'extra'", "besides X"]),
    "X of 2 dimensions": (_npz_maker(X=np.zeros((3, 64))), "new",
                          ["bad.npz: X has 2 dimensions; an image array is n×h×w or n×h×w×c"]),
    "X of 5 dimensions": (_npz_maker(X=np.zeros((3, 2, 2, 1, 1))), "new", ["bad.npz: X has 5 dimensions"]),
    "4 channels": (_npz_maker(X=np.zeros((3, 4, 4, 4))), "new", ["bad.npz: X has 4 channels"]),
    "no images": (_npz_maker(X=np.zeros((0, 4, 4))), "new", ["bad.npz: X holds no images", "0×4×4"]),
    "text pixels": (_npz_maker(X=np.full((3, 2, 2), "a")), "new", ["bad.npz: X holds <U1 values, not numbers"]),
    "a pickled X": (_npz_maker(X=np.array([GOOD[0], None], dtype=object)), "new",
                    ["bad.npz: X holds Python objects"]),
    "NaN pixel": (_npz_maker(X=WITH_NAN), "new", ["bad.npz: X[1, 2, 3] is nan; pixels must be finite"]),
    "infinite pixel": (_npz_maker(X=WITH_INF), "new", ["bad.npz: X[2, 0, 1, 0] is inf"]),
    "negative pixel": (_npz_maker(X=NEGATIVE), "new", ["bad.npz: X[0, 3, 2] is -3; pixels must be 0 or more"]),
    "too many values": (_npz_maker(X=np.zeros((1, 300, 300, 3), np.uint8)), "new",
                        ["bad.npz: images of 300×300×3 have 270,000 values", f"{MAX_VALUES:,}"]),
    "y too short": (_npz_maker(X=GOOD, y=np.array([1, 2])), "new",
                    ["bad.npz: y has shape 2; it must hold one value per image (3)"]),
    "y of 2 dimensions": (_npz_maker(X=GOOD, y=np.zeros((3, 1))), "new", ["bad.npz: y has shape 3×1"]),
    "NaN label": (_npz_maker(X=GOOD, y=np.array([1.0, np.nan, 2.0])), "new", ["bad.npz: y[1] is nan"]),
    "pickled labels": (_npz_maker(X=GOOD, y=np.array([1, "a", None], dtype=object)), "new",
                       ["bad.npz: y holds Python objects"]),
    "repeated id": (_npz_maker(X=GOOD, ids=np.array(["a", "b", "a"])), "new", ["bad.npz: ids[2] 'a' repeats ids[0]"]),
    "empty id": (_npz_maker(X=GOOD, ids=np.array(["a", " ", "c"])), "new", ["bad.npz: ids[1] is empty"]),
    "float ids": (_npz_maker(X=GOOD, ids=np.array([1.5, 2.5, 3.5])), "new", ["bad.npz: ids holds float64 values"]),
    "ids too short": (_npz_maker(X=GOOD, ids=np.array(["a"])), "new", ["bad.npz: ids has shape 1"]),
    "bad dataset name": (_npz_maker(X=GOOD), "a/b", ["dataset name 'a/b'", "'/'"]),
    "empty dataset name": (_npz_maker(X=GOOD), "", ["dataset name is empty"]),
    "another image size for the dataset": (_npz_maker(X=np.zeros((2, 7, 7), np.uint8)), "base",
                                           ["bad.npz: images are 7×7×1, dataset 'base' holds 6×5×1"]),
    "ids for a dataset of row numbers": (_npz_maker(X=GOOD, ids=np.array(["p", "q", "r"])), "base",
                                         ["dataset 'base' takes its ids from row numbers, this import from the "
                                          "NPZ's ids array"]),
    "a label not in the label set": (_npz_maker(X=GOOD, y=np.array([0, 1, 7])), "base",
                                     ["bad.npz: y value '7' (image 2) is not in the dataset's label set (0, 1)"]),
    "images into a dataset of transactions": (_npz_maker(X=GOOD), "cc",
                                              ["bad.npz: dataset 'cc' holds transactions, not images"]),
    "a directory without PNG files": (_folder_with({"notes.csv": b"a,b\n"}), "new",
                                      ["is a directory holding no PNG files"]),
    "an empty directory": (_folder_with({}), "new", ["is a directory holding no PNG files"]),
    "a file that is not a PNG beside PNGs": (_folder_with({"a.png": _png_bytes(GOOD[0]), "b.txt": b"hello"}), "new",
                                             ["imgs/b.txt: not a .png file"]),
    "a folder inside a label folder": (_folder_with({"cat/a.png": _png_bytes(GOOD[0]),
                                                     "cat/deep/b.png": _png_bytes(GOOD[1])}), "new",
                                       ["imgs/cat/deep: a folder inside label folder 'cat'"]),
    "images of two sizes": (_pngs(GOOD[0], GOOD[1], np.zeros((7, 7), np.uint8)), "new",
                            ["imgs/c.png: is 7×7 pixels, the first image (a.png) 6×5: all images must share one size"]),
    "a damaged PNG": (_folder_with({"a.png": _png_bytes(GOOD[0]), "b.png": _png_bytes(GOOD[1])[:40]}), "new",
                      ["imgs/b.png: not a readable PNG file"]),
    "random bytes named .png": (_folder_with({"a.png": bytes(range(256)) * 4}), "new",
                                ["imgs/a.png: not a readable PNG file"]),
    "a JPEG named .png": (_folder_with({"a.png": _png_bytes(GOOD[0], format="JPEG")}), "new",
                          ["imgs/a.png: is a JPEG file, not a PNG"]),
    "a 16-bit PNG": (_folder_with({"a.png": _png_bytes(np.zeros((4, 4), np.uint16))}), "new",
                     ["imgs/a.png: has pixel mode I;16"]),
    "a transparent PNG": (_folder_with({"a.png": _png_bytes(np.zeros((4, 4, 4), np.uint8))}), "new",
                          ["imgs/a.png: has transparent pixels"]),
}


def _npy_bytes(array):
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


@pytest.fixture
def existing(app, tmp_path):
    """A store holding an image dataset 'base' (3 images of 6×5, labels 0/1 as genuine/fraud with ground truth)
    and a dataset of transactions 'cc', so that 'unchanged' means something."""
    import_images(npz(tmp_path / "base.npz", X=GOOD, y=np.array([0, 1, 0])), "base")
    csv = tmp_path / "cc.csv"
    csv.write_text(HEADER + csv_rows(5), encoding="utf-8")
    import_file(str(csv), "cc", label_column="Class", id_column="tx")


@pytest.mark.parametrize("case", list(BAD_IMAGE_INPUTS))
def test_bad_image_input_through_the_service(existing, tmp_path, case):
    make, dataset, fragments = BAD_IMAGE_INPUTS[case]
    folder = tmp_path / "input"
    folder.mkdir()
    path = make(str(folder))
    before = store_snapshot()
    with pytest.raises(ImportFailed) as failure:
        import_images(path, dataset)
    message = str(failure.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert store_snapshot() == before


@pytest.mark.parametrize("case", list(BAD_IMAGE_INPUTS))
def test_bad_image_input_through_the_cli(existing, runner, tmp_path, case):
    make, dataset, fragments = BAD_IMAGE_INPUTS[case]
    folder = tmp_path / "input"
    folder.mkdir()
    path = make(str(folder))
    before = store_snapshot()
    result = runner.invoke(args=["import", path, "--dataset", dataset])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert result.stdout == "" and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and lines[0].endswith("(nothing was imported)")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert store_snapshot() == before


def test_a_csv_into_an_image_dataset_is_refused(existing, tmp_path):
    csv = tmp_path / "more.csv"
    csv.write_text(HEADER + csv_rows(2), encoding="utf-8")
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="more.csv: dataset 'base' holds images: import an NPZ file or a folder"):
        import_file(str(csv), "base")
    assert store_snapshot() == before


# ---- the bundled digits and the command ----------------------------------------------------------------------


def test_the_bundled_digits(app):
    assert os.path.getsize(DIGITS) < 100_000
    dataset = import_images(DIGITS, "digits").dataset
    assert dataset.items().count() == 1797 and dataset.image_shape == (8, 8, 1)
    assert dataset.labels == [str(n) for n in range(10)]
    assert dataset.positive_labels == [] and dataset.positive_label is None
    truth = list(GroundTruth.select().join(Item).where(Item.dataset == dataset))
    assert len(truth) == 1797 and {row.value for row in truth} == set(dataset.labels)
    _, features = load_pool(dataset)
    assert features.shape == (1797, 64) and features.min() == 0.0 and features.max() == 1.0


def test_the_command_imports_images_and_queues_the_worker_s_jobs(runner, tmp_path):
    path = npz(tmp_path / "small.npz", X=images(12), y=np.arange(12) % 4)
    result = runner.invoke(args=["import", path, "--dataset", "small"])
    assert result.exit_code == 0, result.output
    assert "Dataset 'small' created: 12 rows read, 12 added, 0 already present." in result.output
    assert "6×5 grey: pixels divided by 255" in result.output
    dataset = Dataset.get(Dataset.name == "small")
    assert {job.kind for job in Job.select().where(Job.dataset == dataset)} == {jobs.REFILL, jobs.AUTOENCODER}
    assert "queue refill" in result.output and "autoencoder" in result.output
    again = runner.invoke(args=["import", path, "--dataset", "small"])
    assert again.exit_code == 0 and "0 added, 12 already present" in again.output
    assert Job.select().where(Job.dataset == dataset).count() == 2  # nothing new: no job
    named = runner.invoke(args=["import", path, "--dataset", "named", "--labels", "a,b,c,d"])
    assert named.exit_code == 0, named.output  # codes 0..3 take the 4 names in order
    assert truth_of(Dataset.get(Dataset.name == "named")) == {str(n): "abcd"[n % 4] for n in range(12)}
    short = runner.invoke(args=["import", path, "--dataset", "short", "--labels", "a,b,c"])
    assert short.exit_code == 1 and "small.npz: y: values 0, 1, 2, 3 are not in the label set a, b, c" in short.stderr


@pytest.mark.parametrize("option", [["--label-column", "y"], ["--id-column", "ids"], ["--exclude", "px_0_0"],
                                    ["--ignore", "y"], ["--time-column", "t"], ["--entity-column", "card"],
                                    ["--categorical", "c"], ["--amount-column", "a"]])
def test_csv_options_are_refused_for_images(runner, tmp_path, option):
    path = npz(tmp_path / "small.npz", X=images(3))
    result = runner.invoke(args=["import", path, "--dataset", "small", *option])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"Error: {option[0]} applies to CSV and Parquet files, not to images "
                                          f"({path}): only --dataset, --labels and --positive-labels do (nothing was imported)"]
    assert Dataset.get_or_none(Dataset.name == "small") is None


def test_the_command_s_help_names_images(runner):
    result = runner.invoke(args=["import", "--help"])
    assert "NPZ" in result.output and "PNG" in result.output


# ---- the PNG routes, the item table, the screen --------------------------------------------------------------


def store_reconstruction(dataset, folder, factor=0.5):
    """Stored autoencoder outputs as the worker's job writes them, with every item's reconstruction its pixels
    times ``factor`` (no Keras)."""
    ids, features = load_pool(dataset)
    reconstruction = (features * factor).astype(np.float32)
    error = np.square(features - reconstruction)

    def latent(path):
        write_atomically(path, lambda out: np.savez(out, ids=ids, x=np.zeros(len(ids), np.float32),
                                                    y=np.zeros(len(ids), np.float32),
                                                    labels=np.array([""] * len(ids))))

    files = {"ids.npy": npy_file(ids), "reconstruction.npy": npy_file(reconstruction),
             "anomaly.npy": npy_file(error.mean(axis=1).astype(np.float32)), "latent.npz": latent}
    return store_artifacts(GenerativeArtifacts, dataset, os.path.join(folder, f"generative-{dataset.id}"), files,
                           lambda paths: dict(
                               ids_path=paths["ids.npy"], reconstruction_path=paths["reconstruction.npy"],
                               anomaly_path=paths["anomaly.npy"], latent_path=paths["latent.npz"],
                               pool_rows=len(ids), projection="pca", device="CPU", seconds=0.1,
                               scaling={"minimum": features.min(axis=0).tolist(),
                                        "maximum": features.max(axis=0).tolist()},
                               details={"feature_error": error.mean(axis=0).tolist()}, created_at=utcnow()))


@pytest.fixture
def binary_images(app, tmp_path):
    """(dataset 'bin', its pixels): 40 random images of 6×5 with y 0/1, read as genuine/fraud."""
    pixels = images(40)
    dataset = import_images(npz(tmp_path / "bin.npz", X=pixels, y=np.arange(40) % 2), "bin").dataset
    return dataset, pixels


def _decoded(response):
    return np.asarray(Image.open(io.BytesIO(response.get_data())))


def test_the_png_routes(client, analyst, binary_images, config):
    dataset, pixels = binary_images
    item = items_of(dataset)[3]
    address = f"/datasets/bin/items/{item.id}.png"
    assert client.get(address).status_code in (302, 401)  # login first
    login(client, "ana")
    response = client.get(address)
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "private, max-age=3600"
    decoded = Image.open(io.BytesIO(response.get_data()))
    assert (decoded.format, decoded.size, decoded.mode) == ("PNG", (WIDTH, HEIGHT), "L")
    assert np.array_equal(np.asarray(decoded), pixels[3])
    reconstruction = f"/datasets/bin/items/{item.id}/reconstruction.png"
    assert client.get(reconstruction).status_code == 404  # none stored yet
    store_reconstruction(dataset, config.MODEL_FOLDER)
    response = client.get(reconstruction)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, max-age=3600"
    assert np.abs(_decoded(response).astype(int) - np.round(pixels[3] / 2).astype(int)).max() <= 1
    csv = import_file(_csv(config.INSTANCE_PATH), "cc", id_column="tx").dataset
    for missing in (f"/datasets/cc/items/{items_of(csv)[0].id}.png",  # a transaction: no image
                    f"/datasets/cc/items/{items_of(csv)[0].id}/reconstruction.png",
                    f"/datasets/bin/items/{items_of(csv)[0].id}.png",  # another dataset's item
                    "/datasets/bin/items/999999.png", "/datasets/nosuch/items/1.png",
                    "/datasets/bin/items/99999999999999999999.png"):
        assert client.get(missing).status_code == 404, missing


def _csv(folder):
    path = os.path.join(folder, "cc.csv")
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(HEADER + csv_rows(3))
    return path


def test_the_item_table_shows_thumbnails(client, analyst, binary_images):
    dataset, _ = binary_images
    login(client, "ana")
    page = client.get("/datasets/bin").get_data(as_text=True)
    first = items_of(dataset)[0]
    assert "<th>image</th>" in page
    assert f'src="/datasets/bin/items/{first.id}.png" width="48" height="58"' in page
    assert page.count('class="pixelated"') == 40


def test_the_screen_shows_the_image_its_reconstruction_and_similar_labeled_images(client, analyst, binary_images,
                                                                                   run_jobs, config):
    dataset, _ = binary_images
    jobs.request(dataset, jobs.REFILL, "test", enqueue=False)
    assert set(run_jobs(dataset).values()) == {"done"}
    login(client, "ana")
    page = client.get("/datasets/bin/label").get_data(as_text=True)
    assert "data-item-image" in page and "data-no-reconstruction" in page
    assert "No labeled images yet." in page
    assert 'class="bars' not in page and "Feature bars appear" not in page  # no feature bars for images
    shown = int(page.split('data-item-id="', 1)[1].split('"', 1)[0])
    labeled = [item for item in items_of(dataset) if item.id != shown][:6]
    for item in labeled:
        Label.create(item=item, value=dataset.labels[item.row_number % 2], annotator=analyst, source="human")
    Standing.refresh(item.id for item in labeled)
    record = store_reconstruction(dataset, config.MODEL_FOLDER)
    page = client.get("/datasets/bin/label").get_data(as_text=True)
    assert int(page.split('data-item-id="', 1)[1].split('"', 1)[0]) == shown  # still on the analyst's screen
    assert f'src="/datasets/bin/items/{shown}.png" width="224" height="269"' in page
    version = record.created_at.strftime("%Y%m%d%H%M%S%f")
    assert f'src="/datasets/bin/items/{shown}/reconstruction.png?v={version}"' in page
    assert "the autoencoder's reconstruction: error " in page and "× the pool's mean" in page
    thumbnails = page.split("data-similar-images", 1)[1].split("</ul>", 1)[0]
    sources = [int(part.split(".png", 1)[0]) for part in thumbnails.split('src="/datasets/bin/items/')[1:]]
    assert len(sources) == 5 and set(sources) < {item.id for item in labeled}  # the 5 nearest of the 6 labeled
    assert ">genuine</span>" in thumbnails and ">fraud</span>" in thumbnails


def test_the_screen_s_messages_call_an_image_an_image(analyst, binary_images, run_jobs):
    dataset, _ = binary_images
    jobs.request(dataset, jobs.REFILL, "test", enqueue=False)
    assert set(run_jobs(dataset).values()) == {"done"}
    first = leases.next_item(dataset, analyst).item
    outcome, lease = decisions.decide(dataset, analyst, first.id, "label:genuine")
    assert outcome.message == f"Labeled image {first.external_id} as genuine."
    assert decisions.decide(dataset, analyst, first.id, "label:genuine")[0].message == (
        f"You already labeled image {first.external_id} as genuine; nothing was recorded twice.")
    second = lease.item
    assert decisions.skip(dataset, analyst, second.id)[0].message == (
        f"Skipped image {second.external_id}; it comes back later.")
    assert decisions.undo(dataset, analyst)[0].message.startswith(f"Undid genuine on image {first.external_id}; ")


def test_image_view_is_none_for_transactions(app, tmp_path):
    dataset = import_file(_csv(str(tmp_path)), "cc", id_column="tx").dataset
    assert image_view(dataset, items_of(dataset)[0]) is None


@pytest.mark.slow
def test_the_worker_s_autoencoder_reconstructs_the_digits(app, config):
    from labeler.worker import autoencoder

    dataset = import_images(DIGITS, "digits").dataset
    autoencoder.compute(dataset, None, config.MODEL_FOLDER, epochs=3)
    item = items_of(dataset)[0]
    stored = artifacts.reconstruction_of(dataset, item.id)
    assert stored["reconstruction"].shape == (64,) and np.isfinite(stored["reconstruction"]).all()
    view = image_view(dataset, item)["reconstruction"]
    assert 0 < view["error"] < 1 and view["ratio"] > 0  # what the screen says; not a figure of its quality
