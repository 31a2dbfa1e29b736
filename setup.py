"""The one compiled piece: Pillow-exact resampling passes (processing/_resample.c).

It is optional: where it cannot be built, the package installs without it and resizes with Pillow
alone (the same pixels, more slowly)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "leanformers.processing._resample",
            ["src/leanformers/processing/_resample.c"],
            extra_compile_args=["-O3", "-std=gnu11"],
            optional=True,
        ),
    ]
)
