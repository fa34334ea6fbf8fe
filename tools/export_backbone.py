#!/usr/bin/env python3
"""Export a PyTorch network as a feature extractor for `kensa train --backbone-onnx FILE --layers A,B,C`.

For users with Python and internet (kensa itself never needs Python). The file it writes has one input,
`input`, float32 [batch, 3, height, width] (RGB normalised with ImageNet's mean and std, as kensa feeds
every backbone), with batch, height and width dynamic, and one output per named module, under the
module's name, at opset 17 with the weights inside the file: what kensa train takes and kensa export
can carry on.

  # torchvision (pip install torch torchvision onnx)
  python tools/export_backbone.py --model torchvision:wide_resnet50_2 --layers layer1,layer2,layer3 --out wrn50.onnx
  # timm (pip install timm)
  python tools/export_backbone.py --model timm:convnext_tiny --layers stages.0,stages.1,stages.2 --out convnext.onnx
  # a network of your own: module:callable returning an nn.Module, its keyword arguments as JSON,
  # and optionally a state_dict to load
  python tools/export_backbone.py --model mypackage.nets:build --kwargs '{"width": 2}' --weights mine.pth \
      --layers stage1,stage2,stage3 --out mine.onnx

  kensa train --data DIR --backbone-onnx wrn50.onnx --layers layer1,layer2,layer3 --out model.kensa

The three layers are modules (dotted names, as in model.named_modules()) whose outputs are NCHW feature
maps at strides 4, 8 and 16; the script checks the strides on a 224×224 input, and, when onnxruntime is
installed, that the ONNX file gives PyTorch's outputs at another size and batch.
"""
import argparse
import importlib
import json
import sys

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDES = (4, 8, 16)
OPSET = 17


def build(spec, kwargs, pretrained):
    """The nn.Module named by --model: torchvision:NAME, timm:NAME or module:callable."""
    source, _, name = spec.partition(":")
    if not name:
        sys.exit(f"--model {spec!r}: expected torchvision:NAME, timm:NAME or module:callable")
    if source == "torchvision":
        import torchvision

        return torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None, **kwargs)
    if source == "timm":
        import timm

        model = timm.create_model(name, pretrained=pretrained, **kwargs)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean"), cfg.get("std")
        if mean and std and (
            any(abs(a - b) > 1e-3 for a, b in zip(mean, IMAGENET_MEAN))
            or any(abs(a - b) > 1e-3 for a, b in zip(std, IMAGENET_STD))
        ):
            print(
                f"warning: {name} was trained with mean {mean} and std {std}, not ImageNet's; kensa feeds "
                "ImageNet-normalised images, so its features will be somewhat off",
                file=sys.stderr,
            )
        return model
    target = importlib.import_module(source)
    for part in name.split("."):
        target = getattr(target, part)
    return target(**kwargs)


class Features:
    """Wraps a network so that its forward returns the outputs of the named modules (forward hooks)."""

    def __init__(self, torch, model, layers):
        self.torch = torch
        self.model = model
        self.layers = layers
        self.outputs = {}
        for layer in layers:
            try:
                module = model.get_submodule(layer)
            except AttributeError:
                names = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
                sys.exit(f"the network has no module {layer!r}; modules near the top: {', '.join(names[:40])}")
            module.register_forward_hook(self._keep(layer))

    def _keep(self, layer):
        def hook(_module, _inputs, output):
            self.outputs[layer] = output

        return hook

    def module(self):
        torch, outer = self.torch, self

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = outer.model

            def forward(self, x):
                outer.outputs = {}
                self.net(x)
                return tuple(outer.outputs[layer] for layer in outer.layers)

        return Wrapper().eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="torchvision:NAME, timm:NAME or module:callable")
    p.add_argument("--layers", required=True, help="three module names: the maps at strides 4, 8, 16")
    p.add_argument("--out", required=True, help="the ONNX file to write")
    p.add_argument("--kwargs", default="{}", help="keyword arguments for the constructor, as JSON")
    p.add_argument("--weights", help="a state_dict (.pth) to load into the network")
    p.add_argument("--no-pretrained", action="store_true", help="torchvision/timm: random weights (a test)")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET}; kensa export needs {OPSET})")
    a = p.parse_args()

    import torch

    layers = [s.strip() for s in a.layers.split(",") if s.strip()]
    if len(layers) != 3:
        sys.exit(f"--layers needs three module names (strides 4, 8, 16), not {len(layers)}")
    model = build(a.model, json.loads(a.kwargs), not a.no_pretrained)
    if a.weights:
        state = torch.load(a.weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            sys.exit(f"{a.weights}: the network's keys {missing[:5]} are not in the file")
        if unexpected:
            print(f"warning: {a.weights}: keys not in the network were left out: {unexpected[:5]}", file=sys.stderr)
    model.eval()
    net = Features(torch, model, layers).module()

    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        maps = net(x)
    for layer, m, stride in zip(layers, maps, STRIDES):
        if not isinstance(m, torch.Tensor) or m.dim() != 4:
            sys.exit(f"{layer!r} does not give an NCHW feature map (got {type(m).__name__} {getattr(m, 'shape', '')})")
        found = (224 / m.shape[2], 224 / m.shape[3])
        if found != (stride, stride):
            sys.exit(f"{layer!r} gives {tuple(m.shape)} for a 224×224 input: stride {found[0]:g}, not {stride}")
        print(f"{layer}: {m.shape[1]} channels at stride {stride}")

    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({layer: {0: "batch", 2: f"h{i}", 3: f"w{i}"} for i, layer in enumerate(layers)})
    export = dict(input_names=["input"], output_names=layers, dynamic_axes=dynamic, opset_version=a.opset)
    try:
        torch.onnx.export(net, (x,), a.out, dynamo=False, **export)
    except TypeError:  # a torch without the dynamo argument
        torch.onnx.export(net, (x,), a.out, **export)
    print(f"wrote {a.out}")

    try:
        import numpy as np
        import onnxruntime
    except ImportError:
        print("(onnxruntime is not installed: the file was not run here)")
    else:
        y = torch.randn(2, 3, 256, 320)
        with torch.no_grad():
            want = [t.numpy() for t in net(y)]
        got = onnxruntime.InferenceSession(a.out, providers=["CPUExecutionProvider"]).run(layers, {"input": y.numpy()})
        worst = max(float(np.abs(g - w).max() / (np.abs(w).max() + 1e-12)) for g, w in zip(got, want))
        print(f"onnxruntime at 2×3×256×320: largest difference from PyTorch {worst:.2e} of the map's range")
        if worst > 1e-3:
            sys.exit("the ONNX file does not reproduce the network at another size; it cannot be used as it is")
    print(f"use it:  kensa train --data DIR --backbone-onnx {a.out} --layers {','.join(layers)} --out model.kensa")


if __name__ == "__main__":
    main()
