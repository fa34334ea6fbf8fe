/**
 * AUPRO (Bergmann et al., MVTec AD): the area under the per-region-overlap curve up to a false-positive
 * rate of 0.3, divided by 0.3. Each connected defect region (8-connected) weighs the same whatever its
 * size. Exact: all pixels sorted by score, as in the MVTec AD evaluation code.
 */
import { labelComponents } from '../postprocess/regions.js';
import { mannWhitney, type Metric } from './classification.js';

export interface ProInput {
  map: Float32Array;
  /** 0/1, same size as map. */
  mask: Uint8Array;
  width: number;
  height: number;
}

/** AUPRO alone (see pixelMetrics). */
export function aupro(items: ProInput[], limit = 0.3): Metric {
  return pixelMetrics(items, limit).aupro;
}

/**
 * Pixel AUROC and AUPRO of the same maps and masks, from one sort of the good pixels and one of the defect
 * pixels (tens of millions of pixels on a real test set).
 */
export function pixelMetrics(items: ProInput[], limit = 0.3): { pixel_auroc: Metric; aupro: Metric } {
  let regions = 0;
  let negatives = 0;
  const labelled = items.map((it) => {
    const { labels, count } = labelComponents(it.mask, it.width, it.height);
    const sizes = new Float64Array(count + 1);
    for (let i = 0; i < labels.length; i++) sizes[labels[i]]++;
    regions += count;
    negatives += sizes[0];
    return { labels, sizes };
  });
  if (regions === 0) {
    const reason = 'no defect regions in the masks';
    return {
      pixel_auroc: { value: null, reason: 'no defective pixels to measure' },
      aupro: { value: null, reason },
    };
  }
  if (negatives === 0) {
    const reason = 'no good pixels in the masks';
    return { pixel_auroc: { value: null, reason }, aupro: { value: null, reason } };
  }
  if (regions >= 2 ** 28 - 1) throw new Error('too many defect regions for AUPRO');
  // Good pixels: only their scores matter (native typed-array sort). Defect pixels carry a weight that
  // depends on their region: the region id rides in the low mantissa bits of a float64 copy of the
  // float32 score, so one native sort orders them by score (ids only break ties within a float32 value).
  let nDefect = 0;
  for (const { sizes } of labelled) for (let l = 1; l < sizes.length; l++) nDefect += sizes[l];
  const good = new Float32Array(negatives);
  const defect = new Float64Array(nDefect);
  const words = new Uint32Array(defect.buffer);
  const weight: number[] = [0];
  let g = 0;
  let k = 0;
  items.forEach((it, n) => {
    const { labels, sizes } = labelled[n];
    const base = weight.length - 1;
    for (let l = 1; l < sizes.length; l++) weight.push(1 / (sizes[l] * regions));
    for (let i = 0; i < it.map.length; i++) {
      const l = labels[i];
      if (l === 0) good[g++] = it.map[i];
      else {
        defect[k] = it.map[i];
        // low word (little-endian): ids below 2^28 stay under half a float32 step, so Math.fround recovers the score
        words[2 * k] |= base + l;
        k++;
      }
    }
  });
  good.sort();
  defect.sort();
  const pixel_auroc: Metric = { value: mannWhitney(Float32Array.from(defect), good) };
  const regionOf = (i: number) => words[2 * i] & (2 ** 28 - 1);
  let gi = negatives - 1;
  let di = nDefect - 1;
  let fpr = 0;
  let pro = 0;
  let prevFpr = 0;
  let prevPro = 0;
  let area = 0;
  while (gi >= 0 || di >= 0) {
    const dv = di >= 0 ? Math.fround(defect[di]) : -Infinity;
    const gv = gi >= 0 ? good[gi] : -Infinity;
    const v = Math.max(dv, gv);
    while (gi >= 0 && good[gi] === v) {
      fpr += 1 / negatives;
      gi--;
    }
    while (di >= 0 && Math.fround(defect[di]) === v) {
      pro += weight[regionOf(di)];
      di--;
    }
    if (fpr >= limit) {
      const t = fpr > prevFpr ? (limit - prevFpr) / (fpr - prevFpr) : 0;
      const proAtLimit = prevPro + t * (pro - prevPro);
      area += ((limit - prevFpr) * (prevPro + proAtLimit)) / 2;
      return { pixel_auroc, aupro: { value: area / limit } };
    }
    area += ((fpr - prevFpr) * (prevPro + pro)) / 2;
    prevFpr = fpr;
    prevPro = pro;
  }
  return { pixel_auroc, aupro: { value: area / limit } };
}
