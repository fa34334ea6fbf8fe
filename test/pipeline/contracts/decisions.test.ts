import { describe, expect, it } from 'vitest';
import type { Geometry } from '../../../src/image/preprocess.js';
import {
  checkSizeRule,
  decide,
  mapScale,
  resolveThreshold,
} from '../../../src/pipeline/contracts/decisions.js';
import { mulberry32 } from '../../../src/util/random.js';

/** A processed image shown at half the original resolution (original pixels = 2 × processed). */
function geometryOf(width: number, height: number, scale: number): Geometry {
  return {
    resizedWidth: width,
    resizedHeight: height,
    left: 0,
    top: 0,
    inputWidth: width,
    inputHeight: height,
    scaleX: scale,
    scaleY: scale,
  };
}

/** A noisy gray surface with a dark 8×4 speck at (60, 40), and a smooth map bump around it (σ = 8). */
function speckScene() {
  const width = 128;
  const height = 96;
  const rand = mulberry32(5);
  const rgb = new Uint8Array(width * height * 3);
  const map = new Float32Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const inSpeck = x >= 60 && x < 68 && y >= 40 && y < 44;
      const g = 120 + (rand() - 0.5) * 8 + (inSpeck ? -45 : 0);
      rgb.fill(Math.round(g), (y * width + x) * 3, (y * width + x) * 3 + 3);
      map[y * width + x] = 0.5 + 4.5 * Math.exp(-((x - 63.5) ** 2 + (y - 41.5) ** 2) / (2 * 8 * 8));
    }
  let mapMax = 0;
  for (const v of map) mapMax = Math.max(mapMax, v);
  return { width, height, rgb, map, mapMax };
}

describe('decide', () => {
  it('fits the box to the defect, in original pixels', () => {
    const s = speckScene();
    const image = { width: 256, height: 192, geometry: geometryOf(s.width, s.height, 2) };
    const loose = decide({ map: s.map, mapMax: s.mapMax, score: s.mapMax, image }, 2);
    const tight = decide(
      { map: s.map, mapMax: s.mapMax, score: s.mapMax, image: { ...image, rgb: s.rgb } },
      2,
    );
    expect(loose.verdict).toBe('NG');
    expect(loose.regions).toHaveLength(1);
    // the map's region is far larger than the speck
    expect(loose.regions[0].width).toBeGreaterThan(40);
    // the fitted box is the speck: x 60..67, y 40..43 processed → 120..135, 80..87 original
    expect(tight.regions[0]).toMatchObject({ x: 120, y: 80, width: 16, height: 8 });
    // its area: the speck's 32 processed pixels, 128 original ones; the map's region is far larger
    expect(tight.regions[0].area).toBe(128);
    expect(loose.regions[0].area).toBeGreaterThan(1000);
    expect(tight.regions[0].peak_score).toBeCloseTo(s.mapMax, 5);
  });

  it('keeps the core box when nothing stands out in the image (a change of texture)', () => {
    const s = speckScene();
    const flat = new Uint8Array(s.rgb.length).fill(120);
    const image = { width: 128, height: 96, geometry: geometryOf(s.width, s.height, 1), rgb: flat };
    const d = decide({ map: s.map, mapMax: s.mapMax, score: s.mapMax, image }, 2);
    const r = d.regions[0];
    // the core: where the map is above 3.5 (halfway from the threshold to the peak), about ±6.8 px
    expect(r.width).toBeGreaterThanOrEqual(12);
    expect(r.width).toBeLessThanOrEqual(16);
    expect(r.x + r.width / 2).toBeCloseTo(64, 0);
  });

  it('puts the map on the scale of the score: an NG image has regions, an OK one none', () => {
    const s = speckScene();
    const image = { width: 128, height: 96, geometry: geometryOf(s.width, s.height, 1) };
    // a PatchCore-like score: twice the map's maximum
    const r = { map: s.map, mapMax: s.mapMax, score: 2 * s.mapMax, image };
    expect(mapScale(r)).toBe(2);
    const ng = decide(r, 4);
    expect(ng.verdict).toBe('NG');
    expect(ng.regions[0].peak_score).toBeCloseTo(2 * s.mapMax, 5);
    expect(ng.normalized_score).toBeCloseTo((2 * s.mapMax) / 4, 10);
    const ok = decide(r, 10.5);
    expect(ok.verdict).toBe('OK');
    expect(ok.regions).toHaveLength(0);
  });

  it('gives a 1×1 image a 1×1 box inside it', () => {
    const map = new Float32Array(16 * 16).fill(3);
    const d = decide(
      { map, mapMax: 3, score: 3, image: { width: 1, height: 1, geometry: geometryOf(16, 16, 1 / 16) } },
      1,
    );
    expect(d.regions).toEqual([{ x: 0, y: 0, width: 1, height: 1, area: 1, peak_score: 3 }]);
  });
});

