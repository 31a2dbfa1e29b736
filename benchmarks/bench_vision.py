"""Image preprocessing: 32 photo-like 640x480 PIL images to 224x224 tensors, leanformers'
``AutoImageProcessor`` against the reference's PIL-backend processor with the same settings, one process.

    .venv/bin/python benchmarks/bench_vision.py [--repeat N]

Three processors' settings (ViT, ConvNeXt as resnet-50 uses it, CLIP), each written once as a
``preprocessor_config.json`` under benchmarks/.cache/ and loaded with
``leanformers.AutoImageProcessor.from_pretrained``; the reference is its ``*ImageProcessorPil`` class
built from the same settings. leanformers runs with its thread budget (``leanformers.num_threads()``)
and with one thread (``leanformers.set_num_threads(1)``). Interleaved rounds, best of each; the
largest difference of the pixel values from the reference's is printed too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SETTINGS = {
    "vit": (common.VIT_PROCESSOR, "ViTImageProcessorPil"),
    "convnext (resnet-50)": ({"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224},
                              "crop_pct": 0.875, "resample": 3, "do_normalize": True, "do_resize": True,
                              "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
                             "ConvNextImageProcessorPil"),
    "clip": ({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
              "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "resample": 3},
             "CLIPImageProcessorPil"),
}


def on_one_thread(processor, images) -> None:
    import leanformers

    leanformers.set_num_threads(1)
    try:
        processor(images, return_tensors="pt")
    finally:
        leanformers.set_num_threads(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import transformers

    import leanformers

    images = common.photos(32)
    budget = leanformers.num_threads()
    print(common.machine_line() + f"; leanformers thread budget {budget}")
    print(f"| processor | leanformers ({budget} threads) | leanformers (1 thread) | reference (PIL path) "
          f"| speed-up ({budget} threads) | speed-up (1 thread) | max abs diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (settings, ref_class) in SETTINGS.items():
        folder = common.processor_dir(f"processor-{name.split()[0]}", settings)
        ours = leanformers.AutoImageProcessor.from_pretrained(folder)
        ref = getattr(transformers, ref_class)(**{k: v for k, v in settings.items() if k != "image_processor_type"})
        expected = ref(images, return_tensors="pt")["pixel_values"]
        diff = (ours(images, return_tensors="pt")["pixel_values"] - expected).abs().max().item()
        leanformers.set_num_threads(1)
        diff = max(diff, (ours(images, return_tensors="pt")["pixel_values"] - expected).abs().max().item())
        leanformers.set_num_threads(None)
        variants = {"many": common.stopwatch(ours, images, return_tensors="pt"),
                    "one": common.stopwatch(on_one_thread, ours, images),
                    "ref": common.stopwatch(ref, images, return_tensors="pt")}
        runs = common.interleaved(variants, rounds=args.repeat, warmup=0)
        many_s, one_s, ref_s = (min(runs[key]) for key in ("many", "one", "ref"))
        n = len(images)
        print(f"| {name} | {n / many_s:.0f} img/s | {n / one_s:.0f} img/s | {n / ref_s:.0f} img/s | "
              f"{ref_s / many_s:.2f}x | {ref_s / one_s:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
