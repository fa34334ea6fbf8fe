/**
 * A damaged model fails closed: a file whose tensors differ from those it was saved with is refused by
 * its checksum, statistics no backbone could give are refused when the model loads, and a score that is
 * not a number stops the run (exit 1, HTTP 500) instead of becoming an OK verdict.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import type { PadimState } from '../../src/models/padim/model.js';
import type { PatchcoreState } from '../../src/models/patchcore/model.js';
import { loadModel, saveModel, type KensaModel } from '../../src/pipeline/contracts/model-file.js';
import { predict } from '../../src/pipeline/verbs/predict.js';
import { train } from '../../src/pipeline/verbs/train.js';
import { InspectionService } from '../../src/serve/server.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'kensa-damaged-'));
const data = join(dir, 'data');
const files = { patchcore: join(dir, 'patchcore.kensa'), padim: join(dir, 'padim.kensa') };
const testImages = () => [join(data, 'test', 'good'), join(data, 'test', 'dust')];

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 10, testGood: 2, testPerDefect: 2, seed: 9 });
  await train({ data, out: files.patchcore, method: 'patchcore', preprocess: { mode: 'resize', size: 64 } });
  await train({ data, out: files.padim, method: 'padim', d: 8, preprocess: { mode: 'resize', size: 64 } });
});

/** A copy of the model file with its bytes at `at` (an offset into the tensor data) changed. */
function flipped(file: string, name: string, fraction: number, mask = 0x40): string {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  const [begin, end] = header[name].data_offsets;
  const at = 8 + headerLength + begin + Math.floor((end - begin) * fraction);
  bytes[at] ^= mask;
  const out = join(dir, `flipped-${name}-${fraction}.kensa`);
  writeFileSync(out, bytes);
  return out;
}

/** A model saved with changed statistics (its checksum written for them: only the checks can refuse it). */
async function crafted(file: string, change: (m: KensaModel) => void, name: string): Promise<string> {
  const m = await loadModel(file);
  change(m);
  const out = join(dir, `${name}.kensa`);
  await saveModel(out, m);
  return out;
}

