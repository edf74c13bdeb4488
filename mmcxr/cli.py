"""``mmcxr`` command line: generate a synthetic cohort, prepare an image cache, verify it.

A problem with the data ends a command with one line on stderr and exit status 1, not a
Python traceback: ``mmcxr <command>: error: <file>: <what is wrong>`` for a
:class:`~mmcxr.data.errors.DataError` (missing or unreadable file, a table from another
release, a stale cache) and for an operating-system error (a non-empty output folder, a full
disk). ``--debug`` (before or after the command name) shows the traceback instead. An
interrupted run exits with 130 and says that rerunning the same command resumes it (both
commands resume). Usage errors exit with 2, as argparse does. The data warnings a command
raises (images left out, rows set aside) print as one line each.

The format choices are :data:`mmcxr.data.roots.FORMATS`, the formats the data layer
recognises, so the command line cannot fall behind it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from typing import Any, TextIO

#: Exit status of a command stopped by a data or file-system error.
EXIT_DATA_ERROR = 1
#: Exit status of an interrupted command (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--shard must look like i/n (e.g. 0/4), got {text!r}"
        ) from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (so a bad value is a usage error, not a crash)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _formats() -> list[str]:
    """The data formats, from :data:`mmcxr.data.roots.FORMATS` (one list for the whole package)."""
    from mmcxr.data.roots import FORMATS

    return list(FORMATS)


_DEBUG_HELP = "on an error, show the Python traceback instead of one line"


def build_parser() -> argparse.ArgumentParser:
    formats = _formats()
    debug = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand that is not given --debug must not reset the top-level one
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    p = argparse.ArgumentParser(prog="mmcxr", description=__doc__.split("\n\n")[0])
    p.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "synth",
        parents=[debug],
        help="write a synthetic cohort in a real dataset's on-disk format",
    )
    s.add_argument("format", choices=formats)
    s.add_argument("out_dir")
    s.add_argument(
        "--n", type=_int_at_least(1), default=2000, help="studies (images for chestx-ray14)"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--image-size",
        type=_int_at_least(32),
        default=512,
        help="pixels of the longer side as drawn (chestx-ray14 files are 1024 x 1024)",
    )
    s.add_argument(
        "--workers", type=_int_at_least(1), default=None, help="processes (default: all cores)"
    )

    q = sub.add_parser(
        "prepare",
        parents=[debug],
        help="decode images once into a memory-mapped uint8 cache",
    )
    q.add_argument("format", choices=formats)
    q.add_argument("data_root")
    q.add_argument("cache_dir")
    q.add_argument(
        "--size", type=_int_at_least(8), default=256, help="side of the square cached image"
    )
    q.add_argument(
        "--workers", type=_int_at_least(0), default=None, help="processes (0: decode in-process)"
    )
    q.add_argument("--shard", type=_shard, default=None, metavar="i/n")
    q.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="an unreadable image stops the build (raise), or is recorded in the cache's"
        " manifest with its reason and left out (skip)",
    )
    v = sub.add_parser(
        "verify",
        parents=[debug],
        help="check that a prepared cache is complete, intact and up to date with its sources",
        description="The step after a sharded prepare (a scheduler array job): fails, naming"
        " what is wrong, unless every shard finished, the array's checksum matches the"
        " manifest and no source image changed since it was cached.",
    )
    v.add_argument("cache_dir")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status (0, or the EXIT_* codes above)."""
    args = build_parser().parse_args(argv)
    who = f"mmcxr {args.command}"
    from mmcxr.data.errors import DataError, DataWarning

    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(who, DataWarning, warnings.showwarning)
        try:
            return _run(args, who)
        except (DataError, OSError) as e:
            if args.debug:
                raise
            _say(who, "error", str(e) + "  (--debug shows the traceback)")
            return EXIT_DATA_ERROR
        except KeyboardInterrupt:
            if args.debug:
                raise
            _say(who, "interrupted", "rerun the same command to resume where it stopped")
            return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, who: str) -> int:
    if args.command == "synth":
        from mmcxr.synth import FORMATS as SYNTH_FORMATS
        from mmcxr.synth import generate

        if args.format not in SYNTH_FORMATS:
            _say(who, "error", f"cannot write {args.format!r}; it writes {list(SYNTH_FORMATS)}")
            return 2
        generate(
            args.format,
            args.out_dir,
            n=args.n,
            seed=args.seed,
            image_size=args.image_size,
            workers=args.workers,
        )
    elif args.command == "prepare":
        from mmcxr.data import prepare

        prepare(
            args.format,
            args.data_root,
            args.cache_dir,
            size=args.size,
            workers=args.workers,
            shard=args.shard,
            on_error=args.on_error,
        )
    elif args.command == "verify":
        from mmcxr.data import CacheError, ImageCache

        cache = ImageCache(args.cache_dir, verify="full")  # incomplete or corrupt: CacheError
        stale = cache.stale()
        if len(stale):
            raise CacheError(
                cache.cache_dir,
                f"stale: {len(stale)} source image(s) changed since they were cached (first:"
                f" {stale['path'].iloc[0]}); rebuild with prepare",
            )
        print(
            f"{cache.cache_dir}: complete, checksum ok: {len(cache)} images at {cache.size} px"
            f" ({len(cache.skipped)} left out), sha256 {cache.manifest['sha256']}"
        )
    return 0


def _say(who: str, kind: str, message: str, stream: TextIO | None = None) -> None:
    """One line ``<who>: <kind>: <message>`` on stderr (line breaks in the message folded)."""
    text = " ".join(str(message).split())
    print(f"{who}: {kind}: {text}", file=stream if stream is not None else sys.stderr)


def _one_line_warnings(who: str, category: type[Warning], fallback: Callable[..., Any]):
    """A ``warnings.showwarning`` that prints ``category`` warnings as one line each."""

    def show(message, cat, filename, lineno, file=None, line=None) -> None:
        if issubclass(cat, category):
            _say(who, "warning", str(message), file)
        else:
            fallback(message, cat, filename, lineno, file, line)

    return show


if __name__ == "__main__":
    sys.exit(main())
