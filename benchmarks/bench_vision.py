"""Image preprocessing: 32 photo-like 640x480 images to 224x224 tensors, leanformers against the
reference's PIL path, same inputs, one process. Also timed: leanformers with the native resampler
off (Pillow's passes, the previous default).

    .venv/bin/python benchmarks/bench_vision.py [--repeat N]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time

import numpy as np
from PIL import Image

SETTINGS = {
    "vit": ({"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224},
             "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "resample": 2, "do_normalize": True, "do_resize": True},
            "ViTImageProcessorPil"),
    "convnext (resnet-50)": ({"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224},
                              "crop_pct": 0.875, "resample": 3, "do_normalize": True, "do_resize": True,
                              "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
                             "ConvNextImageProcessorPil"),
    "clip": ({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
              "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "resample": 3},
             "CLIPImageProcessorPil"),
}


def photos(n: int) -> list[Image.Image]:
    """Smooth gradients plus sensor-like noise: resampling cost as for real photos."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    images = []
    for i in range(n):
        base = np.stack([(x + 7 * i) % 256, (y + 3 * i) % 256, ((x + y) // 2 + i) % 256], axis=-1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(noisy, "RGB"))
    return images


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import torch
    import transformers

    from leanformers import threads
    from leanformers.processing import resample
    from leanformers.processing.image import ImageProcessor

    images = photos(32)
    budget = threads.num_threads()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch threads {torch.get_num_threads()}, leanformers thread budget {budget}")
    print(f"| processor | leanformers ({budget} threads) | leanformers (1 thread) | reference (PIL path) "
          f"| speed-up ({budget} threads) | speed-up (1 thread) | speed-up, Pillow engine ({budget} threads) "
          "| max abs diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (settings, ref_class) in SETTINGS.items():
        ours = ImageProcessor.from_dict(dict(settings))
        ref = getattr(transformers, ref_class)(**{k: v for k, v in settings.items() if k != "image_processor_type"})
        a = ours(images, return_tensors="pt")["pixel_values"]
        b = ref(images, return_tensors="pt")["pixel_values"]
        diff = (a - b).abs().max().item()
        threads.set_num_threads(1)
        one = ours(images, return_tensors="pt")["pixel_values"]
        diff = max(diff, (one - b).abs().max().item())
        threads.set_num_threads(None)
        # Interleaved rounds, best of each: a slow moment of the (shared) machine hits every variant.
        runs = {"many": [], "one": [], "pillow": [], "ref": []}
        for _ in range(args.repeat):
            runs["many"].append(best(functools.partial(ours, images, return_tensors="pt"), 1))
            threads.set_num_threads(1)
            runs["one"].append(best(functools.partial(ours, images, return_tensors="pt"), 1))
            threads.set_num_threads(None)
            # The previous default: Pillow's own passes, cropped through its box where exact.
            native, resample.NATIVE = resample.NATIVE, False
            runs["pillow"].append(best(functools.partial(ours, images, return_tensors="pt"), 1))
            resample.NATIVE = native
            runs["ref"].append(best(functools.partial(ref, images, return_tensors="pt"), 1))
        many_s, one_s, pillow_s, ref_s = (min(runs[key]) for key in ("many", "one", "pillow", "ref"))
        n = len(images)
        print(f"| {name} | {n / many_s:.0f} img/s | {n / one_s:.0f} img/s | {n / ref_s:.0f} img/s | "
              f"{ref_s / many_s:.2f}x | {ref_s / one_s:.2f}x | {ref_s / pillow_s:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
