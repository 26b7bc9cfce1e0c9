"""svcinspect: explain how a Kubernetes node routes Service traffic.

Pipeline: sources -> parse -> model -> analysis -> render. Only ``sources`` and
``cli`` touch files, processes, the kernel or the API server.
"""

__version__ = "0.1.0"
