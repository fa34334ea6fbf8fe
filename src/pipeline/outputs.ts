/** What test and predict share: verdicts, regions in original pixels, per-image figures and file names. */
import { basename, dirname, extname, join, relative } from 'node:path';
import { toOriginal } from '../image/preprocess.js';
import { findRegions } from '../postprocess/regions.js';
import { fivePanelFigure, thumbnailJpeg, writePng } from '../report/figures.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { ScoredImage } from './inspector.js';
import type { KensaModel } from './model-file.js';

export interface DefectRegion {
  /** Box in original-image pixels. */
  x: number;
  y: number;
  width: number;
  height: number;
  /** Area in original-image pixels. */
  area: number;
  peak_score: number;
}

export interface Verdict {
  verdict: 'OK' | 'NG';
  /** score / threshold: above 1 is NG. */
  normalized_score: number;
  regions: DefectRegion[];
  predicted: Uint8Array;
}

export function judge(r: ScoredImage, threshold: number, size: number): Verdict {
  const { regions, mask } = findRegions(r.map, size, size, threshold);
  const g = r.image.geometry;
  const sx = g.scaleX;
  const sy = g.scaleY;
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    verdict: r.score > threshold ? 'NG' : 'OK',
    normalized_score: threshold > 0 && Number.isFinite(threshold) ? r.score / threshold : 0,
    regions: regions.map((reg) => {
      const [x, y, w, h] = toOriginal(g, reg.x, reg.y, reg.width, reg.height);
      return {
        x: round(x),
        y: round(y),
        width: round(w),
        height: round(h),
        area: Math.round(reg.area * sx * sy),
        peak_score: reg.peak,
      };
    }),
    predicted: mask,
  };
}

/** A readable output name for an image: its path relative to `root`, folders joined by '_'. */
export function outputName(path: string, root: string | undefined): string {
  const rel = root ? relative(root, path) : basename(path);
  const stem = rel.slice(0, rel.length - extname(rel).length);
  return stem
    .split(/[\\/]/)
    .filter((p) => p && p !== '..')
    .join('_');
}

/**
 * Output names for all images of a run, unique: where two paths give the same name (a_b/c.png and
 * a/b_c.png; x.png and x.jpg), the later ones get -2, -3, ...
 */
export function outputNames(paths: string[], root: string | undefined): Map<string, string> {
  const names = new Map<string, string>();
  const used = new Set<string>();
  for (const path of paths) {
    const base = outputName(path, root);
    let name = base;
    for (let k = 2; used.has(name); k++) name = `${base}-${k}`;
    used.add(name);
    names.set(path, name);
  }
  return names;
}

/** Longest common folder of the paths (for short output names). */
export function commonRoot(paths: string[]): string | undefined {
  if (!paths.length) return undefined;
  let root = dirname(paths[0]);
  for (const p of paths) while (!p.startsWith(root + '/') && root !== dirname(root)) root = dirname(root);
  return root;
}

export async function writeFigure(
  path: string,
  r: ScoredImage,
  v: Verdict,
  model: KensaModel,
  threshold: number,
  size: number,
  title: string,
): Promise<void> {
  const png = await fivePanelFigure({
    title,
    rgb: r.image.rgb,
    size,
    map: r.map,
    mask: r.mask,
    predicted: v.predicted,
    threshold,
    range: model.meta.calibration.display,
    verdict: v.verdict,
    score: r.score,
  });
  await writePng(path, png);
}

/** Writes the report thumbnail of an image; returns its path relative to the results folder. */
export async function writeThumb(
  out: string,
  name: string,
  r: ScoredImage,
  model: KensaModel,
  size: number,
): Promise<string> {
  const rel = `thumbs/${name}.jpg`;
  await writeFileAtomic(
    join(out, rel),
    await thumbnailJpeg(r.image.rgb, r.map, size, model.meta.calibration.display),
  );
  return rel;
}
