"""rnnchat's optional compiled parts: the int8 kernel (rnnchat/engine/_int8.c), the fixed-order
fp32 head (rnnchat/engine/_dense.c) and the several-row sampler (rnnchat/engine/_sample.c), which
share rnnchat/engine/_cbuf.h.

Everything else is configured in pyproject.toml. Where the C compiler is missing, an extension
is skipped (``optional``) and rnnchat does the same work in torch (fbgemm's int8 op) or NumPy.
"""

import sys

import numpy
from setuptools import Extension, setup

args = ["-O3", "-ffp-contract=off", "-pthread"] if sys.platform != "win32" else []


def extension(name: str) -> Extension:
    return Extension(f"rnnchat.engine.{name}", [f"rnnchat/engine/{name}.c"], include_dirs=[numpy.get_include()],
                     depends=["rnnchat/engine/_cbuf.h"], extra_compile_args=args,
                     extra_link_args=["-pthread"] if args else [], optional=True)


setup(ext_modules=[extension("_int8"), extension("_dense"), extension("_sample")])
