"""PyTorch definitions used by the developer tools: torchvision-compatible ResNets (same state_dict keys)
at any width, and EfficientNet-Lite from the PyPI package efficientnet_lite_pytorch.

Developer-only: kensa never runs Python."""
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp, planes, stride=1, down=None, width_factor=1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = down

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp, planes, stride=1, down=None, width_factor=1.0):
        super().__init__()
        w = int(planes * width_factor)
        self.conv1 = nn.Conv2d(inp, w, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2 = nn.Conv2d(w, w, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w)
        self.conv3 = nn.Conv2d(w, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = down

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class ResNet(nn.Module):
    """torchvision's ResNet (v1.5: stride on the 3x3 conv), truncated after layer3; base=64 is torchvision."""

    def __init__(self, block, layers, base=64, width_factor=1.0):
        super().__init__()
        self.inp = base
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, base, layers[0], 1, width_factor)
        self.layer2 = self._make(block, base * 2, layers[1], 2, width_factor)
        self.layer3 = self._make(block, base * 4, layers[2], 2, width_factor)

    def _make(self, block, planes, n, stride, width_factor):
        down = None
        if stride != 1 or self.inp != planes * block.expansion:
            down = nn.Sequential(nn.Conv2d(self.inp, planes * block.expansion, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes * block.expansion))
        blocks = [block(self.inp, planes, stride, down, width_factor)]
        self.inp = planes * block.expansion
        blocks += [block(self.inp, planes, 1, None, width_factor) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        return [f1, f2, self.layer3(f2)]


def resnet18(base=64):
    return ResNet(BasicBlock, [2, 2, 2], base)


def wide_resnet50_2(base=64):
    return ResNet(Bottleneck, [3, 4, 6], base, width_factor=2.0)


def lite_features(net, x):
    """Outputs of the last block at strides 4, 8 and 16 of an efficientnet_lite_pytorch network."""
    outs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o)) for b in net._blocks]
    try:
        net.extract_features(x)
    finally:
        for h in hooks:
            h.remove()
    by_stride = {}
    for o in outs:
        by_stride[round(x.shape[-1] / o.shape[-1])] = o
    return [by_stride[4], by_stride[8], by_stride[16]]


def randomize_batchnorm(net, gen):
    """Gives every BatchNorm non-trivial statistics, so that folding is really tested."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen) * 0.1
            m.running_mean = torch.randn(n, generator=gen) * 0.1
            m.running_var = torch.rand(n, generator=gen) + 0.5


def lite_truncated(net, size=224):
    """A forward function computing only what the features need (stem and blocks up to the last one at
    stride 16), the same work kensa's feature graph does. Returns f(x) -> [stride 4, 8, 16]."""
    strides = []
    hooks = [b.register_forward_hook(lambda m, i, o: strides.append(round(size / o.shape[-1]))) for b in net._blocks]
    with torch.no_grad():
        net.extract_features(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    taps = [max(i for i, s in enumerate(strides) if s == want) for want in (4, 8, 16)]

    def forward(x):
        x = net._swish(net._bn0(net._conv_stem(x)))
        outs = []
        for i, block in enumerate(net._blocks[: taps[-1] + 1]):
            x = block(x)
            if i in taps:
                outs.append(x)
        return outs

    return forward
