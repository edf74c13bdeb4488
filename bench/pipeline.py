"""Is the input pipeline the bottleneck? Decoding, the cache, and training, side by side.

Writes full-size (3056 x 2544, 12- and 16-bit) DICOMs in MIMIC-CXR's display mix (window /
level, MONOCHROME1, a VOI LUT Sequence) into a temporary folder, ``prepare`` s them into image
caches, then measures in this one run, on the same files:

1. **naive vs cached loader**: images/s of a DataLoader whose items decode the full-size
   DICOM every time (``read_image(path, 256)``, what an epoch costs without a cache) against
   the same DataLoader over the ``prepare`` cache (``MultimodalDataset``, what the chapters
   train from). Target: cached / naive >= 20x.
2. **end-to-end vs model-only training**: images/s of training steps fed by the cached
   loader (``accelerate``-prepared, as in :func:`mmcxr.train.fit`) against the same steps on
   one batch already in memory, for the late-fusion model of the ``book`` profile (64 px
   half-width ResNet-10 + small BERT) and for an image-only ResNet-50 at 256 px. Target:
   end-to-end / model-only >= 0.9.
3. **loader share**: time spent waiting for the next batch / step time, end to end.
   Target: <= 5%.
4. **read_image / bare decode**: seconds per file of ``read_image(path, 256)`` (display
   pipeline: modality LUT, VOI LUT or window, MONOCHROME1, letterbox) over a bare
   ``pydicom`` read + PIL Lanczos resize of the stored values. Target: <= 1.5x.

Decodes and training steps alternate one by one (A B A B ...) so that load from other
processes hits both sides of a ratio alike; step rates are medians. On CUDA the steps run in bf16 autocast with the
batch on the device (pinned memory, non-blocking copies come with accelerate's loader).
Prints the figures, writes them as JSON (``--json OUT``) and rewrites this script's section of
``bench/RESULTS.md`` (``bench/_results.py``).

Run: ``.venv/bin/python bench/pipeline.py [--quick] [--json OUT] [--device auto]``
(``--quick``: under a minute on 2 CPU cores; the default takes a few minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

sys.path.insert(0, str(Path(__file__).parent))
from _results import command_line, device_description, write_section  # noqa: E402

from mmcxr import models  # noqa: E402
from mmcxr.data import ImageCache, MultimodalDataset, prepare, read_image  # noqa: E402
from mmcxr.data.datasets import IMAGE_MEAN, IMAGE_STD  # noqa: E402
from mmcxr.data.images import square_geometry  # noqa: E402
from mmcxr.env import resolve_device  # noqa: E402
from mmcxr.train import collate_items  # noqa: E402

ROWS, COLS = 3056, 2544
TARGETS = {"cached_over_naive": 20.0, "end_to_end_over_model": 0.9, "loader_share": 0.05}
TARGETS["read_image_over_bare"] = 1.5


# ------------------------------------------------------------------------------------ files
def write_dicoms(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` full-size DICOMs cycling through window/level (12 bit), MONOCHROME1 (12 bit),
    a VOI LUT Sequence (12 bit) and window/level at 16 bit, as the synthetic generator and
    MIMIC-CXR mix them. Pixels: smooth anatomy-like fields plus noise (decoding cost does not
    depend on content for uncompressed files)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    y = np.linspace(0, 1, ROWS, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, COLS, dtype=np.float32)[None, :]
    paths = []
    for i in range(n):
        kind = ("window", "monochrome1", "voi_lut", "window16")[i % 4]
        bits = 16 if kind == "window16" else 12
        maxval = (1 << bits) - 1
        a, b = rng.random(2) * 6
        field = 0.5 + 0.25 * np.sin(7 * y + a) * np.cos(5 * x + b) + 0.2 * (x - 0.5) ** 2
        noise = rng.normal(0, 0.01, (ROWS // 8, COLS // 8)).astype(np.float32)
        field = np.clip(field + np.kron(noise, np.ones((8, 8), np.float32)), 0, 1)
        stored = np.rint((field**2 if kind == "voi_lut" else field) * maxval).astype(np.uint16)
        if kind == "monochrome1":
            stored = maxval - stored
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "DX"
        photometric = "MONOCHROME1" if kind == "monochrome1" else "MONOCHROME2"
        ds.set_pixel_data(stored, photometric, bits, generate_instance_uid=False)
        if kind == "voi_lut":
            item = Dataset()
            item.add_new(0x00283002, "US", [maxval + 1, 0, 16])
            lut = np.rint(np.sqrt(np.arange(maxval + 1) / maxval) * 65535).astype(np.uint16)
            item.add_new(0x00283006, "US", lut.tolist())
            ds.VOILUTSequence = [item]
        else:
            ds.WindowCenter, ds.WindowWidth = (maxval + 1) / 2, maxval + 1
        path = folder / f"{i:04d}-{kind}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def bare_decode(path: Path, size: int) -> np.ndarray:
    """The floor: read the file, decode the stored values, Lanczos-resize them (no display
    transform, no letterbox padding)."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    g = square_geometry(*arr.shape, size)
    return np.asarray(Image.fromarray(arr).resize((g.width, g.height), Image.Resampling.LANCZOS))


