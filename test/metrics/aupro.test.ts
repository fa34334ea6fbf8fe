import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { aupro, pixelMetrics } from '../../src/metrics/aupro.js';
import { auroc } from '../../src/metrics/classification.js';
import { fixture } from '../helpers.js';

const f = JSON.parse(readFileSync(fixture('metrics', 'aupro.json'), 'utf8')) as {
  size: number;
  maps: number[][];
  masks: number[][];
  aupro: number;
};
const items = f.maps.map((m, i) => ({
  map: Float32Array.from(m),
  mask: Uint8Array.from(f.masks[i]),
  width: f.size,
  height: f.size,
}));

describe('AUPRO', () => {
  it('matches the brute-force reference in tools/make_metric_fixtures.py', () => {
    expect(Math.abs(aupro(items).value! - f.aupro)).toBeLessThan(1e-6);
  });

  it('its pixel AUROC, from the same sorted pixels, equals the plain AUROC of all pixels', () => {
    const scores = items.flatMap((it) => Array.from(it.map));
    const labels = items.flatMap((it) => Array.from(it.mask));
    expect(pixelMetrics(items).pixel_auroc.value).toBeCloseTo(auroc(scores, labels).value!, 12);
  });

  it('is 1 for a perfect map and null without defect regions', () => {
    const mask = new Uint8Array(64);
    mask.fill(1, 10, 14);
    const map = Float32Array.from(mask, (v) => v * 2 + 0.1);
    expect(aupro([{ map, mask, width: 8, height: 8 }]).value).toBeCloseTo(1, 12);
    expect(aupro([{ map, mask: new Uint8Array(64), width: 8, height: 8 }])).toEqual({
      value: null,
      reason: 'no defect regions in the masks',
    });
  });
});
