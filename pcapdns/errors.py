"""The errors pcapdns raises.

Two families, kept apart on purpose:

* ``InputError`` and its subclasses mean the input cannot be used at all (missing file,
  not a capture, unsupported link type). The CLI turns them into one line on stderr and
  exit status 2.
* ``DecodeError`` and its subclasses mean one frame or one message did not decode. They
  never leave the decoder: the pipeline counts them with the frame number and goes on.
"""


class PcapdnsError(Exception):
    """Base of every error pcapdns raises on purpose."""


class InputError(PcapdnsError):
    """The input cannot be analyzed."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class NotACaptureError(InputError):
    """The file is neither pcap nor pcapng (nor a gzip of either)."""


class UnsupportedLinkTypeError(InputError):
    """The capture's link type is not one pcapdns decodes."""


class DecodeError(PcapdnsError):
    """A frame or message did not decode."""


class Truncated(DecodeError):
    """The bytes end before the structure they announce."""


class Malformed(DecodeError):
    """The bytes are present but do not form a valid structure."""
