"""Image items as PNG: an image dataset's pixels (features in [0, 1], row-major height x width x channels) drawn
with Pillow. The browser scales them up with nearest-neighbour sampling (CSS ``image-rendering: pixelated``)."""
import io

import numpy as np
from PIL import Image


def png_of(pixels, shape):
    """PNG bytes of one image: ``pixels`` (any array of height * width * channels values in [0, 1], clipped)
    of ``shape`` (height, width, channels; 1 channel is grey, 3 RGB). Raises ValueError when the sizes differ
    or the channels are neither 1 nor 3."""
    height, width, channels = (int(part) for part in shape)
    values = np.asarray(pixels, dtype=np.float64).reshape(-1)
    if values.size != height * width * channels:
        raise ValueError(f"{values.size} pixel values do not make an image of {height}x{width}x{channels}")
    if channels not in (1, 3):
        raise ValueError(f"an image has 1 (grey) or 3 (RGB) channels, not {channels}")
    grey = np.round(np.clip(np.nan_to_num(values), 0.0, 1.0) * 255).astype(np.uint8)
    array = grey.reshape(height, width) if channels == 1 else grey.reshape(height, width, 3)
    stream = io.BytesIO()
    Image.fromarray(array, mode="L" if channels == 1 else "RGB").save(stream, format="PNG", optimize=False)
    return stream.getvalue()


def grid_png(images, shape, columns, gap=1):
    """PNG bytes of ``images`` (rows of pixels as for png_of) laid out ``columns`` to a row with ``gap`` white
    pixels between them. Raises ValueError as png_of."""
    images = np.asarray(images, dtype=np.float64)
    height, width, channels = (int(part) for part in shape)
    rows = -(-len(images) // columns)
    canvas = np.ones(((height + gap) * rows - gap, (width + gap) * columns - gap, channels))
    for position, image in enumerate(images):
        top, left = (position // columns) * (height + gap), (position % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = image.reshape(height, width, channels)
    return png_of(canvas, canvas.shape)
