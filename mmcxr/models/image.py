"""Image encoders for 1-channel chest radiographs, built from MONAI's networks.

Every encoder maps an image batch ``(B, 1, H, W)`` to pooled features ``(B, out_dim)`` and can
also hand back a spatial feature map (for attention captioners, GLoRIA-style local features and
Grad-CAM). Variants are chosen by a name string so a chapter's parameters cell can switch from
the papers' ResNet-50 / DenseNet121 to CPU-sized members of the same family.

Two deliberate departures from MONAI's defaults:

* ``conv1_t_stride=2`` (MONAI uses 1, a 3-D video heritage). The papers' ResNet-50 is the
  torchvision/He et al. one: 7x7 stride-2 stem + 3x3 stride-2 max-pool, so layer4 is 1/32 of the
  input. Stride 1 quadruples the compute (``bench/bench_models.py`` measures it).
* ``shortcut_type="B"`` and ``bias_downsample=False`` for every depth: the projection shortcut
  without bias is torchvision's, so torchvision-format state dicts load key-for-key, and MONAI's
  type "A" shortcut detaches the residual (``out.data``) which would silently stop gradients.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from monai.networks.nets import DenseNet, ResNet
from torch import nn

__all__ = [
    "IMAGE_ENCODERS",
    "DenseNetEncoder",
    "ImageEncoder",
    "LoadReport",
    "ResNetEncoder",
    "StateDictMismatchError",
    "freeze",
    "frozen_parameters",
    "image_encoder",
    "load_pretrained",
    "torchvision_densenet_key",
]

# name -> (family, constructor kwargs). Widths/depths of the small variants are chosen so that a
# 128 px image trains at tens of images per second on 2 CPU cores (see bench/bench_models.py).
IMAGE_ENCODERS: dict[str, tuple[str, dict]] = {
    "resnet50": ("resnet", {"block": "bottleneck", "layers": [3, 4, 6, 3]}),
    "resnet34": ("resnet", {"block": "basic", "layers": [3, 4, 6, 3]}),
    "resnet18": ("resnet", {"block": "basic", "layers": [2, 2, 2, 2]}),
    "resnet10": ("resnet", {"block": "basic", "layers": [1, 1, 1, 1]}),
    "resnet10-half": ("resnet", {"block": "basic", "layers": [1, 1, 1, 1], "widen_factor": 0.5}),
    "densenet121": (
        "densenet",
        {"init_features": 64, "growth_rate": 32, "block_config": (6, 12, 24, 16)},
    ),
    "densenet-small": (
        "densenet",
        {"init_features": 32, "growth_rate": 16, "block_config": (2, 4, 6, 4)},
    ),
}


class ImageEncoder(nn.Module):
    """Common interface: ``forward(x) -> (B, out_dim)``; ``forward_features(x, stage)``."""

    name: str
    out_dim: int
    stages: tuple[str, ...]

    def _stem_and_stages(self) -> list[tuple[str, nn.Module]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_features(
        self, x: torch.Tensor, stage: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled features and the spatial map after ``stage`` (default: the last stage).

        The network is always run to the end so the pooled vector is the same as ``forward``.
        """
        stage = stage or self.stages[-1]
        if stage not in self.stages:
            raise ValueError(f"{self.name}: unknown stage {stage!r}; choose from {self.stages}")
        _check_image(x)
        fmap = None
        for name, module in self._stem_and_stages():
            x = module(x)
            if name == stage:
                fmap = x
        return self._pool(x), fmap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def feature_channels(self, stage: str | None = None) -> int:
        """Channels of the map returned for ``stage`` (measured with a tiny dry run)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                probe = next(self.parameters())
                x = torch.zeros(1, self.in_channels, 64, 64, dtype=probe.dtype, device=probe.device)
                return int(self.forward_features(x, stage)[1].shape[1])
        finally:
            self.train(was_training)


class ResNetEncoder(ImageEncoder, ResNet):
    """MONAI ``ResNet`` (2-D, no fc) whose state-dict keys match torchvision's ResNet."""

    stages = ("layer1", "layer2", "layer3", "layer4")

    def __init__(
        self,
        name: str,
        *,
        block: str,
        layers: list[int],
        in_channels: int = 1,
        widen_factor: float = 1.0,
        conv1_stride: int = 2,
        max_pool: bool = True,
    ) -> None:
        super().__init__(
            block=block,
            layers=layers,
            block_inplanes=[64, 128, 256, 512],
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=conv1_stride,
            no_max_pool=not max_pool,
            shortcut_type="B",
            widen_factor=widen_factor,
            feed_forward=False,
            bias_downsample=False,
        )
        self.name = name
        self.in_channels = in_channels
        expansion = 4 if block == "bottleneck" else 1
        self.out_dim = int(512 * widen_factor) * expansion

    def _stem_and_stages(self) -> list[tuple[str, nn.Module]]:
        stem = [("conv1", self.conv1), ("bn1", self.bn1), ("act", self.act)]
        if not self.no_max_pool:
            stem.append(("maxpool", self.maxpool))
        return stem + [(s, getattr(self, s)) for s in self.stages]

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(fmap), 1)