describe('sizes in millimetres and the size rule', () => {
  /** Two plateaus on a flat map: 4×4 px at (18, 18), 24×24 px at (68, 48). */
  function twoBumps(withLarge: boolean) {
    const [W, H] = [128, 96];
    const map = new Float32Array(W * H).fill(0.5);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        if (x >= 18 && x < 22 && y >= 18 && y < 22) map[y * W + x] = 5;
        if (withLarge && x >= 68 && x < 92 && y >= 48 && y < 72) map[y * W + x] = 4;
      }
    return { map, mapMax: 5, score: 5, image: { width: W, height: H, geometry: geometryOf(W, H, 1) } };
  }

  it('gives every region its size in mm; a region below the rule is listed but does not count', () => {
    const both = decide(twoBumps(true), 2, { mmPerPixel: 0.1, minDefectMm: 1 });
    expect(both.verdict).toBe('NG');
    const [small, large] = [...both.regions].sort((a, b) => a.area - b.area);
    expect(small).toMatchObject({ width: 4, height: 4, counts: false });
    expect(small.width_mm).toBeCloseTo(0.4, 10);
    expect(small.area_mm2).toBeCloseTo(16 * 0.01, 10);
    expect(large).toMatchObject({ width: 24, height: 24, counts: true });
    expect(large.height_mm).toBeCloseTo(2.4, 10);
    // only the small defect: the image is OK, with its region listed as not counting
    const speck = decide(twoBumps(false), 2, { mmPerPixel: 0.1, minDefectMm: 1 });
    expect(speck.verdict).toBe('OK');
    expect(speck.regions).toEqual([expect.objectContaining({ width: 4, counts: false })]);
    // sizes without a rule: nothing changes but the mm columns
    const plain = decide(twoBumps(false), 2, { mmPerPixel: 0.1 });
    expect(plain.verdict).toBe('NG');
    expect(plain.regions[0].counts).toBeUndefined();
  });

  it('the size rule needs the pixel size', () => {
    expect(() => checkSizeRule({ minDefectMm: 1 })).toThrow(
      '--min-defect-mm needs the size of a pixel: give --mm-per-pixel (or train the model with it)',
    );
  });
});

describe('resolveThreshold', () => {
  it('prefers the custom threshold, then fpr0, and explains what is missing', () => {
    expect(resolveThreshold({ fpr0: 2, quantile: 1, custom: 3 })).toEqual({ name: 'custom', value: 3 });
    expect(resolveThreshold({ fpr0: 2, quantile: 1 })).toEqual({ name: 'fpr0', value: 2 });
    expect(resolveThreshold({ fpr0: 2, quantile: 1 }, 1.5)).toEqual({ name: 'value', value: 1.5 });
    expect(() => resolveThreshold({ fpr0: 2, quantile: 1 }, 'f1')).toThrow(/kensa test --save-model/);
    expect(() => resolveThreshold({ fpr0: 2, quantile: 1 }, 0)).toThrow(/at least/);
  });
});
