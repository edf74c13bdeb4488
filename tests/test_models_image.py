"""Image encoders: shapes, the torchvision-style stem, freezing, local weight loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcxr.chapters.late_fusion_reference import RECIPE
from mmcxr.models import (
    IMAGE_ENCODERS,
    StateDictMismatchError,
    freeze,
    frozen_parameters,
    image_encoder,
    load_pretrained,
    torchvision_densenet_key,
)

EXPECTED_DIM = {
    "resnet50": 2048,
    "resnet34": 512,
    "resnet18": 512,
    "resnet10": 512,
    "resnet10-half": 256,
    "densenet121": 1024,
}


@pytest.mark.parametrize("name", sorted(IMAGE_ENCODERS))
def test_every_encoder_shapes_and_dtypes(name):
    torch.manual_seed(0)
    enc = image_encoder(name).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        pooled, fmap = enc.forward_features(x)
        plain = enc(x)
    assert pooled.shape == (2, enc.out_dim) and pooled.dtype == torch.float32
    assert torch.equal(pooled, plain)
    if name in EXPECTED_DIM:
        assert enc.out_dim == EXPECTED_DIM[name]
    # the last stage map is what gets pooled: 64 px / 32 = 2
    assert fmap.shape == (2, enc.out_dim, 2, 2)
    assert torch.allclose(fmap.mean(dim=(2, 3)), pooled, atol=1e-5)


def test_resnet50_stem_is_stride_two_with_maxpool():
    enc = image_encoder("resnet50").eval()
    assert enc.conv1.stride == (2, 2) and enc.conv1.kernel_size == (7, 7)
    assert not enc.no_max_pool
    x = torch.randn(1, 1, 96, 64)
    sizes = {}
    with torch.no_grad():
        for stage in enc.stages:
            sizes[stage] = tuple(enc.forward_features(x, stage)[1].shape)
    assert sizes == {
        "layer1": (1, 256, 24, 16),
        "layer2": (1, 512, 12, 8),
        "layer3": (1, 1024, 6, 4),
        "layer4": (1, 2048, 3, 2),  # 1/32 of the input
    }
    assert enc.feature_channels("layer3") == 1024
    # MONAI's own default (stride 1) would leave layer4 at 1/16
    slow = image_encoder("resnet10", conv1_stride=1).eval()
    with torch.no_grad():
        assert slow.forward_features(torch.randn(1, 1, 64, 64))[1].shape[-1] == 4


def test_densenet_stage_maps():
    enc = image_encoder("densenet-small").eval()
    with torch.no_grad():
        _, m1 = enc.forward_features(torch.randn(1, 1, 64, 64), "denseblock1")
    assert m1.shape[-1] == 16  # conv0 stride 2 + pool0 stride 2
    with pytest.raises(ValueError, match="unknown stage"):
        enc.forward_features(torch.randn(1, 1, 64, 64), "layer4")


def test_unknown_encoder_and_bad_input_raise():
    with pytest.raises(ValueError, match="choose from"):
        image_encoder("vgg16")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        image_encoder("resnet10")(torch.randn(1, 64, 64))


def test_freeze_paper_001_stages():
    torch.manual_seed(0)
    enc = image_encoder("resnet18")
    frozen = freeze(enc, RECIPE["frozen"])
    assert frozen == frozen_parameters(enc)
    assert all(n.split(".")[0] in {"conv1", "layer1", "layer2"} for n in frozen)
    assert "bn1.weight" not in frozen and any(
        n.startswith("layer3") for n, _ in enc.named_parameters()
    )

    bn = enc.layer1[0].bn1
    running = bn.running_mean.clone()
    enc.train()
    out = enc(torch.randn(4, 1, 64, 64) * 3 + 1)
    out.sum().backward()
    # frozen: no gradient, batch-norm kept in eval (running stats untouched)
    for n, p in enc.named_parameters():
        if n in frozen:
            assert p.grad is None, n
        else:
            assert p.grad is not None, n
    assert not bn.training
    assert torch.equal(bn.running_mean, running)
    # an unfrozen BN did update
    assert enc.layer3[0].bn1.training


def test_freeze_prefix_is_by_module_name_not_substring():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Linear(2, 2)
            self.layer10 = nn.Linear(2, 2)

    net = Net()
    freeze(net, ["layer1"])
    assert not net.layer1.weight.requires_grad and net.layer10.weight.requires_grad
    with pytest.raises(ValueError, match="no sub-module named 'layr2'"):
        freeze(net, ["layr2"])


def test_local_state_dict_round_trip(tmp_path):
    torch.manual_seed(1)
    a = image_encoder("resnet10").eval()
    torch.manual_seed(2)
    b = image_encoder("resnet10").eval()
    x = torch.randn(2, 1, 64, 64)
    # stored as DDP would: "module." prefix, nested under "state_dict"
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in a.state_dict().items()}}, path)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
        report = load_pretrained(b, path)
        assert torch.equal(a(x), b(x))
    assert report.ok and len(report.loaded) == len(a.state_dict())


def test_mismatched_state_dict_raises_listing_keys(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(image_encoder("resnet18").state_dict(), path)
    target = image_encoder("resnet10")
    with pytest.raises(StateDictMismatchError) as err:
        load_pretrained(target, path)
    msg = str(err.value)
    assert str(path) in msg
    assert "unexpected in checkpoint" in msg and "layer1.1.conv1.weight" in msg
    # resnet50 into resnet10: channel counts differ -> shape mismatch reported
    path50 = tmp_path / "r50.pt"
    torch.save(image_encoder("resnet50").state_dict(), path50)
    with pytest.raises(StateDictMismatchError, match="shape mismatch"):
        load_pretrained(target, path50)
    # non-strict: loads what fits, reports the rest
    report = load_pretrained(target, path, strict=False)
    assert not report.ok and "conv1.weight" in report.loaded and report.unexpected
    assert torch.equal(target.conv1.weight, torch.load(path, weights_only=True)["conv1.weight"])


def test_rgb_first_conv_is_summed_to_grayscale(tmp_path):
    rgb = image_encoder("resnet10", in_channels=3)
    path = tmp_path / "rgb.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))
    gray = image_encoder("resnet10")
    report = load_pretrained(gray, path)
    assert report.adapted == ["conv1.weight"]
    assert torch.allclose(gray.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    with pytest.raises(StateDictMismatchError, match="conv1.weight"):
        load_pretrained(image_encoder("resnet10"), path, adapt_input_channels=False)


def test_torchvision_densenet_keys_map_onto_monai(tmp_path):
    src = image_encoder("densenet-small")
    # rebuild torchvision naming: "...denselayer1.norm1.weight" (no ".layers."), plus a head
    tv = {k.replace(".layers.", "."): v for k, v in src.state_dict().items()}
    tv["classifier.weight"] = torch.zeros(14, src.out_dim)
    tv["classifier.bias"] = torch.zeros(14)
    path = tmp_path / "tv.pth"
    torch.save(tv, path)
    dst = image_encoder("densenet-small")
    with pytest.raises(StateDictMismatchError):
        load_pretrained(dst, path)
    load_pretrained(dst, path, key_map=torchvision_densenet_key)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    # old-style CheXNet keys ("norm.1") map too
    assert (
        torchvision_densenet_key("features.denseblock1.denselayer2.norm.1.weight")
        == "features.denseblock1.denselayer2.layers.norm1.weight"
    )


def test_missing_or_bad_file_errors(tmp_path):
    enc = image_encoder("resnet10")
    with pytest.raises(FileNotFoundError, match="only local files"):
        load_pretrained(enc, tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_pretrained(enc, bad)
