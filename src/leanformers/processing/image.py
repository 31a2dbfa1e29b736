"""The image processor: one pipeline, configured by ``preprocessor_config.json``.

RGB conversion -> resize -> center crop -> rescale + normalize -> (pad) -> channels first. A class
name (ViT, DeiT, ConvNeXT, BiT, CLIP, and the legacy ``...FeatureExtractor`` names) selects a
*profile*: default settings, how an int ``size`` is read, which resize rule applies. The output
equals the reference's PIL backend bit for bit: Pillow resizes 8-bit images (``resample.py``
computes only the pixels a crop keeps, with Pillow's bytes), and 8-bit pixels are rescaled and
normalised through a 256-entry table per channel built with the reference's arithmetic.

One deliberate difference: when ``do_convert_rgb`` is unset and an image's channels do not fit a
three-value mean/std (grayscale, RGBA, CMYK...), the reference raises; here the image is converted
to RGB as ``do_convert_rgb=True`` would.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import PIL.Image
import PIL.ImageOps

from .. import registry, threads
from ..errors import ConfigError, InputError
from .features import (
    BatchFeature,
    Preprocessor,
    check_settings,
    describe,
    is_flag,
    is_integer,
    is_number,
    is_tensor,
    tensor_to_numpy,
    tensor_type_name,
)
from .resample import native_pixels, resize_crop_native

IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406]
IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225]
IMAGENET_STANDARD_MEAN = [0.5, 0.5, 0.5]
IMAGENET_STANDARD_STD = [0.5, 0.5, 0.5]
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# Pillow's resampling filters by their integer codes, as configs store them.
NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING = range(6)
RESAMPLE_NAMES = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}

# The settings a processor holds and a call may override (the reference's ``ImagesKwargs``).
SETTING_KEYS = (
    "do_convert_rgb", "do_resize", "size", "default_to_square", "crop_size", "resample", "do_rescale",
    "rescale_factor", "do_normalize", "image_mean", "image_std", "do_pad", "pad_size", "do_center_crop",
    "data_format", "input_data_format", "device", "return_tensors", "disable_grouping", "image_seq_length",
)
_FLAGS = ("do_convert_rgb", "do_resize", "do_rescale", "do_normalize", "do_pad", "do_center_crop", "default_to_square")
_SIZE_KEYS = ("size", "crop_size", "pad_size")
# The size dictionaries a config may hold (any other set of keys is refused).
_SIZE_KEY_SETS = (
    {"height", "width"}, {"shortest_edge"}, {"shortest_edge", "longest_edge"}, {"longest_edge"},
    {"max_height", "max_width"}, {"min_pixels", "max_pixels"},
)


def _channel_format(value: Any) -> str | None:
    name = getattr(value, "value", value)
    return name if name in ("channels_first", "channels_last") else None


# What each scalar setting must be (None always passes: the setting is unset).
_RULES = {
    **dict.fromkeys(_FLAGS, (is_flag, "true, false or null")),
    "resample": (
        lambda value: is_integer(value) and int(value) in RESAMPLE_NAMES,
        "a Pillow filter: " + ", ".join(f"{code} ({label})" for code, label in RESAMPLE_NAMES.items()),
    ),
    "rescale_factor": (is_number, "a number"),
    "crop_pct": (lambda value: is_number(value) and value > 0, "a positive number (ConvNeXT uses 0.875)"),
    "input_data_format": (
        lambda value: _channel_format(value) is not None,
        "'channels_first' (C, H, W) or 'channels_last' (H, W, C)",
    ),
}


@dataclass(frozen=True)
class Profile:
    """What an image processor class name selects: default settings and two rules."""

    defaults: dict[str, Any]
    # How an int ``size`` is read: True -> {"height": n, "width": n}; False -> {"shortest_edge": n}.
    default_to_square: bool = True
    # "size": resize as the size dictionary says. "crop_pct": ConvNeXT's rule -- below 384 pixels,
    # resize the short side to shortest_edge / crop_pct and center-crop a square; from 384, warp.
    resize_rule: str = "size"
    # Settings beyond SETTING_KEYS that this class accepts per call.
    extra_keys: tuple[str, ...] = ()


_SCALED = {"do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True}
_STANDARD = {**_SCALED, "image_mean": IMAGENET_STANDARD_MEAN, "image_std": IMAGENET_STANDARD_STD}
_CROP_224 = {"do_center_crop": True, "crop_size": {"height": 224, "width": 224}}
_CLIP = Profile(
    {**_SCALED, **_CROP_224, "do_convert_rgb": True, "size": {"shortest_edge": 224}, "resample": BICUBIC,
     "image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD},
    default_to_square=False,
)
PROFILES: dict[str, Profile] = {
    "vit": Profile({**_STANDARD, "size": {"height": 224, "width": 224}, "resample": BILINEAR}),
    "deit": Profile({**_STANDARD, **_CROP_224, "size": {"height": 256, "width": 256}, "resample": BICUBIC}),
    "convnext": Profile(
        {**_STANDARD, "size": {"shortest_edge": 384}, "resample": BICUBIC, "crop_pct": 224 / 256},
        default_to_square=False,
        resize_rule="crop_pct",
        extra_keys=("crop_pct",),
    ),
    "bit": _CLIP,
    "clip": _CLIP,
    # SigLIP: warped to the square size, no crop; an int size given later means the short side.
    "siglip": Profile(
        {**_STANDARD, "do_convert_rgb": True, "size": {"height": 224, "width": 224}, "resample": BICUBIC},
        default_to_square=False,
    ),
}


def _size_dict(value: Any, name: str, default_to_square: bool, error: type[Exception]) -> dict[str, int] | None:
    """A size setting as a dictionary: an int follows ``default_to_square`` (crop and pad sizes
    are always square), a pair is (height, width)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        size = dict(value)
    elif is_integer(value):
        size = {"height": int(value), "width": int(value)} if default_to_square else {"shortest_edge": int(value)}
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        size = {"height": value[0], "width": value[1]}
    else:
        raise error(
            f"{name}={value!r} is not a size: give an int, a (height, width) pair, or a dict such as "
            f'{{"height": 224, "width": 224}} or {{"shortest_edge": 224}}.'
        )
    if set(size) not in _SIZE_KEY_SETS:
        allowed = " | ".join("{" + ", ".join(sorted(keys)) + "}" for keys in _SIZE_KEY_SETS)
        raise error(f"{name}={value!r} has keys {sorted(size)}; a size dict has one of these key sets: {allowed}.")
    for key, number in size.items():
        if not is_integer(number) or number < 1:
            raise error(f"{name}[{key!r}] must be a positive int (a number of pixels), got {number!r}.")
    return {key: int(number) for key, number in size.items()}


