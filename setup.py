"""The one compiled part: traceview.ingest._btree, the native page reader. It is optional: without
a C compiler the install still succeeds and the readers fall back to connectorx and sqlite3."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("traceview.ingest._btree", ["traceview/ingest/_btree.c"],
                             extra_compile_args=["-O2"], optional=True)])
