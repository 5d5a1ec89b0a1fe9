"""The command line: parse options, call the library, render, map errors to exit codes.

Exit status: 0 analyzed (damaged input is analyzed as far as it goes, with a warning),
2 unusable input, bad usage or an output that cannot be written, 1 when the reader of
stdout went away, 130 interrupted.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol, TextIO, TypeVar

import click

from pcapdns import __version__
from pcapdns.analysis import Analysis, input_files
from pcapdns.analysis import analyze as run_analysis
from pcapdns.config import AnalysisConfig
from pcapdns.coredns_log.index import LogIndex
from pcapdns.errors import PcapdnsError
from pcapdns.output import outfile
from pcapdns.pods import PodDirectory


class _Warns(Protocol):
    @property
    def warnings(self) -> Sequence[str]: ...


_R = TypeVar("_R", bound=_Warns)
_T = TypeVar("_T")


class _Bar:
    """Progress on stderr when stderr is a terminal: bytes read of the total."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = -1
        #: True while a bar is drawn and its line not yet ended.
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        pct = min(100, done * 100 // total)
        if pct == self._last:
            return
        self._last = pct
        width = 30
        filled = width * pct // 100
        # Marked drawn before it shows: Ctrl-C may land as soon as the text is out.
        self.drawn = True
        sys.stderr.write(
            f"\rreading [{'#' * filled}{'.' * (width - filled)}] {pct:3d}% "
            f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
        )
        if pct == 100:
            sys.stderr.write("\r" + " " * 70 + "\r")
        sys.stderr.flush()
        self.drawn = pct < 100

    def end_line(self) -> None:
        """End the bar's line, so that a message (Ctrl-C's) starts on a line of its own."""
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False


def _fail(message: str, status: int = 2) -> NoReturn:
    """One line on stderr, then exit."""
    click.echo(f"pcapdns: {message}", err=True)
    sys.exit(status)


def _write_output(path: str | None, write: Callable[[TextIO], object]) -> None:
    """Every output goes through here: stdout for None or "-", else the file, written as
    ``pcapdns.output.outfile`` says (in place for a device or FIFO, atomically for a
    regular file). A failure is one line and exit status 2."""
    if path is None or path == "-":
        try:
            write(sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (| head): stop quietly, as other command-line tools do.
            _drop_stdout()
            sys.exit(1)
        except OSError as e:
            _drop_stdout()
            _fail(f"stdout: cannot write: {e.strerror or e}")
        except KeyboardInterrupt:
            _drop_stdout()
            _fail("interrupted", 130)
        return
    try:
        outfile.write(path, write)
    except OSError as e:
        _fail(f"{path}: cannot write: {e.strerror or e}")
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the text still buffered for it is not written
    again, and fails again, as the interpreter exits."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pcapdns")
def main() -> None:
    """Diagnose DNS failures (Kubernetes and elsewhere) from packet captures."""


def _analysis_options(f: Callable[..., None]) -> Callable[..., None]:
    """The options that shape an analysis, shared by ``analyze`` and ``report``."""
    options = [
        click.option("--port", "ports", type=click.IntRange(1, 65535), multiple=True,
                     help="A port that carries DNS (repeatable). Default: 53."),
        click.option("--timeout", type=click.FloatRange(0, min_open=True), default=5.0,
                     show_default=True,
                     help="Seconds before the capture's end a failed lookup's last attempt "
                          "must be to count as a timeout."),
        click.option("--slow", type=click.FloatRange(0, min_open=True), default=1.0,
                     show_default=True,
                     help="Seconds after which an answered lookup is slow."),
        click.option("--max-wait", type=click.FloatRange(12, None), default=30.0,
                     show_default=True,
                     help="Seconds a query waits for its response; later responses are "
                          "unsolicited."),
        click.option("--coredns-log", "coredns_logs", metavar="FILE", multiple=True,
                     help="A CoreDNS query log (kubectl logs of a CoreDNS pod, with or "
                          "without --timestamps) to join to the lookups (repeatable)."),
        click.option("--pods", "pods_files", metavar="FILE", multiple=True,
                     help="kubectl get pods -A -o json (or -o wide) output, or a Services "
                          "list (kubectl get svc -A): show namespace/pod beside addresses "
                          "(repeatable)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _config(ports: tuple[int, ...], timeout: float, slow: float,
            max_wait: float) -> AnalysisConfig:
    return AnalysisConfig(
        ports=frozenset(ports) if ports else frozenset({53}),
        timeout=timeout,
        slow=slow,
        max_wait=max_wait,
    )


def _load_logs(coredns_logs: tuple[str, ...]) -> LogIndex | None:
    """The CoreDNS logs given, read into one index (None without any); a log that cannot
    be read is one line and exit status 2."""
    from pcapdns.coredns_log import index

    return _load_inputs(coredns_logs, index.load)


def _load_pods(pods_files: tuple[str, ...]) -> PodDirectory | None:
    """The pods listings given, read into one directory (None without any); a file that
    cannot be read or parsed is one line and exit status 2."""
    from pcapdns import pods

    return _load_inputs(pods_files, pods.load)


def _load_inputs(files: tuple[str, ...], load: Callable[[list[str]], _T]) -> _T | None:
    """``load(files)``, None without files; its errors are one line and an exit status."""
    if not files:
        return None
    try:
        return load(list(files))
    except PcapdnsError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _run(paths: tuple[str, ...], config: AnalysisConfig, keep_lookups: bool,
         coredns_logs: tuple[str, ...] = (), pods_files: tuple[str, ...] = ()) -> Analysis:
    """Analyze, turning the library's errors into one line and an exit status."""
    log = _load_logs(coredns_logs)
    directory = _load_pods(pods_files)
    result = _with_progress(lambda bar: run_analysis(
        list(paths), config, keep_lookups=keep_lookups, progress=bar, coredns_log=log,
        pods=directory))
    if result.pods is not None and result.pods_source != "--pods":
        click.echo(f"pcapdns: pod names from the listing saved with the capture "
                   f"({', '.join(result.pods.files)})", err=True)
    return result


def _with_progress(work: Callable[[_Bar], _R]) -> _R:
    """Run ``work`` with a progress bar, turning the library's errors into one line and an
    exit status, and print the result's warnings on stderr."""
    bar = _Bar()
    try:
        result = work(bar)
    except PcapdnsError as e:
        bar.end_line()
        _fail(str(e))
    except KeyboardInterrupt:
        bar.end_line()
        _fail("interrupted", 130)
    for w in result.warnings:
        click.echo(f"pcapdns: warning: {w}", err=True)
    return result


def _write_html(result: Analysis, path: str) -> None:
    from pcapdns.report import html, model

    try:
        page = html.render(model.build(result, command=_command_line()))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    _write_output(path, lambda fh: fh.write(page))


def _command_line() -> str:
    """The command as the user typed it, quoted so it can be pasted back into a shell."""
    return shlex.join(["pcapdns", *sys.argv[1:]])


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Output format: a short summary for people, or the JSON document.",
)
@click.option("--output", "-o", "output", metavar="FILE",
              help="Write the output to FILE instead of stdout (\"-\").")
@_analysis_options
@click.option("--transactions", is_flag=True,
              help="Include every transaction in the JSON document (needs --format json).")
@click.option("--html", "html_path", metavar="FILE",
              help="Also write the HTML report to FILE (\"-\" for stdout, with --output "
                   "FILE).")
def analyze(
    paths: tuple[str, ...],
    fmt: str,
    output: str | None,
    ports: tuple[int, ...],
    timeout: float,
    slow: float,
    max_wait: float,
    coredns_logs: tuple[str, ...],
    pods_files: tuple[str, ...],
    transactions: bool,
    html_path: str | None,
) -> None:
    """Analyze one capture: pcap/pcapng files (gzip too), several files of a ring, or a
    directory of them."""
    from pcapdns.output import document, text

    if transactions and fmt != "json":
        # Only the JSON document lists transactions; ignoring the flag would hide that.
        _fail("--transactions needs --format json")
    config = _config(ports, timeout, slow, max_wait)
    # Without --output the summary or document goes to stdout, as with "-o -".
    _check_outputs(paths, ("--output", output or "-"), ("--html", html_path),
                   logs=coredns_logs + pods_files)
    result = _run(paths, config, transactions, coredns_logs, pods_files)
    if html_path is not None:
        _write_html(result, html_path)
    if fmt == "json":
        _write_output(output, lambda fh: document.write(result, fh))
    else:
        summary = text.render(result)
        _write_output(output, lambda fh: print(summary, end="", file=fh))


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--output", "-o", "output", metavar="FILE", required=True,
              help="Where to write the HTML report (\"-\" for stdout).")
