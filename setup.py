"""The two compiled pieces: Pillow-exact resampling passes (processing/_resample.c) and the packed
attention kernel (modeling/_attention.c).

Both are optional: where they cannot be built, the package installs without them, resizes with
Pillow alone (the same pixels) and attends with torch's SDPA (the same numbers to float rounding),
more slowly."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "leanformers.processing._resample",
            ["src/leanformers/processing/_resample.c"],
            extra_compile_args=["-O3", "-std=gnu11"],
            optional=True,
        ),
        Extension(
            "leanformers.modeling._attention",
            ["src/leanformers/modeling/_attention.c"],
            extra_compile_args=["-O3", "-std=gnu11"],
            libraries=["dl"],
            optional=True,
        ),
    ]
)
