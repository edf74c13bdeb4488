"""How fast do the image encoders train? Training images/s, measured side by side in one run.

* ResNet-50 with the papers' (torchvision) stem — 7x7 conv stride 2 + max-pool — against
  MONAI's default stride-1 first convolution, and the ratio;
* the CPU-sized variants (ResNet-18/10, half-width ResNet-10, DenseNet121, small DenseNet),
  each as a ratio to ResNet-50 (stride 2).

Each step is a full image-only classifier step (forward, BCE, backward, Adam) on random
1-channel images. Configurations are timed in interleaved rounds (A B C ... A B C ...) so that
load from other processes hits all of them alike; the median step time per configuration is
reported.

Run: ``.venv/bin/python bench/bench_models.py [--size 128 --batch 8 --rounds 3 --threads 2]``
(``--skip densenet121 resnet18`` leaves slow ones out; the ResNet-50 pair always runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from mmcxr.models import build_classifier, image_encoder, make_loss

CONFIGS = [
    ("resnet50", 2),
    ("resnet50", 1),
    ("resnet18", 2),
    ("resnet10", 2),
    ("resnet10-half", 2),
    ("densenet121", 2),
    ("densenet-small", 2),
]


def make_step(name: str, stride: int, size: int, batch: int):
    torch.manual_seed(0)
    model = build_classifier("image", image_encoder(name, conv1_stride=stride)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss = make_loss("bce")
    data = {
        "image": torch.randn(batch, 1, size, size),
        "label": (torch.rand(batch) > 0.5).float(),
    }

    def step() -> float:
        t0 = time.perf_counter()
        value = loss(model(data), data["label"])
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        return time.perf_counter() - t0

    step()  # warm-up: allocator, kernels
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--skip", nargs="*", default=[], help="encoder names to leave out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    configs = [c for c in CONFIGS if c[0] not in args.skip or c[0] == "resnet50"]
    steps = {cfg: make_step(*cfg, args.size, args.batch) for cfg in configs}
    times: dict[tuple[str, int], list[float]] = {cfg: [] for cfg in configs}
    for r in range(args.rounds):
        for cfg, step in steps.items():
            times[cfg].append(step())
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    base = args.batch / statistics.median(times[("resnet50", 2)])
    rows = []
    for (name, stride), ts in times.items():
        ips = args.batch / statistics.median(ts)
        rows.append(
            {
                "encoder": name,
                "conv1_stride": stride,
                "params_M": round(
                    sum(p.numel() for p in image_encoder(name).parameters()) / 1e6, 2
                ),
                "train_img_per_s": round(ips, 2),
                "vs_resnet50_stride2": round(ips / base, 2),
            }
        )
    print(
        f"\ntraining throughput, {args.size}px, batch {args.batch}, {args.threads} threads, "
        f"median of {args.rounds} interleaved rounds"
    )
    print(pd.DataFrame(rows).to_string(index=False))
    s1 = statistics.median(times[("resnet50", 1)])
    s2 = statistics.median(times[("resnet50", 2)])
    print(f"\nresnet50: stride 2 is {s1 / s2:.1f}x faster than MONAI's default stride 1")


if __name__ == "__main__":
    main()
