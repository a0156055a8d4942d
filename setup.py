"""The one compiled part of rnnchat: an optional int8 kernel (rnnchat/engine/_int8.c).

Everything else is configured in pyproject.toml. Where the C compiler or the CPU is missing,
the extension is skipped (``optional``) and rnnchat uses fbgemm's int8 op instead.
"""

import sys

import numpy
from setuptools import Extension, setup

args = ["-O3", "-ffp-contract=off", "-pthread"] if sys.platform != "win32" else []
setup(ext_modules=[Extension("rnnchat.engine._int8", ["rnnchat/engine/_int8.c"], include_dirs=[numpy.get_include()],
                             extra_compile_args=args, extra_link_args=["-pthread"] if args else [], optional=True)])