class DenseNetEncoder(ImageEncoder, DenseNet):
    """MONAI ``DenseNet`` (2-D) without its output layer; stages are the dense blocks.

    The map of ``denseblock4`` is taken after the final norm + ReLU (what gets pooled), the
    others straight out of the block.
    """

    stages = ("denseblock1", "denseblock2", "denseblock3", "denseblock4")

    def __init__(
        self,
        name: str,
        *,
        init_features: int,
        growth_rate: int,
        block_config: Sequence[int],
        in_channels: int = 1,
        dropout_prob: float = 0.0,
    ) -> None:
        super().__init__(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=1,
            init_features=init_features,
            growth_rate=growth_rate,
            block_config=tuple(block_config),
            dropout_prob=dropout_prob,
        )
        del self.class_layers.out  # the classifier head lives in mmcxr.models.fusion
        self.name = name
        self.in_channels = in_channels
        self.out_dim = int(self.features.norm5.num_features)

    def _stem_and_stages(self) -> list[tuple[str, nn.Module]]:
        out: list[tuple[str, nn.Module]] = []
        for name, module in self.features.named_children():
            if name == "norm5":  # fold norm5 + relu into the last stage's map
                out[-1] = (
                    "denseblock4",
                    nn.Sequential(out[-1][1], module, self.class_layers.relu),
                )
            else:
                out.append((name, module))
        return out

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.class_layers.flatten(self.class_layers.pool(fmap))


def image_encoder(
    name: str,
    *,
    in_channels: int = 1,
    conv1_stride: int = 2,
    widen_factor: float | None = None,
    dropout_prob: float = 0.0,
) -> ImageEncoder:
    """Build an encoder by name (see ``IMAGE_ENCODERS``), randomly initialised.

    ``conv1_stride`` exists for the benchmark against MONAI's stride-1 default; leave it at 2.
    """
    if name not in IMAGE_ENCODERS:
        raise ValueError(f"unknown image encoder {name!r}; choose from {sorted(IMAGE_ENCODERS)}")
    family, kwargs = IMAGE_ENCODERS[name]
    kwargs = dict(kwargs)
    if family == "resnet":
        if widen_factor is not None:
            kwargs["widen_factor"] = widen_factor
        return ResNetEncoder(name, in_channels=in_channels, conv1_stride=conv1_stride, **kwargs)
    if widen_factor is not None:
        raise ValueError("widen_factor applies to ResNets; DenseNets are sized by growth_rate")
    return DenseNetEncoder(name, in_channels=in_channels, dropout_prob=dropout_prob, **kwargs)


def _check_image(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"image batch must be (B, C, H, W), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------- freezing


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _keep_eval(module: nn.Module, _args: tuple) -> None:
    """Forward pre-hook: a frozen norm layer stays in eval mode even after ``model.train()``,
    so its running statistics are neither used from the batch nor updated."""
    module.training = False


def freeze(model: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """Freeze every parameter under the named sub-modules (dotted-name prefixes).

    ``"layer1"`` matches ``layer1`` and ``layer1.0.conv1`` but not ``layer10``. Frozen batch-norm
    layers are put in eval mode and kept there. Returns the names of the frozen parameters;
    raises if a prefix matches nothing (a typo would otherwise train the whole network).
    """
    modules = dict(model.named_modules())
    frozen: list[str] = []
    for prefix in prefixes:
        hits = [n for n in modules if n and (n == prefix or n.startswith(prefix + "."))]
        if not hits:
            raise ValueError(
                f"freeze: no sub-module named {prefix!r} in {type(model).__name__}; top-level "
                f"children are {[n for n, _ in model.named_children()]}"
            )
        for n in hits:
            mod = modules[n]
            for pname, p in mod.named_parameters(recurse=False):
                p.requires_grad_(False)
                frozen.append(f"{n}.{pname}")
            if isinstance(mod, _BATCH_NORMS) and not getattr(mod, "_mmcxr_frozen", False):
                mod.eval()
                mod.register_forward_pre_hook(_keep_eval)
                mod._mmcxr_frozen = True
    hit = set(frozen)
    return [n for n, _ in model.named_parameters() if n in hit]


def frozen_parameters(model: nn.Module) -> list[str]:
    """Names of parameters that will not be trained (for the book's model summary)."""
    return [n for n, p in model.named_parameters() if not p.requires_grad]


# --------------------------------------------------------------------------- pretrained weights


class StateDictMismatchError(ValueError):
    """A checkpoint does not fit the model; the message lists every offending key."""


@dataclass
class LoadReport:
    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 20) -> str:
        def show(items: list) -> str:
            more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(str(i) for i in items[:limit]) + more

        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"  missing in checkpoint ({len(self.missing)}): {show(self.missing)}")
        if self.unexpected:
            lines.append(
                f"  unexpected in checkpoint ({len(self.unexpected)}): {show(self.unexpected)}"
            )
        if self.mismatched:
            mm = [f"{k} checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]
            lines.append(f"  shape mismatch ({len(mm)}): {show(mm)}")
        if self.adapted:
            lines.append(f"  input channels summed to fit: {show(self.adapted)}")
        return "\n".join(lines)


# torchvision: "denselayer1.norm1.weight"; old checkpoints (CheXNet): "denselayer1.norm.1.weight"
_TV_DENSE = re.compile(r"^(.*denselayer\d+)\.(norm|relu|conv)\.?(\d)\.(.+)$")


def torchvision_densenet_key(key: str) -> str | None:
    """Map a torchvision (or CheXNet-style ``norm.1``) DenseNet key to MONAI's naming; drop the
    ``classifier`` head. Pass as ``key_map`` to :func:`load_pretrained`."""
    if key.startswith("classifier."):
        return None
    m = _TV_DENSE.match(key)
    if m:
        return f"{m.group(1)}.layers.{m.group(2)}{m.group(3)}.{m.group(4)}"
    return key


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path} (only local files are used)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: not a readable torch state dict ({e})") from e
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a mapping of parameter name -> tensor")
    return dict(sd)


