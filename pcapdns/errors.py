"""The errors pcapdns raises.

Two families, kept apart on purpose:

* ``InputError`` and its subclasses mean the input cannot be used at all (missing file,
  not a capture, unsupported link type); ``CoreError`` means the compiled core hit a bug on
  it. The CLI turns them into one line on stderr and exit status 2.
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


class CoreError(PcapdnsError):
    """The compiled core stopped on a bug (a Rust panic) while reading these inputs. The
    analysis cannot go on; the message names the inputs so the capture can be reported."""

    def __init__(self, paths: list[str], problem: str) -> None:
        names = ", ".join(paths) if paths else "(no input)"
        super().__init__(f"{names}: internal error in the capture engine ({problem}); "
                         "please report it with the capture")
        self.paths = paths
        self.problem = problem


class DecodeError(PcapdnsError):
    """A frame or message did not decode."""


class Truncated(DecodeError):
    """The bytes end before the structure they announce."""


class Malformed(DecodeError):
    """The bytes are present but do not form a valid structure."""
