"""CoreDNS query logs beside a capture (``--coredns-log``).

``parse`` reads what ``kubectl logs`` prints for a CoreDNS pod (the ``log`` plugin's
default format, other plugins' lines mixed in, with or without ``--timestamps``) into
frozen records; ``join`` ties each logged query to the capture's lookups. docs/analysis.md
("CoreDNS query logs") defines the format read, the join rules and every figure.
"""
