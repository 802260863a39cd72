"""What the labeling screen and the item table show of an image item: its pixels, the autoencoder's
reconstruction of it (stored by the worker, read with numpy) and the sizes the page draws them at. The browser
scales the small images up with nearest-neighbour sampling, so every pixel stays a crisp square.
"""
import numpy as np

from labeler.store import artifacts
from labeler.store.db import Item

DISPLAY_WIDTH = 224  # px: the item's image and its reconstruction on the labeling screen
THUMBNAIL_WIDTH = 48  # px: the similar labeled items and the item table


class NoImage(LookupError):
    """The dataset holds no images, it has no such item, or no reconstruction of it is stored."""


def image_view(dataset, item):
    """For the labeling screen: None for a dataset of transactions, else a dict with the image's ``shape``
    (height, width, channels), the ``width`` and ``height`` to draw it and the reconstruction at, those of a
    ``thumbnail``, and ``reconstruction``: None until the worker's autoencoder job stored one holding the item,
    else a dict with its ``version`` (for the image's address, so a recomputed one is fetched anew),
    ``created_at``, the item's mean squared ``error`` (pixels in 0..1) and its ``ratio`` to the pool's."""
    shape = dataset.image_shape
    if shape is None:
        return None
    stored = artifacts.reconstruction_of(dataset, item.id)
    reconstruction = None
    if stored is not None:
        error = float(np.mean(np.square(item.feature_vector.astype(np.float64) - stored["reconstruction"])))
        pool = float(np.mean(stored["feature_error"])) if len(stored["feature_error"]) else 0.0
        reconstruction = {"version": stored["created_at"].strftime("%Y%m%d%H%M%S%f"),
                          "created_at": stored["created_at"], "error": error,
                          "ratio": error / pool if pool > 0 else None}
    return {"shape": shape, "width": DISPLAY_WIDTH, "height": _scaled_height(shape, DISPLAY_WIDTH),
            "thumbnail": {"width": THUMBNAIL_WIDTH, "height": _scaled_height(shape, THUMBNAIL_WIDTH)},
            "reconstruction": reconstruction}


def thumbnail_size(dataset):
    """(width, height) in px of ``dataset``'s thumbnails, None for a dataset of transactions."""
    shape = dataset.image_shape
    return None if shape is None else (THUMBNAIL_WIDTH, _scaled_height(shape, THUMBNAIL_WIDTH))


def item_pixels(dataset, item_id):
    """(pixels in 0..1 as float32, shape) of item ``item_id`` of the image dataset ``dataset``. Raises NoImage
    when the dataset holds no images or not that item."""
    shape = _shape_of(dataset)
    row = Item.select(Item.features).where((Item.id == item_id) & (Item.dataset == dataset)).tuples().first()
    if row is None:
        raise NoImage(f"dataset {dataset.name!r} has no item {item_id}")
    return np.frombuffer(bytes(row[0]), dtype=np.float32), shape


def reconstruction_pixels(dataset, item_id):
    """(the autoencoder's stored reconstruction of item ``item_id`` in pixel units, shape). Raises NoImage when
    the dataset holds no images, or no readable reconstruction of the item is stored."""
    shape = _shape_of(dataset)
    stored = artifacts.reconstruction_of(dataset, item_id)
    if stored is None:
        raise NoImage(f"no reconstruction of item {item_id} of dataset {dataset.name!r} is stored")
    return stored["reconstruction"], shape


def _shape_of(dataset):
    """``dataset``'s image shape. Raises NoImage for a dataset of transactions."""
    if dataset.image_shape is None:
        raise NoImage(f"dataset {dataset.name!r} holds transactions, not images")
    return dataset.image_shape


def _scaled_height(shape, width):
    """The height in px of an image of ``shape`` drawn ``width`` px wide (at least 1)."""
    height, image_width, _ = shape
    return max(1, round(width * height / image_width))
