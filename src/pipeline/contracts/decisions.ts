/**
 * Decisions, in one place for every consumer (kensa test, kensa predict, the library, a service): which
 * threshold a choice stands for, the OK/NG verdict, and the defect regions in original-image pixels.
 *
 * An image is NG when its score is above the threshold. Its regions are where the anomaly map, scaled so
 * that its maximum equals the image score, is above the same threshold — so an NG image always has at
 * least one region and an OK image none. For a method whose image score is the map's maximum (PaDiM) the
 * scale is 1; for PatchCore it is its re-weighting of the peak patch. (Pixel metrics use the map itself.)
 */
import { toOriginal, type Geometry } from '../../image/preprocess.js';
import { findRegions, tightBox } from '../../postprocess/regions.js';
import { KensaError, unknownChoice } from '../../util/errors.js';
import type { Thresholds } from './model-file.js';

export const THRESHOLD_CHOICES = ['fpr0', 'f1', 'quantile', 'custom'] as const;
export type ThresholdName = (typeof THRESHOLD_CHOICES)[number];
export type ThresholdChoice = ThresholdName | number;

/** How a model gets the thresholds that training does not store. */
const HOW_TO_GET: Record<string, string> = {
  f1: 'run kensa test --save-model on labelled images first, or choose fpr0, quantile or a number',
  custom: 'set one with kensa threshold --model MODEL --set VALUE',
  quantile:
    'a classifier written before kensa 0.2 stored none; choose fpr0, f1 or a number, or train it again',
};

/** The smallest threshold accepted: a threshold at or below 0 makes every image NG. */
export const MIN_THRESHOLD = 1e-6;

/** The open range of a distance score (PatchCore, PaDiM): every threshold above MIN_THRESHOLD. */
export const DISTANCE_RANGE: readonly [number, number] = [0, Infinity];

/** What a threshold must be for scores in `range` (Method.scoreRange), in words. */
export function thresholdExpectation(range: readonly [number, number] = DISTANCE_RANGE): string {
  return range[1] === Infinity
    ? `a finite number of at least ${MIN_THRESHOLD}`
    : `a number between ${range[0]} and ${range[1]} (not either end)`;
}

/** Checks a threshold value given by a user for scores in `range` (the option name goes into the message). */
export function checkThresholdValue(
  value: number,
  option = 'threshold',
  range: readonly [number, number] = DISTANCE_RANGE,
): number {
  const inside = Number.isFinite(value) && value >= Math.max(MIN_THRESHOLD, range[0]) && value < range[1];
  if (!inside) {
    throw new KensaError(
      'E_ARGUMENT',
      `Expected ${thresholdExpectation(range)} for ${option} but received ${value} (` +
        (range[1] === Infinity
          ? 'scores are distances: at or below 0 every image would be NG)'
          : `this model's scores are probabilities between ${range[0]} and ${range[1]})`),
    );
  }
  return value;
}

/**
 * The threshold a choice stands for in a model (default: custom when set, else fpr0), with its name;
 * `range`: the model's scores' (Method.scoreRange), which a number given must lie in.
 */
export function resolveThreshold(
  thresholds: Thresholds,
  choice?: ThresholdChoice,
  range: readonly [number, number] = DISTANCE_RANGE,
): { name: ThresholdName | 'value'; value: number } {
  choice ??= thresholds.custom !== undefined ? 'custom' : 'fpr0';
  if (typeof choice === 'number')
    return { name: 'value', value: checkThresholdValue(choice, 'threshold', range) };
  if (!THRESHOLD_CHOICES.includes(choice))
    throw unknownChoice('threshold', String(choice), [...THRESHOLD_CHOICES, 'a number']);
  const value = thresholds[choice];
  if (value === undefined)
    throw new KensaError('E_ARGUMENT', `the model has no ${choice} threshold; ${HOW_TO_GET[choice]}`);
  return { name: choice, value };
}

export interface DefectRegion {
  /**
   * Box in original-image pixels (whole pixels, inside the image) that fits the defect: the region's
   * core, narrowed to the pixels that stand out from the surface around it (postprocess/regions.ts).
   */
  x: number;
  y: number;
  width: number;
  height: number;
  /**
   * Area of the defect in original-image pixels: the pixels that stand out inside the box when the image
   * was at hand (see `x`), else the region of the map above the threshold.
   */
  area: number;
  /** The highest map value inside, on the scale of the image score. */
  peak_score: number;
  /** The box and area in millimetres, where the pixel size is known (--mm-per-pixel). */
  width_mm?: number;
  height_mm?: number;
  area_mm2?: number;
  /**
   * Whether the region counts towards NG: false for a region whose longer side is below the size rule
   * (--min-defect-mm); it is still listed. Absent without a size rule.
   */
  counts?: boolean;
}

