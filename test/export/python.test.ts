/**
 * The proof of equality with Python's onnxruntime (tools/onnx_check.py), on Magnetic Tile Defects: a
 * PatchCore model trained here on a share of MTD's good images, exported, and run by Python on MTD test
 * images of every defect type. The script gets the pixels kensa fed its backbone (PNG at the input size),
 * kensa predict's scores and kensa's maps; scores must agree within 1e-4 relative, maps within 1e-3, and
 * the verdicts exactly. Also: Triton's own ModelConfig schema (tritonclient) accepts the written
 * config.pbtxt and rejects a damaged one.
 *
 * Needs a Python with onnxruntime, numpy and Pillow (KENSA_PYTHON, else python3; .ci/run makes one) and
 * ../shared/datasets/mtd; each part is skipped, with a message, where its requirement is absent.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Inspector } from '../../src/pipeline/engine/inspector.js';
import { loadModel } from '../../src/pipeline/contracts/model-file.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const TOOLS = new URL('../../tools/', import.meta.url).pathname;
const MTD = resolve(new URL('../../../shared/datasets/mtd', import.meta.url).pathname);
const PYTHON = process.env.KENSA_PYTHON ?? 'python3';
const has = (modules: string) =>
  spawnSync(PYTHON, ['-c', `import ${modules}`], { encoding: 'utf8' }).status === 0;
const onnxruntime = has('onnxruntime, numpy, PIL');
const triton = has('tritonclient.grpc.model_config_pb2, google.protobuf');
const mtd = existsSync(join(MTD, 'train', 'good'));
if (!onnxruntime)
  console.warn(
    `skipping the Python onnxruntime proof: ${PYTHON} lacks onnxruntime, numpy or Pillow (pip install onnxruntime numpy pillow; set KENSA_PYTHON)`,
  );
if (!mtd) console.warn(`skipping the Python onnxruntime proof: ${MTD} is absent`);
if (!triton)
  console.warn(
    `skipping the Triton config check: ${PYTHON} lacks tritonclient (pip install 'tritonclient[grpc]')`,
  );

const dir = mkdtempSync(join(tmpdir(), 'kensa-export-py-'));
const model = join(dir, 'mtd.kensa');
const kensa = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
};

describe.skipIf(!onnxruntime || !mtd)('the exported graph in Python onnxruntime (MTD)', () => {
  it('gives kensa predict’s scores and verdicts and kensa’s maps', async () => {
    kensa('train', '--data', join(MTD, 'train', 'good', '*0.jpg'), '--size', '128', '--out', model);
    kensa('export', '--model', model, '--out', join(dir, 'onnx'));
    // three test images of each defect type and of the good ones
    const test = join(MTD, 'test');
    const files = readdirSync(test)
      .sort()
      .flatMap((type) =>
        readdirSync(join(test, type))
          .sort()
          .slice(0, 3)
          .map((f) => join(test, type, f)),
      );
    kensa('predict', '--model', model, '--out', join(dir, 'predict'), '--no-overlays', ...files);
    const predicted = new Map<string, { score: number; verdict: string }>(
      JSON.parse(readFileSync(join(dir, 'predict', 'predictions.json'), 'utf8')).predictions.map(
        (p: { file: string }) => [p.file, p],
      ),
    );
    // the pixels kensa's backbone saw and kensa's maps
    const cases = join(dir, 'cases');
    mkdirSync(cases);
    const list: object[] = [];
    const inspector = await Inspector.open(await loadModel(model));
    try {
      for await (const s of inspector.score(files.map((path) => ({ path })))) {
        const g = s.image.geometry;
        const name = `${list.length}`;
        await sharp(s.image.rgb, { raw: { width: g.inputWidth, height: g.inputHeight, channels: 3 } })
          .png()
          .toFile(join(cases, `${name}.png`));
        writeFileSync(join(cases, `${name}.f32`), s.map);
        const p = predicted.get(s.item.path)!;
        list.push({
          file: s.item.path,
          input: `${name}.png`,
          map: `${name}.f32`,
          score: p.score,
          verdict: p.verdict,
        });
      }
    } finally {
      await inspector.dispose();
    }
    writeFileSync(join(cases, 'cases.json'), JSON.stringify({ cases: list }));
    const r = spawnSync(
      PYTHON,
      [join(TOOLS, 'onnx_check.py'), '--onnx', join(dir, 'onnx', 'model.onnx'), '--cases', cases],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const { summary } = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ images: files.length, failed: 0 });
    expect(summary.worst_score_rel_error).toBeLessThan(1e-4);
    expect(summary.worst_map_rel_error).toBeLessThan(1e-3);
  });
});

describe.skipIf(!triton || !mtd)('the Triton configuration against Triton’s ModelConfig schema', () => {
  it('accepts the written config.pbtxt and refuses a damaged one', () => {
    if (!existsSync(model))
      kensa('train', '--data', join(MTD, 'train', 'good', '*0.jpg'), '--size', '128', '--out', model);
    const out = join(dir, 'triton');
    kensa('export', '--model', model, '--out', out, '--format', 'triton');
    const config = join(out, 'kensa', 'config.pbtxt');
    const check = () =>
      spawnSync(PYTHON, [join(TOOLS, 'check_triton_config.py'), config], { encoding: 'utf8' });
    const ok = check();
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).config).toMatchObject({
      name: 'kensa',
      backend: 'onnxruntime',
      maxBatchSize: 8,
    });
    writeFileSync(config, readFileSync(config, 'utf8').replace('TYPE_UINT8', 'TYPE_UINT9'));
    const bad = check();
    expect(bad.status).not.toBe(0);
    writeFileSync(config, readFileSync(config, 'utf8').replace('TYPE_UINT9', 'TYPE_FP32'));
    const wrongType = check();
    expect(wrongType.status).toBe(1);
    expect(JSON.parse(wrongType.stdout).problems).toContain('the input must be image, TYPE_UINT8, [H, W, 3]');
  });
});