@click.option("--json", "json_path", metavar="FILE",
              help="Also write the JSON document (as analyze --format json) to FILE "
                   "(\"-\" for stdout).")
@_analysis_options
def report(
    paths: tuple[str, ...],
    output: str,
    json_path: str | None,
    ports: tuple[int, ...],
    timeout: float,
    slow: float,
    max_wait: float,
    coredns_logs: tuple[str, ...],
    pods_files: tuple[str, ...],
) -> None:
    """Write one self-contained HTML report for a capture (files, a ring or a directory),
    to attach to a ticket."""
    from pcapdns.output import document

    config = _config(ports, timeout, slow, max_wait)
    _check_outputs(paths, ("--output", output), ("--json", json_path),
                   logs=coredns_logs + pods_files)
    result = _run(paths, config, False, coredns_logs, pods_files)
    _write_html(result, output)
    if json_path is not None:
        _write_output(json_path, lambda fh: document.write(result, fh))
    click.echo(f"pcapdns: report written to {'stdout' if output == '-' else output}", err=True)


@main.command()
@click.option("--client", "client_paths", metavar="PATH", multiple=True, required=True,
              help="The capture from the client's node (files, a ring or a directory; "
                   "repeatable).")
@click.option("--server", "server_paths", metavar="PATH", multiple=True, required=True,
              help="The capture from the DNS server's (CoreDNS) node, made at the same time "
                   "(repeatable).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Output format: a short summary for people, or the JSON document.",
)
@click.option("--output", "-o", "output", metavar="FILE",
              help="Write the output to FILE instead of stdout (\"-\").")