def _mean_or_std(value: Any, name: str, error: type[Exception]) -> Any:
    if value is None:
        return value
    values = value.tolist() if isinstance(value, np.ndarray) else value
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if not all(is_number(v) for v in values):
        raise error(f"{name}={value!r} must be a number or a list of finite numbers (one per channel).")
    if name == "image_std" and 0 in values:
        raise error(f"image_std={value!r} holds a 0, and normalizing divides by it; use the model's std (e.g. 0.5).")
    return values if isinstance(value, (list, tuple, np.ndarray)) else value


def _standardize(settings: dict[str, Any], default_to_square: bool, where: str, error: type[Exception]) -> None:
    """Normalise the forms a config may use (int or pair sizes, list means) in place, and check them."""
    square = settings.get("default_to_square")
    square = default_to_square if square is None else bool(square)
    for key in _SIZE_KEYS:
        if key in settings:
            settings[key] = _size_dict(settings[key], key, square if key == "size" else True, error)
    for key in ("image_mean", "image_std"):
        if key in settings:
            settings[key] = _mean_or_std(settings[key], key, error)
    check_settings(settings, _RULES, where, error, optional=True)


def _shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _size_with_longest_edge(height: int, width: int, size: int, max_size: int) -> tuple[int, int]:
    low, high = float(min(height, width)), float(max(height, width))
    short = size  # the short side before rounding
    if high / low * size > max_size:
        short = max_size * low / high
        size = round(short)
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return int(short * height / width), size
    return size, int(short * width / height)


