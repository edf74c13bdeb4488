"""``mmcxr`` command line: generate a synthetic cohort, prepare an image cache."""

from __future__ import annotations

import argparse
import sys


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmcxr", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic cohort in a real dataset's on-disk format")
    s.add_argument("format", choices=["mimic-cxr", "mimic-cxr-jpg", "openi", "chestx-ray14"])
    s.add_argument("out_dir")
    s.add_argument("--n", type=int, default=2000, help="studies (images for chestx-ray14)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-size", type=int, default=512, help="pixels of the longer side")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")

    q = sub.add_parser("prepare", help="decode images once into a memory-mapped uint8 cache")
    q.add_argument("format", choices=["mimic-cxr", "mimic-cxr-jpg", "openi", "chestx-ray14"])
    q.add_argument("data_root")
    q.add_argument("cache_dir")
    q.add_argument("--size", type=int, default=256, help="side of the square cached image")
    q.add_argument("--workers", type=int, default=None)
    q.add_argument("--shard", type=_shard, default=None, metavar="i/n")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "synth":
        from mmcxr.synth import generate

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
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