# ------------------------------------------------------------------------------------ loaders
class DecodeEveryEpoch(TorchDataset):
    """The loader without a cache: each item decodes its full-size DICOM again."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = (read_image(self.paths[i], self.size) - IMAGE_MEAN) / IMAGE_STD
        return {"image": torch.from_numpy(img)[None], "label": torch.tensor(0.0)}


def loader_rate(ds: TorchDataset, batch: int, workers: int, min_items: int) -> float:
    """Images/s of iterating a shuffled DataLoader over ``ds`` (whole epochs, >= min_items)."""
    dl = DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate_items
    )
    n, t0 = 0, time.perf_counter()
    while n < min_items:
        for b in dl:
            n += len(b["label"])
    return n / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------ training
class Stepper:
    """One model's training step, fed either by a loader (end to end) or by one batch held
    in memory (model only); records step and waiting times."""

    def __init__(self, model: torch.nn.Module, ds: TorchDataset, batch: int, args) -> None:
        from mmcxr.train import _make_accelerator

        self.acc = _make_accelerator(args.device, 0)
        self.dev = self.acc.device
        if self.dev.type == "cuda" and args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        dl = DataLoader(
            ds,
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            pin_memory=self.dev.type == "cuda",
            persistent_workers=args.workers > 0,
            collate_fn=collate_items,  # what fit() uses
        )
        self.model, self.opt, self.loader = self.acc.prepare(model, opt, dl)
        self.loss = models.make_loss("bce")
        self.bf16 = self.dev.type == "cuda"
        self.batches = self._cycle()
        self.held = next(self.batches)  # model-only input: a real batch, already on device
        self.step(self.held)  # warm-up: allocator, kernels, autotuning

    def _cycle(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield from self.loader

    def _sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        with torch.autocast(self.dev.type, torch.bfloat16, enabled=self.bf16):
            logits = self.model(batch)
        value = self.loss(logits.float(), batch["label"].float())
        self.opt.zero_grad(set_to_none=True)
        self.acc.backward(value)
        self.opt.step()

    def run(self, steps: int, end_to_end: bool) -> tuple[float, float, int]:
        """``(seconds, seconds waiting for batches, images)`` of ``steps`` steps."""
        self._sync()
        wait, n, t0 = 0.0, 0, time.perf_counter()
        for _ in range(steps):
            if end_to_end:
                w = time.perf_counter()
                batch = next(self.batches)
                wait += time.perf_counter() - w
            else:
                batch = self.held
            self.step(batch)
            n += len(batch["label"])
        self._sync()
        return time.perf_counter() - t0, wait, n


def train_rates(name: str, stepper: Stepper, steps: int, rounds: int) -> dict[str, float]:
    """Alternate single end-to-end and model-only steps (E M M E E M ...), so that both sides
    of the ratio meet the same load in the same order; rates from the median step times,
    loader share from the summed waits over the summed end-to-end time."""
    e2e: list[float] = []
    mo: list[float] = []
    waits: list[float] = []
    for i in range(rounds * steps):
        if i % 2:  # every other pair model-only first: no side is always the one after
            mo.append(stepper.run(1, end_to_end=False)[0])
        t, w, _n = stepper.run(1, end_to_end=True)
        e2e.append(t)
        waits.append(w)
        if not i % 2:
            mo.append(stepper.run(1, end_to_end=False)[0])
    batch = len(stepper.held["label"])
    rate_e2e, rate_mo = batch / statistics.median(e2e), batch / statistics.median(mo)
    share = sum(waits) / sum(e2e)
    print(
        f"{name:>12}: end-to-end {rate_e2e:8.1f} img/s, model-only {rate_mo:8.1f} img/s, "
        f"ratio {rate_e2e / rate_mo:.2f}, loader share {share:.1%} ({len(e2e)} steps each)",
        flush=True,
    )
    return {
        "end_to_end_img_per_s": rate_e2e,
        "model_only_img_per_s": rate_mo,
        "end_to_end_over_model": rate_e2e / rate_mo,
        "loader_share": share,
        "steps": len(e2e),
    }


def late_fusion_model(vocab: int) -> torch.nn.Module:
    """The ``book`` profile's fused model: half-width ResNet-10 + a 2-layer BERT (hidden 64)."""
    from transformers import BertModel

    torch.manual_seed(0)
    bert = BertModel(models.small_bert_config(vocab, 64, 2, 2), add_pooling_layer=False)
    text = models.BertTextEncoder(bert, pooling="mean")
    return models.build_classifier("multimodal", "resnet10-half", text, proj_dim=256)


