"""Only the optional compiled parts are declared here; the metadata lives in setup.cfg.

``optional=True``: without a C compiler (or Python headers) the build goes on
without them and svcinspect uses its pure-Python code, with the same output:
the scanner (``_scan``: the parser's and the service analysis' passes) and the
edge pass (``_edges``: the chain graph's jumps, for ``check``).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("svcinspect.dataplane.iptables._scan", ["svcinspect/dataplane/iptables/_scan.c",
                                                         "svcinspect/dataplane/iptables/_rawscan.c"],
              depends=["svcinspect/dataplane/iptables/_scan_shared.h"], optional=True),
    Extension("svcinspect.dataplane.iptables._edges", ["svcinspect/dataplane/iptables/_edges.c"], optional=True),
])
