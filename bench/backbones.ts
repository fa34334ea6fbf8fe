/**
 * Backbone throughput: kensa (ONNX graph on onnxruntime-node) against the same network in PyTorch, on this
 * machine, in the same run, at 224×224 with batch 1 and 16. Writes bench/out/backbones.json and prints a
 * Markdown table for BENCHMARKS.md.
 *
 *   npx tsx bench/backbones.ts --python /path/to/venv/bin/python [--seconds 5] [--backbones a,b]
 *
 * EfficientNet-Lite uses the real weights (cache or download); the ResNets use random-initialised
 * torchvision-layout weights written by the PyTorch side (speed does not depend on the values).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/backbone/backbone.js';
import { backboneNames, getBackbone } from '../src/backbone/registry.js';
import { resolveWeights } from '../src/backbone/weights.js';

const { values } = parseArgs({
  options: {
    python: { type: 'string', default: 'python3' },
    seconds: { type: 'string', default: '5' },
    backbones: { type: 'string', default: backboneNames().join(',') },
    size: { type: 'string', default: '224' },
  },
});
const seconds = Number(values.seconds);
const size = Number(values.size);
const batches = [1, 16];
const here = new URL('.', import.meta.url).pathname;

const randomDir = mkdtempSync(join(tmpdir(), 'kensa-bench-'));
execFileSync(values.python!, [join(here, 'backbones_torch.py'), '--write-random-resnets', randomDir], {
  stdio: 'inherit',
});

async function kensaThroughput(backbone: Backbone, batch: number): Promise<number> {
  const x = new Float32Array(batch * 3 * size * size).map(() => Math.random() - 0.5);
  await backbone.extract(x, batch, size, size); // warm-up
  let n = 0;
  const start = performance.now();
  for (;;) {
    await backbone.extract(x, batch, size, size);
    n++;
    const elapsed = (performance.now() - start) / 1000;
    if (elapsed >= seconds && n >= 2) return (n * batch) / elapsed;
  }
}

const rows: { backbone: string; batch: number; kensa: number; torch: number }[] = [];
let torchVersion = '';
for (const name of values.backbones!.split(',')) {
  const spec = getBackbone(name);
  const weights =
    spec.architecture.family === 'resnet'
      ? join(randomDir, `${name}-random.pth`)
      : (await resolveWeights(spec)).path;
  const backbone = await Backbone.load(name, { weights });
  const ours: Record<number, number> = {};
  for (const b of batches) ours[b] = await kensaThroughput(backbone, b);
  await backbone.dispose();
  const torchOut = JSON.parse(
    execFileSync(
      values.python!,
      [
        join(here, 'backbones_torch.py'),
        '--backbone',
        name,
        '--weights',
        weights,
        '--batches',
        batches.join(','),
        '--seconds',
        String(seconds),
        '--size',
        String(size),
      ],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n')
      .at(-1)!,
  ) as { torch: string; images_per_s: Record<string, number> };
  torchVersion = torchOut.torch;
  for (const b of batches) {
    rows.push({ backbone: name, batch: b, kensa: ours[b], torch: torchOut.images_per_s[String(b)] });
    console.error(
      `${name} batch ${b}: kensa ${ours[b].toFixed(1)} img/s, PyTorch ${torchOut.images_per_s[String(b)].toFixed(1)} img/s`,
    );
  }
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores, Node ${process.version}, PyTorch ${torchVersion}`;
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', 'backbones.json'), JSON.stringify({ machine, size, seconds, rows }, null, 2));
console.log(`Machine: ${machine}; input ${size}×${size}, float32, features up to stride 16.\n`);
console.log('| backbone | batch | kensa (img/s) | PyTorch (img/s) | kensa / PyTorch |');
console.log('|---|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${r.backbone} | ${r.batch} | ${r.kensa.toFixed(1)} | ${r.torch.toFixed(1)} | ${(r.kensa / r.torch).toFixed(2)}× |`,
  );
}
