"""The three compiled pieces: Pillow-exact resampling passes (processing/_resample.c), the packed
attention kernel (modeling/_attention.c) and linear layers over MKL's packed sgemm
(modeling/_linear.c).

All are optional: where they cannot be built, the package installs without them, resizes with
Pillow alone (the same pixels), attends with torch's SDPA and runs linears through oneDNN (the same
numbers to float rounding), more slowly."""

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
            depends=["src/leanformers/modeling/_native.h"],
            extra_compile_args=["-O3", "-std=gnu11"],
            libraries=["dl"],
            optional=True,
        ),
        Extension(
            "leanformers.modeling._linear",
            ["src/leanformers/modeling/_linear.c"],
            depends=["src/leanformers/modeling/_native.h"],
            extra_compile_args=["-O3", "-std=gnu11"],
            libraries=["dl"],
            optional=True,
        ),
    ]
)