def load_pretrained(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    strip_prefix: str | Sequence[str] = ("module.",),
    key_map: Callable[[str], str | None] | Mapping[str, str] | None = None,
    strict: bool = True,
    adapt_input_channels: bool = True,
) -> LoadReport:
    """Load a local state dict (``.pt``/``.pth``/``.bin``/``.safetensors``) into ``model``.

    Keys are rewritten in order: leading ``strip_prefix`` es removed (DDP's ``module.`` by
    default), then ``key_map`` (a function returning the new key or None to drop it, or a dict of
    regex -> replacement). With ``adapt_input_channels`` an RGB first convolution ``(O, 3, k, k)``
    is summed over its input channels to fit a grayscale model ``(O, 1, k, k)`` — the usual way
    to reuse ImageNet weights on radiographs, and what paper 001's "modified for grayscale
    input" amounts to. ``strict=True`` raises :class:`StateDictMismatchError` listing missing,
    unexpected and shape-mismatched keys; ``strict=False`` loads what fits and reports the rest.
    """
    path = Path(path)
    raw = _read_state_dict(path)
    prefixes = (strip_prefix,) if isinstance(strip_prefix, str) else tuple(strip_prefix)
    if isinstance(key_map, Mapping):
        rules = [(re.compile(k), v) for k, v in key_map.items()]

        def key_map(k: str, _rules=rules) -> str:
            for pat, rep in _rules:
                k = pat.sub(rep, k)
            return k

    sd: dict[str, torch.Tensor] = {}
    for k, v in raw.items():
        for p in prefixes:
            if p and k.startswith(p):
                k = k[len(p) :]
        if key_map is not None:
            k = key_map(k)
            if k is None:
                continue
        sd[k] = v

    target = model.state_dict()
    report = LoadReport(path=str(path))
    report.missing = sorted(k for k in target if k not in sd)
    report.unexpected = sorted(k for k in sd if k not in target)
    fits: dict[str, torch.Tensor] = {}
    for k in sorted(set(sd) & set(target)):
        v, want = sd[k], target[k]
        if (
            adapt_input_channels
            and v.ndim == 4
            and want.ndim == 4
            and v.shape[1] != want.shape[1]
            and want.shape[1] == 1
            and v.shape[0] == want.shape[0]
            and v.shape[2:] == want.shape[2:]
        ):
            v = v.sum(dim=1, keepdim=True)
            report.adapted.append(k)
        if v.shape != want.shape:
            report.mismatched.append((k, tuple(v.shape), tuple(want.shape)))
            continue
        fits[k] = v.to(dtype=want.dtype)
    report.loaded = sorted(fits)
    if strict and not report.ok:
        raise StateDictMismatchError(
            f"{type(model).__name__} does not fit the checkpoint (strict=True):\n{report.describe()}"
        )
    model.load_state_dict(fits, strict=False)
    return report


def prepared_image_encoder(
    name: str,
    weights: str | os.PathLike | None = None,
    frozen: Sequence[str] = (),
    *,
    key_map: Callable[[str], str | None] | Mapping[str, str] | None = None,
) -> ImageEncoder:
    """An encoder by name, loaded from a local state dict when ``weights`` is given (e.g.
    ImageNet weights in torchvision's layout; the classifier ``fc.`` keys are dropped unless
    ``key_map`` says otherwise), with the ``frozen`` stages frozen.

    Papers freeze the early stages of a *pretrained* network; freezing random weights would
    keep random features, so that combination warns.
    """
    enc = image_encoder(name)
    if weights is not None:
        drop_head = lambda k: None if k.startswith(("fc.", "classifier.")) else k  # noqa: E731
        load_pretrained(enc, weights, key_map=key_map or drop_head)
    if frozen:
        if weights is None:
            warnings.warn(
                f"freezing {list(frozen)} of a randomly initialised {name}: those layers will "
                "keep random weights (give pretrained weights)",
                UserWarning,
                stacklevel=2,
            )
        freeze(enc, frozen)
    return enc