describe('a damaged model fails closed', () => {
  it.each([
    ['patchcore', 'patchcore.memory_bank', 0.5],
    ['patchcore', 'patchcore.memory_bank', 0.999],
    ['patchcore', 'calibration.scores', 0.1],
    ['padim', 'padim.precision_packed', 0.3],
    ['padim', 'padim.mean', 0.9],
  ] as const)(
    '%s: one flipped bit in %s (at %f) is refused by the checksum, naming the file',
    (method, tensor, at) => {
      const bad = flipped(files[method], tensor, at);
      const r = run('predict', '--model', bad, '--out', join(dir, `out-${tensor}-${at}`), join(data, 'test'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        `${bad}: the model file is damaged: its tensors do not match the checksum stored with them`,
      );
    },
  );

  it('statistics no backbone gives are refused when the model loads, even with a matching checksum', async () => {
    const cases: [keyof typeof files, (m: KensaModel) => void, string][] = [
      ['patchcore', (m) => (m.state as PatchcoreState).bank.fill(3e38), 'its memory bank holds 3.00e+38'],
      [
        'patchcore',
        (m) => ((m.state as PatchcoreState).bank[7] = 1.8e38),
        'its memory bank holds 1.80e+38 at element 7',
      ],
      ['patchcore', (m) => ((m.state as PatchcoreState).bank[3] = NaN), 'non-finite numbers'],
      ['padim', (m) => (m.state as PadimState).precision.fill(0), 'has 0.00 on its diagonal'],
      [
        'padim',
        (m) => {
          // a negative diagonal: not a precision at all
          const s = m.state as PadimState;
          s.precision[0] = -s.precision[0];
        },
        'outside (0, 100]',
      ],
      [
        'padim',
        (m) => {
          // diagonals in range, an off-diagonal element larger than they allow: indefinite
          const s = m.state as PadimState;
          const d = s.layout.index.length;
          s.precision[1] = s.precision[d] = 10 * Math.max(s.precision[0], s.precision[d + 1]);
        },
        'is not symmetric positive definite',
      ],
      [
        'padim',
        (m) => {
          // every 2×2 minor fine, the whole matrix indefinite (caught by the factorisation): 1 on the
          // diagonal, −0.5 elsewhere has the eigenvalue 1 − 0.5·(d − 1) < 0
          const s = m.state as PadimState;
          const d = s.layout.index.length;
          for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) s.precision[i * d + j] = i === j ? 1 : -0.5;
        },
        'is not positive definite',
      ],
      ['padim', (m) => ((m.state as PadimState).mean[5] = 5e30), 'its mean holds 5.00e+30'],
      ['patchcore', (m) => (m.meta.thresholds.fpr0 = 0), 'threshold fpr0 is 0, not above 0'],
      ['padim', (m) => (m.meta.thresholds.quantile = -1), 'threshold quantile is -1, not above 0'],
    ];
    for (const [method, change, message] of cases) {
      const bad = await crafted(
        files[method],
        change,
        `crafted-${method}-${cases.findIndex((c) => c[2] === message)}`,
      );
      await expect(loadModel(bad), message).rejects.toThrow(`${bad}: not a usable kensa model:`);
      await expect(loadModel(bad)).rejects.toThrow(message);
    }
  });

  it('a score that is not a number is an error of the run, never OK (library, command line, service)', async () => {
    const overflowing = async (method: keyof typeof files) => {
      const m = await loadModel(files[method]);
      // in memory, past the load checks: values that overflow while scoring
      if (method === 'patchcore') (m.state as PatchcoreState).bank.fill(3e38);
      else (m.state as PadimState).precision.fill(3e38);
      return m;
    };
    for (const method of ['patchcore', 'padim'] as const) {
      await expect(
        predict({ model: await overflowing(method), inputs: testImages(), out: join(dir, `nan-${method}`) }),
      ).rejects.toThrow('the model gave a score that is not a number');
    }
    // the service refuses to start with a model that gives no verdict for its warm-up image
    await expect(
      InspectionService.start({
        models: [{ name: 'damaged', model: await overflowing('patchcore') }],
        port: 0,
      }),
    ).rejects.toThrow(
      "model 'damaged' cannot be served: warm-up image: the model gave a score that is not a number",
    );
    // a model that scores the warm-up image (a uniform gray) but overflows on real images: HTTP 500 with the
    // reason, never a verdict. PaDiM fitted on that gray image has its mean there; a huge precision
    // multiplies a deviation of 0 for the gray image, and overflows for any other
    const grayData = join(dir, 'gray');
    const gray = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    mkdirSync(join(grayData, 'train', 'good'), { recursive: true });
    for (let i = 0; i < 6; i++) writeFileSync(join(grayData, 'train', 'good', `${i}.png`), gray);
    const { model: fitted } = await train({
      data: grayData,
      method: 'padim',
      d: 8,
      valFraction: 0.5,
      preprocess: { mode: 'resize', size: 64 },
    });
    (fitted.state as PadimState).precision.fill(3e38);
    const service = await InspectionService.start({ models: [{ name: 'damaged', model: fitted }], port: 0 });
    try {
      const body = readFileSync(join(data, 'test', 'good', '000.png'));
      const r = await fetch(`${service.url}/v1/inspect`, { method: 'POST', body });
      expect(r.status).toBe(500);
      const answer = (await r.json()) as { error: { status: number; message: string }; verdict?: string };
      expect(answer.verdict).toBeUndefined();
      expect(answer.error.status).toBe(500);
      expect(answer.error.message).toContain('the model gave a score that is not a number');
    } finally {
      await service.close();
    }
    // and the command line: exit 1 with the reason, no predictions written as if they were verdicts
    const damagedFile = join(dir, 'overflowing.kensa');
    await saveModel(damagedFile, await overflowing('padim'));
    // (a file with such statistics is refused when it loads: the load checks come first)
    const r = run('predict', '--model', damagedFile, '--out', join(dir, 'nan-cli'), join(data, 'test'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${damagedFile}: not a usable kensa model`);
  });

  it('a model without a checksum (written before kensa stored one) still loads', async () => {
    const bytes = readFileSync(files.padim);
    const { tensors, metadata } = parseSafetensors(bytes);
    const { tensors_sha256: _gone, ...older } = metadata;
    const out = join(dir, 'older.kensa');
    writeFileSync(out, serializeSafetensors([...tensors], older));
    expect((await loadModel(out)).meta.method).toBe('padim');
  });
});
