"""The three compiled pieces: Pillow-exact resampling passes (processing/_resample.c), the packed
attention kernel (modeling/_attention.c) and linear layers over MKL's packed sgemm
(modeling/_linear.c).

All are optional: where they cannot be built, the package installs without them, resizes with
Pillow alone (the same pixels), attends with torch's SDPA and runs linears through oneDNN (the same
numbers to float rounding), more slowly."""

from setuptools import Extension, setup


def modeling_extension(name: str) -> Extension:
    """A kernel of modeling/: it finds torch's libraries at run time (libdl) and shares _native.h."""
    return Extension(
        f"leanformers.modeling.{name}",
        [f"src/leanformers/modeling/{name}.c"],
        depends=["src/leanformers/modeling/_native.h"],
        extra_compile_args=["-O3", "-std=gnu11"],
        libraries=["dl"],
        optional=True,
    )


setup(
    ext_modules=[
        Extension(
            "leanformers.processing._resample",
            ["src/leanformers/processing/_resample.c"],
            extra_compile_args=["-O3", "-std=gnu11"],
            optional=True,
        ),
        modeling_extension("_attention"),
        modeling_extension("_linear"),
    ]
)