@click.option("--html", "html_path", metavar="FILE",
              help="Also write the HTML report of the correlation to FILE (\"-\" for "
                   "stdout, with --output FILE).")
@click.option("--port", "ports", type=click.IntRange(1, 65535), multiple=True,
              help="A port that carries DNS (repeatable). Default: 53.")
@click.option("--match-window", type=click.FloatRange(0, 5, min_open=True), default=0.5,
              show_default=True,
              help="Seconds between a client query and the server's copy of it (after the "
                   "clock offset) within which the two are one query.")
@click.option("--coredns-log", "coredns_logs", metavar="FILE", multiple=True,
              help="A query log of the CoreDNS pod(s) on the server's side (kubectl logs, "
                   "with or without --timestamps), joined to the server capture's queries "
                   "(repeatable).")
@click.option("--pods", "pods_files", metavar="FILE", multiple=True,
              help="kubectl get pods -A -o json (or -o wide) output, or a Services list "
                   "(kubectl get svc -A): show namespace/pod beside addresses (repeatable).")
def correlate(
    client_paths: tuple[str, ...],
    server_paths: tuple[str, ...],
    fmt: str,
    output: str | None,
    html_path: str | None,
    ports: tuple[int, ...],
    match_window: float,
    coredns_logs: tuple[str, ...],
    pods_files: tuple[str, ...],
) -> None:
    """Compare a capture from the client's node with one from the DNS server's node, made
    at the same time: where was each unanswered lookup lost?"""
    from pcapdns import correlate as correlation
    from pcapdns.correlate import document, text
    from pcapdns.correlate.records import CorrelateConfig

    _check_outputs(client_paths + server_paths, ("--output", output or "-"),
                   ("--html", html_path), logs=coredns_logs + pods_files)
    config = AnalysisConfig(ports=frozenset(ports) if ports else frozenset({53}))
    log = _load_logs(coredns_logs)
    directory = _load_pods(pods_files)
    result = _with_progress(lambda bar: correlation.correlate(
        list(client_paths), list(server_paths), config,
        CorrelateConfig(match_window=match_window), progress=bar, coredns_log=log,
        pods=directory))
    if html_path is not None:
        from pcapdns.correlate import html

        page = html.render(result, command=_command_line())
        _write_output(html_path, lambda fh: fh.write(page))
    if fmt == "json":
        _write_output(output, lambda fh: document.write(result, fh))
    else:
        summary = text.render(result)
        _write_output(output, lambda fh: print(summary, end="", file=fh))