def resize_output_size(height: int, width: int, size: dict[str, int]) -> tuple[int, int]:
    """(height, width) after resizing an image of (height, width) by a size dictionary."""
    if size.get("shortest_edge") and size.get("longest_edge"):
        return _size_with_longest_edge(height, width, size["shortest_edge"], size["longest_edge"])
    if size.get("shortest_edge"):
        return _shortest_edge_size(height, width, size["shortest_edge"])
    if size.get("max_height") and size.get("max_width"):
        scale = min(size["max_height"] / height, size["max_width"] / width)
        return int(height * scale), int(width * scale)
    if size.get("height") and size.get("width"):
        return size["height"], size["width"]
    raise InputError(
        f"Cannot resize by size={size}: this processor resizes by {{'height', 'width'}}, {{'shortest_edge'}}, "
        f"{{'shortest_edge', 'longest_edge'}} or {{'max_height', 'max_width'}}."
    )


# A working image is either a PIL image in one of these modes (Pillow resizes it exactly as the
# reference's array round trip would) or a channels-last numpy array (H, W, C) of any dtype.
_DIRECT_PIL_MODES = ("RGB", "L", "RGBA")


def _describe(value: Any) -> str:
    if isinstance(value, PIL.Image.Image):
        return f"a PIL image ({value.mode}, {value.size[0]}x{value.size[1]})"
    return describe(value)


def _open_path(path: str | os.PathLike) -> PIL.Image.Image:
    name = os.fspath(path)
    if isinstance(name, str) and name.startswith(("http://", "https://")):
        raise InputError(
            f"Image URLs are not fetched ({name!r}): download the file and pass its path, or open it with PIL."
        )
    if not os.path.isfile(name):
        raise InputError(
            f"Image path {name!r} does not exist or is not a file. Pass a PIL image, an array, or a file path."
        )
    try:
        image = PIL.Image.open(name)
        image = PIL.ImageOps.exif_transpose(image)
        return image.convert("RGB")
    except PIL.Image.DecompressionBombError as exc:
        raise InputError(
            f"Refusing to decode {name!r}: {exc} Pillow's limit is PIL.Image.MAX_IMAGE_PIXELS "
            f"({PIL.Image.MAX_IMAGE_PIXELS} pixels); raise it only for files you trust."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"Cannot read {name!r} as an image: {exc}") from exc


def _is_image_input(value: Any) -> bool:
    """Whether a (non-list) input is an image or a 4-D batch of them."""
    if isinstance(value, (PIL.Image.Image, str, os.PathLike)):
        return True
    return (isinstance(value, np.ndarray) or is_tensor(value)) and value.ndim in (2, 3, 4)


def flatten_images(images: Any) -> list[Any]:
    """One flat list of single images from an image, a 4-D batch, a list, or a nested list of them."""
    if images is None:
        raise InputError("No images given: pass a PIL image, a numpy array, a torch tensor, or a list of them.")
    items = images if isinstance(images, (list, tuple)) else [images]
    flat: list[Any] = []
    for position, item in enumerate(items):
        group = item if isinstance(item, (list, tuple)) else [item]
        for image in group:
            if isinstance(image, (list, tuple)):
                raise InputError(
                    f"Images nested more than two lists deep (at item {position}); pass a list of images or a "
                    f"list of lists of images."
                )
            if not _is_image_input(image):
                if isinstance(image, np.ndarray) or is_tensor(image):
                    raise InputError(
                        f"Item {position} is {_describe(image)}; an image array has 2 (H, W), 3 (H, W, C or "
                        f"C, H, W) or 4 (a batch) dimensions."
                    )
                raise InputError(
                    f"Item {position} is {_describe(image)}, not an image. Pass PIL images, numpy arrays, "
                    f"torch tensors or image file paths (or a list of them)."
                )
            if (isinstance(image, np.ndarray) or is_tensor(image)) and image.ndim == 4:
                flat.extend(image[i] for i in range(len(image)))
            else:
                flat.append(image)
    if not flat:
        raise InputError("The list of images is empty: pass at least one image.")
    return flat


