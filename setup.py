"""Only the optional compiled scanner is declared here; the metadata lives in setup.cfg.

``optional=True``: without a C compiler (or Python headers) the build goes on
without it and svcinspect uses its pure-Python scanner, with the same output.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("svcinspect.dataplane.iptables._scan", ["svcinspect/dataplane/iptables/_scan.c"], optional=True)])
