"""A digit drawn by hand, prepared the way MNIST's digits were (LeCun, Cortes, Burges):

"The original black and white images from NIST were size normalized to fit in a 20x20 pixel box
while preserving their aspect ratio. The resulting images contain grey levels as a result of the
anti-aliasing technique used by the normalization algorithm. The images were centered in a 28x28
image by computing the center of mass of the pixels, and translating the image so as to position
this point at the center of the 28x28 field."

So: greyscale ink in [0, 1] (white on black, like MNIST), cropped to its bounding box, scaled so
the longer side is 20 pixels (area averaging: each new pixel is the mean of the old pixels it
covers, which is the anti-aliasing), and pasted into 28 x 28 with its centre of mass moved by
whole pixels to (14, 14), row and column: where MNIST's training digits have theirs on average
(13.996, 14.007, spread 0.29). Pure NumPy.
"""

import struct

import numpy as np

from .errors import InputError

FIELD = 28  # the image side the network reads
BOX = 20  # the longer side of the digit inside it
CENTRE = 14.0  # MNIST's centre of mass, in pixel-index coordinates (row, column)
INK_THRESHOLD = 0.02  # fainter pixels are background (canvas anti-aliasing fringe, PNG noise)
MAX_SIDE = 2000  # a drawing larger than this is refused: a canvas is a few hundred pixels


def png_size(data):
    """(width, height) from a PNG's header, without decoding it: a size can be refused before
    an image that claims to be huge is unpacked."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise InputError("drawing", "is not a PNG image")
    return struct.unpack(">II", data[16:24])


def ink_from_rgba(rgba):
    """Ink in [0, 1] from an RGBA (or RGB) image drawn light on dark: brightness times opacity,
    so a white stroke on black or on a transparent canvas both read as ink."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
        raise InputError("drawing", f"must be an RGB or RGBA image (height, width, 3 or 4), got {rgba.shape}")
    rgb = rgba[..., :3].astype(np.float64) / 255.0
    ink = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as greyscale conversions use
    if rgba.shape[2] == 4:
        ink *= rgba[..., 3] / 255.0
    return ink


def _area_weights(n_in, n_out):
    """(n_out, n_in) matrix: output pixel i is the mean of the input pixels (or parts of them)
    that fall in its footprint [i, i + 1) * n_in / n_out."""
    scale = n_in / n_out
    edges = np.arange(n_out + 1) * scale
    starts = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], starts[None, :] + 1) - np.maximum(edges[:-1, None], starts[None, :])
    return np.clip(overlap, 0.0, None) / scale


def resize_area(image, height, width):
    """Area-averaging resize of a 2-D image (anti-aliased when shrinking)."""
    image = np.asarray(image, dtype=np.float64)
    return _area_weights(image.shape[0], height) @ image @ _area_weights(image.shape[1], width).T


def centre_of_mass(image):
    """(row, column) of the ink's centre of mass, in pixel-index coordinates."""
    total = image.sum()
    rows = np.arange(image.shape[0]) @ image.sum(axis=1) / total
    columns = np.arange(image.shape[1]) @ image.sum(axis=0) / total
    return rows, columns


def mnist_style(ink):
    """A 2-D ink image (values in [0, 1], ink bright) as a FIELD x FIELD MNIST-style digit, or
    None when nothing is drawn."""
    ink = np.asarray(ink, dtype=np.float64)
    if ink.ndim != 2:
        raise InputError("drawing", f"must be a 2-D greyscale image, got shape {ink.shape}")
    if max(ink.shape) > MAX_SIDE:
        raise InputError("drawing", f"is {ink.shape[1]} x {ink.shape[0]} pixels; at most {MAX_SIDE} a side")
    if not np.all(np.isfinite(ink)):
        raise InputError("drawing", "contains values that are not numbers")
    ink = np.clip(ink, 0.0, 1.0)
    marked = ink > INK_THRESHOLD
    if not marked.any():
        return None
    rows, columns = np.flatnonzero(marked.any(axis=1)), np.flatnonzero(marked.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    digit = resize_area(crop, max(1, round(height * scale)), max(1, round(width * scale)))
    row, column = centre_of_mass(digit)
    top, left = int(round(CENTRE - row)), int(round(CENTRE - column))
    field = np.zeros((FIELD, FIELD))
    # Paste with clipping: a very lopsided digit's box can reach past the field's edge.
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + digit.shape[0], FIELD), min(left + digit.shape[1], FIELD)
    field[r0:r1, c0:c1] = digit[r0 - top:r1 - top, c0 - left:c1 - left]
    return np.clip(field, 0.0, 1.0)