def _infer_channels_last(array: np.ndarray, explicit: str | None) -> bool:
    """Whether a 3-D array is (H, W, C); the reference's rule: a leading 1/3/4 axis is the
    channel axis (preferred when both ends could be), else a trailing one."""
    if explicit is not None:
        return explicit == "channels_last"
    first, last = array.shape[0] in (1, 3, 4), array.shape[-1] in (1, 3, 4)
    if first or last:
        return not first
    raise InputError(
        f"Cannot tell which axis of an image array of shape {array.shape} holds the channels (expected 1, 3 "
        f"or 4 channels first or last). Pass input_data_format='channels_first' or 'channels_last'."
    )


def _pil_to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """RGB as the reference converts it: transparency is composited onto white, everything else
    (grayscale, palette, CMYK, 16-bit, bilevel) goes through Pillow's own conversion."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """RGB from a channels-last array: one channel repeated; four channels composited onto white."""
    channels = array.shape[-1]
    if channels == 1:
        return np.repeat(array, 3, axis=-1)
    if channels != 4:
        return array
    integer = np.issubdtype(array.dtype, np.integer)
    if not integer and (array.min() < 0.0 or array.max() > 1.0):
        raise InputError(
            f"A 4-channel (RGBA) float image must hold values in [0, 1] to be composited onto white, "
            f"got [{array.min()}, {array.max()}]."
        )
    white = 255 if integer else 1.0
    alpha = array[..., 3:4] / white
    blended = alpha * array[..., :3] + (1 - alpha) * white
    return np.round(blended).astype(array.dtype) if integer else blended.astype(array.dtype)


def prepare_image(
    image: Any, convert_rgb: bool | None, wants_rgb: bool, input_format: str | None
) -> PIL.Image.Image | np.ndarray:
    """One input image as a working image (see ``_DIRECT_PIL_MODES``), converted to RGB when asked
    (``convert_rgb``), or when not said either way and the normalisation expects three channels."""
    if isinstance(image, (str, os.PathLike)):
        image = _open_path(image)
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise InputError(f"Got {_describe(image)}: an image needs at least one pixel.")
        if convert_rgb or (convert_rgb is None and wants_rgb and len(image.getbands()) != 3):
            image = _pil_to_rgb(image)
        if image.mode in _DIRECT_PIL_MODES:
            return image
        array = np.array(image)
        return array[..., None] if array.ndim == 2 else array
    array = tensor_to_numpy(image)
    if array.ndim == 2:
        array = array[..., None]
    elif not _infer_channels_last(array, input_format):
        array = np.moveaxis(array, 0, -1)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"Got {_describe(image)}: an image needs at least one pixel.")
    if convert_rgb or (convert_rgb is None and wants_rgb and array.shape[-1] in (1, 4)):
        array = _array_to_rgb(array)
    return array


def _as_array(image: PIL.Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array


def _needs_255_scaling(array: np.ndarray) -> bool:
    """Whether an array must be multiplied by 255 to become 8-bit pixels, by the reference's rule:
    uint8 and whole numbers in [0, 255] are used as they are, other floats must lie in [0, 1]."""
    if array.dtype == np.uint8:
        return False
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputError(
            "The image holds NaN or infinite values, which cannot be resized. Clean the array "
            "(np.nan_to_num) or pass do_resize=False."
        )
    if np.allclose(array, array.astype(np.int64)):
        if array.min() >= 0 and array.max() <= 255:
            return False
        raise InputError(
            f"The image holds whole numbers in [{array.min()}, {array.max()}], outside the 8-bit range "
            f"[0, 255] that resizing needs. Scale it to [0, 255] or [0, 1] first (16-bit images: pass the PIL "
            f"image with do_convert_rgb=True, or divide by 257)."
        )
    if array.min() >= 0 and array.max() <= 1:
        return True
    raise InputError(
        f"The float image holds values in [{array.min()}, {array.max()}]; resizing needs floats in [0, 1] "
        f"or whole numbers in [0, 255]."
    )


def resize_image(
    image: PIL.Image.Image | np.ndarray, height: int, width: int, resample: int
) -> PIL.Image.Image | np.ndarray:
    """Resize with Pillow. Arrays become 8-bit PIL images by the reference's rules (floats in
    [0, 1] are scaled by 255 and truncated) and come back the same way."""
    if height <= 0 or width <= 0:
        raise InputError(f"Resizing would give an empty image ({height}x{width}); check the size setting.")
    if isinstance(image, PIL.Image.Image):
        return image.resize((width, height), resample=resample)
    scaled = _needs_255_scaling(image)
    pixels = (image.astype(np.float64) * 255).astype(np.float32) if scaled else image
    pixels = pixels.astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    try:
        pil = PIL.Image.fromarray(pixels)
    except (TypeError, ValueError) as exc:
        raise InputError(f"Cannot resize an image with {image.shape[-1]} channels: {exc}") from exc
    resized = np.array(pil.resize((width, height), resample=resample))
    if resized.ndim == 2:
        resized = resized[..., None]
    return (resized.astype(np.float64) * (1 / 255)).astype(np.float32) if scaled else resized


def resize_and_crop(
    image: PIL.Image.Image | np.ndarray, height: int, width: int, resample: int, crop: tuple[int, int] | None
) -> np.ndarray:
    """``resize_image`` then, when ``crop`` (height, width) is given, ``center_crop``. The native
    engine (``resample.py``) resamples the crop's part alone where it gives Pillow's bytes."""
    native = native_pixels(image)
    if native is not None and height > 0 and width > 0:
        fits = crop is None or (crop[0] <= height and crop[1] <= width)
        pixels, channels = native
        kept = resize_crop_native(pixels, height, width, resample, crop if fits else None, channels)
        if kept is not None:
            return kept if fits else center_crop(kept, *crop)
    resized = _as_array(resize_image(image, height, width, resample))
    return center_crop(resized, *crop) if crop is not None else resized


def center_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre (height, width) of a channels-last array, zero-padded where the image is smaller."""
    rows, cols = array.shape[0], array.shape[1]
    top, left = (rows - height) // 2, (cols - width) // 2
    if top >= 0 and left >= 0 and top + height <= rows and left + width <= cols:
        return array[top : top + height, left : left + width]
    padded_rows, padded_cols = max(height, rows), max(width, cols)
    padded = np.zeros((padded_rows, padded_cols) + array.shape[2:], dtype=array.dtype)
    top_pad, left_pad = math.ceil((padded_rows - rows) / 2), math.ceil((padded_cols - cols) / 2)
    padded[top_pad : top_pad + rows, left_pad : left_pad + cols] = array
    top, left = top + top_pad, left + left_pad
    return padded[max(0, top) : min(padded_rows, top + height), max(0, left) : min(padded_cols, left + width)]