@main.command()
@click.argument("docs", nargs=-1, required=True, metavar="DOC.json...")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Output format: a short summary for people, or the cluster document "
         "(pcapdns.cluster/1).",
)
@click.option("--output", "-o", "output", metavar="FILE",
              help="Write the output to FILE instead of stdout (\"-\").")
@click.option("--html", "html_path", metavar="FILE",
              help="Also write the HTML cluster report to FILE (\"-\" for stdout, with "
                   "--output FILE).")
def merge(docs: tuple[str, ...], fmt: str, output: str | None, html_path: str | None) -> None:
    """Join the per-node analysis documents (analyze --format json, or the capture agent's
    --analyze) into one view of the cluster: per node, CoreDNS replica and client, the top
    failing names, and the windows in which several nodes failed at once."""
    from pcapdns import merge as merging
    from pcapdns.merge import document, text

    _check_outputs(docs, ("--output", output or "-"), ("--html", html_path), plain=True)
    try:
        result = merging.merge(list(docs))
    except PcapdnsError as e:
        _fail(str(e))
    for w in result.warnings:
        click.echo(f"pcapdns: warning: {w}", err=True)
    if html_path is not None:
        from pcapdns.merge import html

        page = html.render(result, command=_command_line())
        _write_output(html_path, lambda fh: fh.write(page))
    if fmt == "json":
        _write_output(output, lambda fh: document.write(result, fh))
    else:
        summary = text.render(result)
        _write_output(output, lambda fh: print(summary, end="", file=fh))


def _check_outputs(paths: tuple[str, ...], *outputs: tuple[str, str | None],
                   logs: tuple[str, ...] = (), plain: bool = False) -> None:
    """Outputs (option, path; "-" is stdout) must be neither an input (a CoreDNS log or a
    pods listing included) nor each other. ``plain``: the inputs are files read as given
    (merge's documents), not captures with directories and capture.json to expand."""
    given = [(opt, path) for opt, path in outputs if path is not None]
    try:
        inputs = list(paths) if plain else [*input_files(list(paths)), *logs]
    except PcapdnsError as e:
        _fail(str(e))
    for _, path in given:
        if path != "-":
            _refuse_input_as_output(path, inputs)
    for i, (first_opt, first) in enumerate(given):
        for opt, path in given[i + 1:]:
            if path == first == "-":
                _fail(f"stdout given for both {first_opt} and {opt}")
            if "-" not in (path, first) and _same_file(path, first):
                _fail(f"{path}: given for both {first_opt} and {opt}")


def _refuse_input_as_output(output: str, inputs: list[str]) -> None:
    """Never overwrite a file the analysis reads. Files are compared themselves (device
    and inode), not their paths: ``ring/dns.pcap1`` is an input of ``ring/``, and a hard
    link or a symlink to a capture is that capture."""
    out = _identity(output)
    if out is None:
        return  # nothing there yet, so no input to lose
    for p in inputs:
        if _identity(p) == out:
            if os.path.abspath(p) == os.path.abspath(output):
                _fail(f"{output}: is one of the inputs; refusing to overwrite")
            # Another name for it: say which input it is.
            _fail(f"{output}: is the same file as the input {p}; refusing to overwrite")


def _same_file(a: str, b: str) -> bool:
    """Whether two outputs are one file: the same path, or one existing file by two."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    first = _identity(a)
    return first is not None and first == _identity(b)


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, symlinks followed; None when there is none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                      "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def capture(args: tuple[str, ...]) -> None:
    """Record DNS traffic into a tcpdump ring with its metadata (as root on the node;
    'pcapdns capture --help' lists the options)."""
    from pcapdns import agent

    sys.exit(agent.main(list(args), prog="pcapdns capture"))
