/**
 * kensa export, both methods: the ONNX graph run by onnxruntime (Node) on the pixels kensa feeds its
 * backbone gives kensa predict's scores (1e-4 relative) and kensa's maps (1e-3 of the map's maximum);
 * the metadata says what a caller needs; the Triton repository and the web folder hold their files; a
 * tiled model's tile and map graphs, tiled and stitched by the rule in kensa.json, give kensa's scores and
 * maps (both methods); triton and web refuse tiled models with the reason. The Python and browser proofs
 * are in python.test.ts and web.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { getMethod, UNSUPERVISED_METHODS } from '../../src/models/registry.js';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { exportOnnx } from '../../src/export/onnx.js';
import { inputRects } from '../../src/image/tiles.js';
import { Inspector } from '../../src/pipeline/engine/inspector.js';
import { loadModel } from '../../src/pipeline/contracts/model-file.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kensa-export-'));
const data = join(dir, 'data');
const kensa = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
};

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 96, train: 16, testGood: 4, testPerDefect: 3, seed: 31 });
});

describe.each(UNSUPERVISED_METHODS)('kensa export --format onnx (%s)', (method) => {
  const model = join(dir, `${method}.kensa`);
  const out = join(dir, `${method}-onnx`);
  let predicted: Map<string, { score: number; verdict: string }>;

  beforeAll(() => {
    kensa('train', '--method', method, '--data', data, '--size', '96', '--out', model);
    const results = join(dir, `${method}-predict`);
    kensa('predict', '--model', model, '--out', results, '--no-overlays', join(data, 'test'));
    const json = JSON.parse(readFileSync(join(results, 'predictions.json'), 'utf8'));
    predicted = new Map(json.predictions.map((p: { file: string }) => [p.file, p]));
  });

  it('writes one graph whose scores and maps are kensa’s', async () => {
    const r = kensa('export', '--model', model, '--out', out);
    expect(r.stdout).toContain('image uint8 [N, ');
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    expect(session.inputNames).toEqual(['image']);
    expect(session.outputNames).toEqual(['anomaly_map', 'score']);
    const m = await loadModel(model);
    const inspector = await Inspector.open(m);
    let n = 0;
    try {
      for await (const s of inspector.score([...predicted.keys()].map((path) => ({ path })))) {
        const g = s.image.geometry;
        const o = await session.run({
          image: new ort.Tensor('uint8', s.image.rgb, [1, g.inputHeight, g.inputWidth, 3]),
        });
        const score = (o.score.data as Float32Array)[0];
        const map = o.anomaly_map.data as Float32Array;
        expect(o.anomaly_map.dims).toEqual([1, g.inputHeight, g.inputWidth]);
        const p = predicted.get(s.item.path)!;
        expect(Math.abs(score - p.score) / p.score).toBeLessThan(1e-4);
        let err = 0;
        for (let i = 0; i < map.length; i++) err = Math.max(err, Math.abs(map[i] - s.map[i]));
        expect(err / s.mapMax).toBeLessThan(1e-3);
        n++;
      }
    } finally {
      await inspector.dispose();
    }
    expect(n).toBe(predicted.size);
    // a batch of several images gives the same scores as one at a time
    const info = JSON.parse(readFileSync(join(out, 'kensa.json'), 'utf8'));
    expect(info).toMatchObject({ method, backbone: 'efficientnet_lite0', threshold: { name: 'fpr0' } });
    expect(info.thresholds.fpr0).toBe(m.meta.thresholds.fpr0);
    expect(info.input).toMatchObject({ name: 'image', type: 'uint8', layout: 'NHWC' });
    // PaDiM's grid fixes the input size; PatchCore's graph takes any size (aspect kept)
    expect(info.input.height).toBe(getMethod(method).fixedGrid ? 96 : null);
  });

  it('a batch gives the same scores as single images; the metadata is in the graph', async () => {
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    const meta = JSON.parse(
      readFileSync(join(out, 'kensa.json'), 'utf8'),
    ) as import('../../src/export/onnx.js').ExportInfo;
    const m = await loadModel(model);
    const inspector = await Inspector.open(m);
    const rgbs: Uint8Array[] = [];
    const scores: number[] = [];
    try {
      for await (const s of inspector.score([...predicted.keys()].slice(0, 3).map((path) => ({ path })))) {
        rgbs.push(s.image.rgb);
        scores.push(s.score);
      }
    } finally {
      await inspector.dispose();
    }
    const batch = new Uint8Array(rgbs.length * rgbs[0].length);
    rgbs.forEach((r, i) => batch.set(r, i * r.length));
    const o = await session.run({ image: new ort.Tensor('uint8', batch, [rgbs.length, 96, 96, 3]) });
    const got = Array.from(o.score.data as Float32Array);
    got.forEach((s, i) => expect(Math.abs(s - scores[i]) / scores[i]).toBeLessThan(1e-4));
    const { info } = await exportOnnx(m);
    expect(info).toEqual(meta);
  });
});

describe('kensa export: triton, web, refusals', () => {
  const model = () => join(dir, 'patchcore.kensa');

  it('triton: a model repository with config.pbtxt and the graph', () => {
    const out = join(dir, 'triton');
    kensa(
      'export',
      '--model',
      model(),
      '--out',
      out,
      '--format',
      'triton',
      '--name',
      'tiles',
      '--max-batch',
      '4',
    );
    const config = readFileSync(join(out, 'tiles', 'config.pbtxt'), 'utf8');
    expect(config).toContain('name: "tiles"');
    expect(config).toContain('backend: "onnxruntime"');
    expect(config).toContain('max_batch_size: 4');
    expect(config).toMatch(/dynamic_batching \{\s+max_queue_delay_microseconds: 5000/);
    expect(existsSync(join(out, 'tiles', '1', 'model.onnx'))).toBe(true);
  });

  it('web: the page, the graph and onnxruntime-web’s files', () => {
    const out = join(dir, 'web');
    const r = kensa('export', '--model', model(), '--out', out, '--format', 'web');
    expect(r.stdout).toContain('index.html');
    for (const f of [
      'index.html',
      'model.onnx',
      'model.js',
      'ort.wasm.min.js',
      'ort-wasm-simd-threaded.wasm',
    ])
      expect(existsSync(join(out, f)), f).toBe(true);
    const page = readFileSync(join(out, 'index.html'), 'utf8');
    expect(page).toContain('画像をここにドロップ');
    expect(page).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
  });

  it('refuses a tiled model for triton and web, an unknown format and a bad name, saying why', async () => {
    const tiled = join(dir, 'tiled-refused.kensa');
    kensa('train', '--data', data, '--size', '96', '--tile', '64', '--overlap', '32', '--out', tiled);
    const web = spawnSync(
      process.execPath,
      [BIN, 'export', '--model', tiled, '--out', join(dir, 'tw'), '--format', 'web'],
      {
        encoding: 'utf8',
      },
    );
    expect(web.status).toBe(2);
    expect(web.stderr).toContain('--format onnx writes its tile and map graphs with the stitching rule');
    const bad = spawnSync(
      process.execPath,
      [BIN, 'export', '--model', model(), '--out', dir, '--format', 'tflite'],
      {
        encoding: 'utf8',
      },
    );
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("Expected one of onnx, triton, web for --format but received 'tflite'");
    const name = spawnSync(
      process.execPath,
      [BIN, 'export', '--model', model(), '--out', join(dir, 't2'), '--format', 'triton', '--name', '../x'],
      { encoding: 'utf8' },
    );
    expect(name.status).toBe(2);
    expect(name.stderr).toContain("for --name but received '../x'");
  });
});

describe.each(UNSUPERVISED_METHODS)('kensa export of a tiled model (%s): tile and map graphs', (method) => {
  it('tiled and stitched by the rule in kensa.json, the graphs give kensa’s scores and maps', async () => {
    const model = join(dir, `tiled-${method}.kensa`);
    const out = join(dir, `tiled-${method}-onnx`);
    kensa(
      'train',
      '--method',
      method,
      '--data',
      data,
      '--size',
      '96',
      '--tile',
      '64',
      '--overlap',
      '32',
      '--out',
      model,
    );
    const r = kensa('export', '--model', model, '--out', out);
    expect(r.stdout).toContain('exported (onnx, tiled)');
    const info = JSON.parse(readFileSync(join(out, 'kensa.json'), 'utf8'));
    expect(info.tiling).toMatchObject({
      size: 64,
      overlap: 32,
      graphs: { tile: 'tile.onnx', map: 'map.onnx' },
    });
    expect(info.tiling.rule).toContain('tile offsets are');
    const tileGraph = await ort.InferenceSession.create(join(out, 'tile.onnx'));
    const mapGraph = await ort.InferenceSession.create(join(out, 'map.onnx'));
    const results = join(dir, `tiled-${method}-predict`);
    kensa('predict', '--model', model, '--out', results, '--no-overlays', join(data, 'test'));
    const predicted = new Map<string, { score: number }>(
      JSON.parse(readFileSync(join(results, 'predictions.json'), 'utf8')).predictions.map(
        (p: { file: string }) => [p.file, p],
      ),
    );
    const m = await loadModel(model);
    const s = info.tiling.stride as number;
    const inspector = await Inspector.open(m);
    try {
      for await (const k of inspector.score([...predicted.keys()].map((path) => ({ path })))) {
        const { inputWidth: W, inputHeight: H } = k.image.geometry;
        const grid = new Float32Array((H / s) * (W / s));
        let best = { peak: -Infinity, score: -Infinity };
        for (const rect of inputRects(W, H, m.meta.preprocess.tile)) {
          // the tile's pixels and its own cells
          const T = rect.width;
          const pixels = new Uint8Array(T * T * 3);
          for (let y = 0; y < T; y++)
            pixels.set(
              k.image.rgb.subarray(((rect.y + y) * W + rect.x) * 3, ((rect.y + y) * W + rect.x + T) * 3),
              y * T * 3,
            );
          const c = T / s;
          const owned = new Float32Array(c * c);
          const o = rect.owned;
          for (let y = o.y0 / s; y < o.y1 / s; y++)
            for (let x = o.x0 / s; x < o.x1 / s; x++) owned[y * c + x] = 1;
          const feeds: Record<string, ort.Tensor> = { image: new ort.Tensor('uint8', pixels, [1, T, T, 3]) };
          if (tileGraph.inputNames.includes('owned'))
            feeds.owned = new ort.Tensor('float32', owned, [1, c, c]);
          const t = await tileGraph.run(feeds);
          const g = t.grid.data as Float32Array;
          for (let y = o.y0 / s; y < o.y1 / s; y++)
            for (let x = o.x0 / s; x < o.x1 / s; x++)
              grid[(rect.y / s + y) * (W / s) + rect.x / s + x] = g[y * c + x];
          if (t.peak && (t.peak.data as Float32Array)[0] > best.peak)
            best = { peak: (t.peak.data as Float32Array)[0], score: (t.score.data as Float32Array)[0] };
        }
        const mp = await mapGraph.run({
          grid: new ort.Tensor('float32', grid, [1, H / s, W / s]),
          size: new ort.Tensor('int64', BigInt64Array.from([BigInt(H), BigInt(W)]), [2]),
        });
        const map = mp.anomaly_map.data as Float32Array;
        // the rule: the score of the tile with the largest peak where the method has its own score
        const score = tileGraph.outputNames.includes('score')
          ? best.score
          : (mp.map_max.data as Float32Array)[0];
        const p = predicted.get(k.item.path)!;
        expect(Math.abs(score - p.score) / p.score).toBeLessThan(1e-4);
        let err = 0;
        for (let i = 0; i < map.length; i++) err = Math.max(err, Math.abs(map[i] - k.map[i]));
        expect(err / k.mapMax).toBeLessThan(1e-3);
      }
    } finally {
      await inspector.dispose();
    }
  });
});