def _per_channel(value: Any, channels: int, name: str) -> list[float]:
    if isinstance(value, (list, tuple)):
        if len(value) != channels:
            raise InputError(
                f"{name} has {len(value)} values but the image has {channels} channel(s). Convert the image "
                f"to RGB (do_convert_rgb=True) or give {name} one value per channel."
            )
        return list(value)
    return [value] * channels


def _rescale_and_normalize(array: np.ndarray, opts: dict[str, Any]) -> np.ndarray:
    """The reference's rescale and normalize for non-8-bit pixels, operation by operation."""
    if opts["do_rescale"]:
        array = (array.astype(np.float64) * opts["rescale_factor"]).astype(np.float32)
    if opts["do_normalize"]:
        if not np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        channels = array.shape[-1]
        mean = np.array(_per_channel(opts["image_mean"], channels, "image_mean"), dtype=array.dtype)
        std = np.array(_per_channel(opts["image_std"], channels, "image_std"), dtype=array.dtype)
        array = (array - mean) / std
    return array


def _lookup_table(opts: dict[str, Any], channels: int) -> np.ndarray:
    """(channels, 256): every 8-bit value rescaled and normalised as the reference would."""
    # opts lives for one call: each table is built once per call, not once per image (a race
    # between worker threads only builds an identical table twice).
    tables = opts.setdefault("_tables", {})
    if channels not in tables:
        values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], channels, axis=1)
        tables[channels] = np.ascontiguousarray(_rescale_and_normalize(values, opts).T)
    return tables[channels]


