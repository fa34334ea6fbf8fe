/**
 * Pixel AUROC and AUPRO streamed image by image: no test image's map is kept, so memory does not grow
 * with the number or the size of the images (a full-resolution map of a 3872×3200 image is 50 MB).
 *
 * Each pixel's score goes into one of 32768 bins spaced logarithmically over eight decades around a
 * reference score (the model's fpr0 threshold): 0.06 % apart, so the metrics differ from the exact
 * sort-based ones (aupro.ts) only where two scores fall in the same bin, where they count as tied —
 * differences of the order of 1e-5 (test/metrics/pixel-stream.test.ts). Three histograms are kept: good
 * pixels, defect pixels, and defect pixels weighted by 1/(size of their region) for the per-region
 * overlap.
 */
import { labelComponents } from '../postprocess/regions.js';
import type { Metric } from './classification.js';

export const BINS = 32768;
const DECADES = 8;

export class PixelMetricsStream {
  private readonly good = new Float64Array(BINS);
  private readonly defect = new Float64Array(BINS);
  private readonly overlap = new Float64Array(BINS);
  private regions = 0;
  private readonly lo: number;
  private readonly perBin: number;

  /** `reference`: a typical score (e.g. the fpr0 threshold); bins span 1e-4× to 1e4× it. */
  constructor(reference: number) {
    const ref = Number.isFinite(reference) && reference > 0 ? reference : 1;
    this.lo = Math.log(ref) - (DECADES / 2) * Math.LN10;
    this.perBin = BINS / (DECADES * Math.LN10);
  }

  private bin(v: number): number {
    if (!(v > 0)) return 0;
    const b = Math.floor((Math.log(v) - this.lo) * this.perBin);
    return b < 0 ? 0 : b >= BINS ? BINS - 1 : b;
  }

  /** Adds one image's map and its 0/1 mask (same width × height). */
  add(map: Float32Array, mask: Uint8Array, width: number, height: number): void {
    let any = false;
    for (let i = 0; i < mask.length; i++)
      if (mask[i]) {
        any = true;
        break;
      }
    if (!any) {
      for (let i = 0; i < map.length; i++) this.good[this.bin(map[i])]++;
      return;
    }
    const { labels, count } = labelComponents(mask, width, height);
    const sizes = new Float64Array(count + 1);
    for (let i = 0; i < labels.length; i++) sizes[labels[i]]++;
    this.regions += count;
    for (let i = 0; i < map.length; i++) {
      const b = this.bin(map[i]);
      const l = labels[i];
      if (l === 0) this.good[b]++;
      else {
        this.defect[b]++;
        this.overlap[b] += 1 / sizes[l];
      }
    }
  }

  /** Pixel AUROC and AUPRO (up to a false-positive rate of `limit`, normalised). */
  result(limit = 0.3): { pixel_auroc: Metric; aupro: Metric } {
    let nGood = 0;
    let nDefect = 0;
    for (let b = 0; b < BINS; b++) {
      nGood += this.good[b];
      nDefect += this.defect[b];
    }
    if (this.regions === 0 || nDefect === 0) {
      return {
        pixel_auroc: { value: null, reason: 'no defective pixels to measure' },
        aupro: { value: null, reason: 'no defect regions in the masks' },
      };
    }
    if (nGood === 0) {
      const reason = 'no good pixels in the masks';
      return { pixel_auroc: { value: null, reason }, aupro: { value: null, reason } };
    }
    // AUROC: P(defect > good) + ½ P(same bin)
    let below = 0;
    let wins = 0;
    for (let b = 0; b < BINS; b++) {
      wins += this.defect[b] * (below + 0.5 * this.good[b]);
      below += this.good[b];
    }
    // AUPRO: from the highest bin down, FPR and mean per-region overlap, trapezoids up to `limit`
    let fpr = 0;
    let pro = 0;
    let prevFpr = 0;
    let prevPro = 0;
    let area = 0;
    for (let b = BINS - 1; b >= 0; b--) {
      if (this.good[b] === 0 && this.overlap[b] === 0) continue;
      fpr += this.good[b] / nGood;
      pro += this.overlap[b] / this.regions;
      if (fpr >= limit) {
        const t = fpr > prevFpr ? (limit - prevFpr) / (fpr - prevFpr) : 0;
        area += ((limit - prevFpr) * (prevPro + prevPro + t * (pro - prevPro))) / 2;
        return { pixel_auroc: { value: wins / (nGood * nDefect) }, aupro: { value: area / limit } };
      }
      area += ((fpr - prevFpr) * (prevPro + pro)) / 2;
      prevFpr = fpr;
      prevPro = pro;
    }
    return { pixel_auroc: { value: wins / (nGood * nDefect) }, aupro: { value: area / limit } };
  }
}