/** Sizes in millimetres and the size rule of a line (train stores the pixel size; predict may override). */
export interface SizeRule {
  /** Millimetres per original-image pixel. */
  mmPerPixel?: number;
  /** A region whose longer side (mm) is below this does not count towards NG. */
  minDefectMm?: number;
}

/** The size rule as given, checked: --min-defect-mm needs the pixel size. */
export function checkSizeRule(rule: SizeRule): SizeRule {
  if (rule.minDefectMm !== undefined && rule.mmPerPixel === undefined)
    throw new KensaError(
      'E_ARGUMENT',
      '--min-defect-mm needs the size of a pixel: give --mm-per-pixel (or train the model with it)',
    );
  return rule;
}

export interface Decision {
  verdict: 'OK' | 'NG';
  score: number;
  /** score / threshold: above 1 is NG. */
  normalized_score: number;
  threshold: number;
  regions: DefectRegion[];
  /** Map pixels in a region (processed size), 0/1. */
  predicted: Uint8Array;
}

export interface MapOf {
  map: Float32Array;
  mapMax: number;
  score: number;
  /** `rgb` (the processed image) lets the boxes fit the defect, not the map's smooth region. */
  image: { width: number; height: number; geometry: Geometry; rgb?: Uint8Array };
}

/** The factor that puts an image's map on the scale of its score (1 when the score is the map's maximum). */
export function mapScale(r: { mapMax: number; score: number }): number {
  return r.mapMax > 0 && Number.isFinite(r.score) && r.score > 0 ? r.score / r.mapMax : 1;
}

/** A box of processed pixels → whole original pixels, clamped to the image, at least 1×1. */
function originalBox(g: Geometry, width: number, height: number, x: number, y: number, w: number, h: number) {
  const [ox, oy, ow, oh] = toOriginal(g, x, y, w, h);
  const span = (from: number, size: number, limit: number): [number, number] => {
    let a = Math.max(0, Math.min(limit - 1, Math.floor(from)));
    const b = Math.max(a + 1, Math.min(limit, Math.ceil(from + size)));
    if (b > limit) a = limit - 1;
    return [a, b - a];
  };
  const [bx, bw] = span(ox, ow, width);
  const [by, bh] = span(oy, oh, height);
  return { x: bx, y: by, width: bw, height: bh };
}

/**
 * The verdict and regions of one scored image at a threshold. With a pixel size (`size.mmPerPixel`) the
 * regions also get their sizes in millimetres; with a size rule (`size.minDefectMm`) an image is NG only
 * when at least one region's longer side reaches it — the smaller regions are kept, marked as not counting.
 */
export function decide(r: MapOf, threshold: number, size: SizeRule = {}): Decision {
  const g = r.image.geometry;
  const scale = mapScale(r);
  const { regions, mask } = findRegions(r.map, g.inputWidth, g.inputHeight, threshold / scale);
  const mm = size.mmPerPixel;
  const boxes: DefectRegion[] = regions.map((reg) => {
    const box = r.image.rgb
      ? tightBox(r.map, r.image.rgb, g.inputWidth, g.inputHeight, reg, threshold / scale)
      : reg;
    const region: DefectRegion = {
      ...originalBox(g, r.image.width, r.image.height, box.x, box.y, box.width, box.height),
      area: Math.max(1, Math.round(box.area * g.scaleX * g.scaleY)),
      peak_score: reg.peak * scale,
    };
    if (mm !== undefined) {
      region.width_mm = region.width * mm;
      region.height_mm = region.height * mm;
      region.area_mm2 = region.area * mm * mm;
      if (size.minDefectMm !== undefined)
        region.counts = Math.max(region.width_mm, region.height_mm) >= size.minDefectMm;
    }
    return region;
  });
  const above = r.score > threshold;
  const counted = size.minDefectMm === undefined || boxes.some((b) => b.counts);
  return {
    verdict: above && counted ? 'NG' : 'OK',
    score: r.score,
    normalized_score: threshold > 0 && Number.isFinite(threshold) ? r.score / threshold : 0,
    threshold,
    regions: boxes,
    predicted: mask,
  };
}