def _finish(array: np.ndarray, opts: dict[str, Any], out: np.ndarray | None = None) -> np.ndarray:
    """Rescale + normalize a channels-last array into a channels-first one (into ``out`` if given)."""
    if array.dtype == np.uint8 and (opts["do_rescale"] or opts["do_normalize"]):
        table = _lookup_table(opts, array.shape[-1])
        if out is None:
            out = np.empty((array.shape[-1],) + array.shape[:2], dtype=np.float32)
        for channel in range(array.shape[-1]):
            # "wrap" never has to adjust an 8-bit index into 256 entries, and is cheaper than "clip"
            np.take(table[channel], array[..., channel], out=out[channel], mode="wrap")
        return out
    result = np.moveaxis(_rescale_and_normalize(array, opts), -1, 0)
    if out is None:
        return np.ascontiguousarray(result)
    out[...] = result
    return out


def _output_dtype(array: np.ndarray, opts: dict[str, Any]) -> np.dtype:
    if opts["do_rescale"]:
        return np.dtype(np.float32)
    if opts["do_normalize"]:
        return array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float32)
    return array.dtype


def _pad(array: np.ndarray, size: dict[str, int]) -> np.ndarray:
    if not (size.get("height") and size.get("width")):
        raise InputError(f"pad_size must be {{'height': h, 'width': w}}, got {size}.")
    rows, cols = array.shape[-2:]
    extra_rows, extra_cols = size["height"] - rows, size["width"] - cols
    if extra_rows < 0 or extra_cols < 0:
        raise InputError(
            f"pad_size {size} is smaller than a processed image ({rows}x{cols}); pad_size must be at least "
            f"the image size."
        )
    return np.pad(array, ((0, 0), (0, extra_rows), (0, extra_cols)), mode="constant", constant_values=0)


