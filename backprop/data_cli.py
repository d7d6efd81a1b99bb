"""``python -m backprop data list`` and ``python -m backprop data download NAME``."""

from __future__ import annotations

import argparse
import sys

from backprop.errors import InputError


def data_command(argv: list[str]) -> int:
    """Run a ``data`` subcommand; return the exit code (2 for bad input, 1 for failed downloads)."""
    parser = argparse.ArgumentParser(
        prog="python -m backprop data", description="Datasets for Backprop Studio."
    )
    sub = parser.add_subparsers(dest="action", metavar="{list,download}")
    sub.add_parser("list", help="show the datasets and whether they are on this machine")
    fetch = sub.add_parser("download", help="download and verify a dataset")
    fetch.add_argument("name", help="dataset to download (see `data list`)")
    fetch.add_argument("--dest", help="folder to download into (default: the studio's datasets folder)")
    fetch.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help="base URL to try instead of the built-in mirrors (repeatable, tried in order)",
    )
    fetch.add_argument("--timeout", type=float, default=30.0, help="seconds to wait on a silent server")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the problem to stderr
        return exc.code if isinstance(exc.code, int) else 2
    if args.action is None:
        parser.print_usage(sys.stderr)
        print("python -m backprop data: error: action: choose 'list' or 'download'", file=sys.stderr)
        return 2

    from backprop import data  # imported here so `--help` stays instant

    try:
        if args.action == "list":
            return _list(data)
        if args.timeout <= 0:
            raise InputError("--timeout", f"{args.timeout} is not allowed; give a positive number of seconds")
        bar = _ProgressBar(sys.stderr)
        folder = data.download(
            args.name, dest=args.dest, mirrors=args.mirror, progress=bar, timeout=args.timeout, log=bar.log
        )
        bar.finish()
        print(f"{args.name}: ready in {folder}")
        return 0
    except InputError as exc:
        print(f"python -m backprop data: error: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    except data.DownloadError as exc:
        print(f"python -m backprop data: error: {exc}", file=sys.stderr)
        return 1


def _list(data) -> int:
    from backprop.data.download import is_complete
    from backprop.paths import datasets_dir

    print(f"{'name':<15} {'status':<16} description")
    mnist_text = "handwritten digits 0-9, 60,000 + 10,000 greyscale 28x28 (in data/mnist)"
    print(f"{'mnist':<15} {'shipped':<16} {mnist_text}")
    for name, spec in data.REGISTRY.items():
        here = is_complete(spec, datasets_dir() / spec.folder, verify=False)
        print(f"{name:<15} {'downloaded' if here else 'not downloaded':<16} {spec.description}")
    print("\nDownload with: python -m backprop data download NAME")
    return 0


class _ProgressBar:
    """A redrawn bar on a terminal; a line per tenth of the file when output goes to a log."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.last_step = -1
        self.open_line = False

    def __call__(self, done: int, total: int | None) -> None:
        if done == 0:
            self.last_step = -1
        if self.tty:
            if total:
                filled = int(30 * done / total)
                bar = "#" * filled + "." * (30 - filled)
                text = f"\r  [{bar}] {100 * done / total:5.1f}%  {_mb(done)} of {_mb(total)}"
            else:
                text = f"\r  {_mb(done)}"
            self.stream.write(text)
            self.stream.flush()
            self.open_line = True
            return
        step = int(10 * done / total) if total else done // (10 << 20)
        if step != self.last_step:
            self.last_step = step
            shown = f"{100 * done / total:.0f}% ({_mb(done)} of {_mb(total)})" if total else _mb(done)
            self.stream.write(f"  {shown}\n")

    def log(self, line: str) -> None:
        self.finish()
        self.stream.write(line + "\n")

    def finish(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