# ------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer files and steps (< 1 min)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--channels-last", action="store_true", help="CUDA: NHWC convolutions")
    ap.add_argument("--no-results-md", action="store_true", help="leave RESULTS.md alone")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    quick = args.quick
    n_files = 4 if quick else 12
    fusion_batch = 256 if cuda else 16
    resnet_batch = 256 if cuda else (2 if quick else 8)
    steps = {"fusion": 40 if cuda else (2 if quick else 20), "resnet": 10 if cuda else 1}
    rounds = 3
    where = device_description(device)
    print(f"{where}; torch threads {torch.get_num_threads()}, loader workers {args.workers}")
    started = time.perf_counter()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_dicoms(tmp / "dicom", n_files)
        table = pd.DataFrame({"key": [p.stem for p in paths], "path": [str(p) for p in paths]})

        # 4. read_image vs a bare decode, per file, interleaved
        t_read = t_bare = 0.0
        for _ in range(2 if quick else 3):
            for p in paths:
                t0 = time.perf_counter()
                bare_decode(p, 256)
                t1 = time.perf_counter()
                read_image(p, 256)
                t_bare, t_read = t_bare + t1 - t0, t_read + time.perf_counter() - t1
        out["read_image_img_per_s"] = len(paths) * (2 if quick else 3) / t_read
        out["bare_decode_img_per_s"] = len(paths) * (2 if quick else 3) / t_bare
        out["read_image_over_bare"] = t_read / t_bare
        print(
            f"read_image {out['read_image_img_per_s']:.1f} img/s, bare pydicom + resize "
            f"{out['bare_decode_img_per_s']:.1f} img/s: read_image / bare = "
            f"{out['read_image_over_bare']:.2f}x (time per image)",
            flush=True,
        )

        # 1. naive loader vs the prepare cache, both at 256 px
        t0 = time.perf_counter()
        prepare("mimic-cxr", tmp, tmp / "c256", 256, workers=0, table=table, progress=False)
        prepare("mimic-cxr", tmp, tmp / "c64", 64, workers=0, table=table, progress=False)
        out["prepare_img_per_s"] = 2 * n_files / (time.perf_counter() - t0)
        c256, c64 = ImageCache(tmp / "c256"), ImageCache(tmp / "c64")
        reps = (256 if quick else 1024) // n_files
        keys = list(table["key"]) * reps
        labels = np.arange(len(keys)) % 2
        cached256 = MultimodalDataset(labels, images=c256, image_keys=keys)
        naive = DecodeEveryEpoch(paths, 256)
        naive_rate = loader_rate(naive, 4, args.workers, n_files)
        cached_rate = loader_rate(cached256, 16, args.workers, len(keys))
        out["naive_loader_img_per_s"] = naive_rate
        out["cached_loader_img_per_s"] = cached_rate
        out["cached_over_naive"] = cached_rate / naive_rate
        print(
            f"loader at 256 px: decode full-size DICOMs {naive_rate:.1f} img/s, prepare cache "
            f"{cached_rate:.0f} img/s: cached / naive = {cached_rate / naive_rate:.0f}x",
            flush=True,
        )

        # 2-3. training fed by the cached loader vs by a batch in memory
        vocab, seq = 1500, 128
        rng = np.random.default_rng(0)
        tokens = {
            "input_ids": torch.from_numpy(rng.integers(5, vocab, (len(keys), seq))),
            "attention_mask": torch.ones(len(keys), seq, dtype=torch.long),
        }
        fused_ds = MultimodalDataset(labels, images=c64, image_keys=keys, text=tokens)
        fused = Stepper(late_fusion_model(vocab), fused_ds, fusion_batch, args)
        out["late_fusion"] = train_rates("late fusion", fused, steps["fusion"], rounds)
        del fused
        r50 = models.build_classifier("image", "resnet50")
        resnet = Stepper(r50, cached256, resnet_batch, args)
        out["resnet50_256"] = train_rates("resnet50", resnet, steps["resnet"], rounds)
    out.update(
        device=where,
        device_kind=device.split(":")[0],
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        command=command_line(),
        quick=quick,
        torch_threads=torch.get_num_threads(),
        loader_workers=args.workers,
        batch={"late_fusion": fusion_batch, "resnet50_256": resnet_batch},
        seconds=time.perf_counter() - started,
        targets=TARGETS,
    )
    share = max(out["late_fusion"]["loader_share"], out["resnet50_256"]["loader_share"])
    e2e = min(
        out["late_fusion"]["end_to_end_over_model"], out["resnet50_256"]["end_to_end_over_model"]
    )
    out["summary"] = {
        "cached_over_naive": out["cached_over_naive"],
        "end_to_end_over_model": e2e,
        "loader_share": share,
        "read_image_over_bare": out["read_image_over_bare"],
    }
    print(f"\nthe ratios ({out['seconds']:.0f} s):")
    for key, value in out["summary"].items():
        target = TARGETS[key]
        ok = value <= target if key in ("loader_share", "read_image_over_bare") else value >= target
        kind = "<=" if key in ("loader_share", "read_image_over_bare") else ">="
        print(f"  {key:<24} {value:8.3f}   target {kind} {target:<5} {'ok' if ok else 'MISSED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    if not args.no_results_md:
        path = write_section(
            "bench/pipeline.py",
            out["device_kind"],
            "Input pipeline: decoding, cache, training",
            _rows(out),
            device=where,
            command=out["command"],
            notes=(
                f"Torch threads {out['torch_threads']}, loader workers {args.workers}; "
                f"batches: late fusion {fusion_batch}, ResNet-50 {resnet_batch}; "
                f"{n_files} full-size DICOMs; step rates are medians of "
                f"{out['late_fusion']['steps']} (late fusion) and {out['resnet50_256']['steps']}"
                " (ResNet-50) alternating end-to-end / model-only step pairs; on a loaded machine"
                " the loader share (measured directly) is the steadier of the two figures; "
                f"run took {out['seconds']:.0f} s."
            ),
        )
        print(f"rewrote {path}")


def _rows(out: dict) -> list[dict[str, str]]:
    lf, rn = out["late_fusion"], out["resnet50_256"]

    def row(what: str, a: str, b: str, ratio: float, target: str) -> dict[str, str]:
        return {"measurement": what, "A": a, "B": b, "ratio": f"{ratio:.3g}", "target": target}

    return [
        row(
            "cached loader (A) / naive full-size DICOM loader (B), 256 px",
            f"{out['cached_loader_img_per_s']:.0f} img/s",
            f"{out['naive_loader_img_per_s']:.1f} img/s",
            out["cached_over_naive"],
            ">= 20",
        ),
        row(
            "late fusion (book profile, 64 px): end-to-end (A) / model-only (B)",
            f"{lf['end_to_end_img_per_s']:.3g} img/s",
            f"{lf['model_only_img_per_s']:.3g} img/s",
            lf["end_to_end_over_model"],
            ">= 0.9",
        ),
        row(
            "ResNet-50, 256 px: end-to-end (A) / model-only (B)",
            f"{rn['end_to_end_img_per_s']:.3g} img/s",
            f"{rn['model_only_img_per_s']:.3g} img/s",
            rn["end_to_end_over_model"],
            ">= 0.9",
        ),
        row("late fusion: loader share of step time", "", "", lf["loader_share"], "<= 0.05"),
        row("ResNet-50: loader share of step time", "", "", rn["loader_share"], "<= 0.05"),
        row(
            "read_image(path, 256) (A) / bare pydicom read + resize (B), time per image",
            f"{out['read_image_img_per_s']:.2f} img/s",
            f"{out['bare_decode_img_per_s']:.2f} img/s",
            out["read_image_over_bare"],
            "<= 1.5",
        ),
    ]


if __name__ == "__main__":
    main()