_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _executor(size: int) -> ThreadPoolExecutor:
    """The shared image threads, started on first use and replaced when the budget changes."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != size:
            # No shutdown of the old pool: a concurrent call may still be submitting to it. Its
            # threads exit by themselves once nothing refers to it any more.
            _pool, _pool_size = ThreadPoolExecutor(size, thread_name_prefix="leanformers-image"), size
        return _pool


def _loaded_twice_lazily(images: list[Any]) -> bool:
    """Whether one PIL image that has not read its file yet occurs twice in ``images``: two
    threads must not load it at once (Pillow's lazy loading shares one file handle)."""
    seen = set()
    for image in images:
        if isinstance(image, PIL.Image.Image) and getattr(image, "tile", None):
            if id(image) in seen:
                return True
            seen.add(id(image))
    return False


def _map(function: Callable[[Any], Any], items: Sequence[Any], budget: int) -> list[Any]:
    """``function`` over ``items``, in order, on up to ``budget`` of the shared image threads; the
    lowest-index failure is raised, as a sequential loop would."""
    if budget <= 1 or len(items) < 2:
        return [function(item) for item in items]
    return list(_executor(budget).map(function, items))


def canonical_class_name(name: str) -> str:
    """The class a config names, as the reference resolves it: ``...FeatureExtractor`` ->
    ``...ImageProcessor``; the ``Fast`` / ``Pil`` backend suffixes dropped."""
    name = name.replace("FeatureExtractor", "ImageProcessor")
    for suffix in ("Fast", "Pil"):
        if name.endswith(suffix) and registry.image_processor_profile(name) is not None:
            return name[: -len(suffix)]
    return name



class ImageProcessor(Preprocessor):
    """Images -> ``BatchFeature(pixel_values=...)``, configured like one of the reference's image
    processor classes (``class_name``, e.g. ``"ViTImageProcessor"``). Settings are attributes, and
    any of them can be overridden for one call: ``processor(images, size=384, return_tensors="pt")``."""

    model_input_names: ClassVar[list[str]] = ["pixel_values"]
    bundle_keys = ("image_processor",)
    kind = "image processor"
    type_keys = ("image_processor_type", "feature_extractor_type")
    default_tables = ("DEFAULT_IMAGE_PROCESSOR",)
    auto_map_keys = ("AutoImageProcessor", "AutoFeatureExtractor")
    filename_option = "image_processor_filename"
    profiles = PROFILES
    class_table = "IMAGE_PROCESSORS"
    backend = "pil"

    def __init__(self, class_name: str, **settings: Any) -> None:
        class_name = canonical_class_name(class_name)
        self._profile = self._profile_of(class_name)
        values = {key: None for key in SETTING_KEYS if key != "default_to_square"}
        values.update(copy.deepcopy(self._profile.defaults))
        values.update(settings)
        _standardize(values, self._profile.default_to_square, f"the {class_name} settings", ConfigError)
        self._set_settings(class_name, values)

    def __getattr__(self, name: str) -> Any:
        # default_to_square is a class-level rule unless a config sets it
        if name == "default_to_square" and "_profile" in self.__dict__:
            return self.__dict__["_profile"].default_to_square
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    @classmethod
    def _class_name_from(cls, data: Mapping[str, Any], source: Any, where: str, config: Any) -> str:
        return canonical_class_name(super()._class_name_from(data, source, where, config))

    @classmethod
    def _known(cls, name: str) -> bool:
        return canonical_class_name(name) in registry.IMAGE_PROCESSORS

    @classmethod
    def _supported_names(cls) -> str:
        return ", ".join(sorted({canonical_class_name(name) for name in registry.IMAGE_PROCESSORS}))

    @classmethod
    def _settable(cls, class_name: str) -> tuple[str, ...]:
        return SETTING_KEYS + cls._profile_of(canonical_class_name(class_name)).extra_keys

    def _saves(self, key: str, value: Any) -> bool:
        # An unset setting is left out, unless it overrides a class default.
        default = self._profile.default_to_square if key == "default_to_square" else self._profile.defaults.get(key)
        return value is not None or default is not None

    # -- processing ------------------------------------------------------------------------

    def _call_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        allowed = self._settable(self._class_name)
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise InputError(
                f"{self._class_name} got unexpected argument(s) {', '.join(map(repr, unknown))}. "
                f"It accepts: {', '.join(allowed)}."
            )
        opts = {key: kwargs[key] if key in kwargs else getattr(self, key, None) for key in allowed}
        _standardize(opts, self._profile.default_to_square, "this call", InputError)
        opts["return_tensors"] = tensor_type_name(opts["return_tensors"])
        if opts["do_rescale"] and opts["rescale_factor"] is None:
            raise InputError("do_rescale=True needs a rescale_factor (usually 1/255).")
        if opts["do_normalize"] and (opts["image_mean"] is None or opts["image_std"] is None):
            raise InputError("do_normalize=True needs both image_mean and image_std.")
        if opts["do_resize"] and (opts["size"] is None or opts["resample"] is None):
            raise InputError("do_resize=True needs a size and a resample filter.")
        if opts["do_pad"] and opts["pad_size"] is None:
            raise InputError("do_pad=True needs a pad_size, e.g. {'height': 224, 'width': 224}.")
        if opts["do_center_crop"] and not {"height", "width"} <= set(opts["crop_size"] or ()):
            raise InputError(
                f"do_center_crop=True needs a crop_size {{'height': h, 'width': w}}, got {opts['crop_size']}."
            )
        if opts["do_resize"] and self._profile.resize_rule == "crop_pct":
            if not opts["size"].get("shortest_edge"):
                raise InputError(
                    f"{self._class_name} resizes by {{'shortest_edge': n}} (with crop_pct), got size={opts['size']}."
                )
            if opts["size"]["shortest_edge"] < 384 and opts.get("crop_pct") is None:
                raise InputError(f"{self._class_name} needs crop_pct (e.g. 0.875) to resize below 384 pixels.")
        return opts

    def _resize(
        self, image: PIL.Image.Image | np.ndarray, opts: dict[str, Any], crop: tuple[int, int] | None
    ) -> np.ndarray:
        """The resized image, center-cropped to ``crop`` (height, width) when given."""
        height, width = (image.height, image.width) if isinstance(image, PIL.Image.Image) else image.shape[:2]
        size, resample = opts["size"], int(opts["resample"])
        if self._profile.resize_rule == "crop_pct":
            edge = size["shortest_edge"]
            if edge >= 384:
                return resize_and_crop(image, edge, edge, resample, crop)
            target = _shortest_edge_size(height, width, int(edge / opts["crop_pct"]))
            pixels = resize_and_crop(image, *target, resample, (edge, edge))
            return center_crop(pixels, *crop) if crop is not None else pixels
        return resize_and_crop(image, *resize_output_size(height, width, size), resample, crop)

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> BatchFeature:
        """Process an image or a batch (PIL images, arrays, tensors, file paths, or lists of them)."""
        if args:
            raise InputError(
                f"{self._class_name} takes the images positionally and every setting by keyword, "
                f"e.g. processor(images, return_tensors='pt')."
            )
        opts = self._call_options(kwargs)
        mean = opts["image_mean"]
        wants_rgb = bool(opts["do_normalize"]) and isinstance(mean, tuple) and len(mean) == 3
        input_format = _channel_format(opts["input_data_format"])
        crop = (opts["crop_size"]["height"], opts["crop_size"]["width"]) if opts["do_center_crop"] else None

        def prepare(image: Any) -> np.ndarray:
            pixels = prepare_image(image, opts["do_convert_rgb"], wants_rgb, input_format)
            if opts["do_resize"]:
                return self._resize(pixels, opts, crop)
            pixels = _as_array(pixels)
            return center_crop(pixels, *crop) if crop is not None else pixels

        flat = flatten_images(images)
        budget = threads.num_threads() if len(flat) > 1 and not _loaded_twice_lazily(flat) else 1
        cropped = _map(prepare, flat, budget)
        if not opts["do_pad"] and len({(p.shape, _output_dtype(p, opts)) for p in cropped}) == 1:
            # One size: every image is written straight into the batch array.
            height, width, channels = cropped[0].shape
            batch = np.empty((len(cropped), channels, height, width), dtype=_output_dtype(cropped[0], opts))
            _map(lambda index: _finish(cropped[index], opts, out=batch[index]), range(len(cropped)), budget)
            pixel_values: Any = batch if opts["return_tensors"] else list(batch)
        else:
            pixel_values = [_finish(pixels, opts) for pixels in cropped]
            if opts["do_pad"]:
                pixel_values = [_pad(values, opts["pad_size"]) for values in pixel_values]
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=opts["return_tensors"])

    preprocess = __call__


# ``AutoImageProcessor.from_pretrained`` lands here; ``use_fast`` and ``backend`` are accepted and
# ignored: one engine serves both of the reference's backends.
load_image_processor = ImageProcessor.from_pretrained

__all__ = ["PROFILES", "BatchFeature", "ImageProcessor", "Profile", "load_image_processor"]
