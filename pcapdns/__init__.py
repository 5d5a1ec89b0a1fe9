"""pcapdns: diagnose Kubernetes DNS failures from packet captures."""

__version__ = "0.1.0"
