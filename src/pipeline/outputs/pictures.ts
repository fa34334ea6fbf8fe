/** What test and predict share: output names, and the per-image pictures (figure, thumbnail, overlay). */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { getMethod } from '../../models/registry.js';
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { openImage } from '../../image/load.js';
import { fivePanelFigure, overlayPng, thumbnailJpeg } from '../../report/figures.js';
import type { ResultsFile } from '../../report/results-file.js';
import { highestCalibration, keptScores } from '../contracts/calibration.js';
import { mapScale, type Decision } from '../contracts/decisions.js';
import type { ScoredImage } from '../engine/inspector.js';
import type { KensaModel } from '../contracts/model-file.js';

/**
 * Longest output name in bytes: with a folder prefix and an extension the files stay well inside the
 * 255-byte limit of common file systems (and the temporary names of atomic writes are shortened apart).
 */
export const MAX_OUTPUT_NAME_BYTES = 160;

/** The longest prefix of `s` that takes at most `bytes` bytes in UTF-8, cut between characters. */
function utf8Prefix(s: string, bytes: number): string {
  let out = '';
  let used = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (used + n > bytes) break;
    out += ch;
    used += n;
  }
  return out;
}

/**
 * A readable output name for an image: its path relative to `root`, folders joined by '_'. A name too
 * long for the file system is cut and given a stable suffix from the hash of the whole relative path.
 */
export function outputName(path: string, root: string | undefined): string {
  const rel = root ? relative(root, path) : basename(path);
  const stem = rel.slice(0, rel.length - extname(rel).length);
  const name = stem
    .split(/[\\/]/)
    .filter((p) => p && p !== '..')
    .join('_')
    // control characters (a line break in a file name) would break lists and shells: replaced
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f]/g, '_');
  if (Buffer.byteLength(name) <= MAX_OUTPUT_NAME_BYTES) return name || 'image';
  const hash = createHash('sha256').update(rel).digest('hex').slice(0, 10);
  return `${utf8Prefix(name, MAX_OUTPUT_NAME_BYTES - hash.length - 1)}~${hash}`;
}

/**
 * Output names for all images of a run, unique: images whose names differ only by their extension
 * (part.bmp and part.tif, as one camera shot saved twice) are told apart by it (part_bmp, part_tif);
 * where two paths still give the same name (a_b/c.png and a/b_c.png), the later ones get -2, -3, ...
 */
export function outputNames(paths: string[], root: string | undefined): Map<string, string> {
  const bases = paths.map((p) => outputName(p, root));
  const extOf = (p: string) => extname(p).slice(1).toLowerCase();
  // the extensions of the paths that share each name
  const exts = new Map<string, Set<string>>();
  paths.forEach((p, i) => exts.set(bases[i], (exts.get(bases[i]) ?? new Set()).add(extOf(p))));
  const names = new Map<string, string>();
  const used = new Set<string>();
  paths.forEach((path, i) => {
    const ext = extOf(path);
    const base = exts.get(bases[i])!.size > 1 && ext ? `${bases[i]}_${ext}` : bases[i];
    let name = base;
    for (let k = 2; used.has(name); k++) name = `${base}-${k}`;
    used.add(name);
    names.set(path, name);
  });
  return names;
}

/** Longest common folder of the paths (for short output names). */
export function commonRoot(paths: string[]): string | undefined {
  if (!paths.length) return undefined;
  let root = dirname(paths[0]);
  for (const p of paths) while (!p.startsWith(root + sep) && root !== dirname(root)) root = dirname(root);
  return root;
}

/** The map on the scale of the image score, as every picture shows it (colours, threshold, regions agree). */
function displayMap(r: ScoredImage): Float32Array {
  const scale = mapScale(r);
  if (scale === 1) return r.map;
  // the thumbnail, the overlay and the figure of one image share it (a camera image's map is millions)
  let shown = displayed.get(r);
  if (!shown) displayed.set(r, (shown = r.map.map((v) => v * scale)));
  return shown;
}
const displayed = new WeakMap<ScoredImage, Float32Array>();

export async function writeFigure(
  path: string,
  r: ScoredImage,
  v: Decision,
  model: KensaModel,
  title: string,
): Promise<void> {
  const g = r.image.geometry;
  const png = await fivePanelFigure({
    title,
    rgb: r.image.rgb,
    width: g.inputWidth,
    height: g.inputHeight,
    map: displayMap(r),
    mapLabel: getMethod(model.meta.method).mapLabel,
    mask: r.mask,
    predicted: v.predicted,
    threshold: v.threshold,
    range: model.meta.calibration.display,
    verdict: v.verdict,
    score: r.score,
    regions: v.regions,
    geometry: g,
  });
  await writeFileAtomic(path, png);
}

/** Writes the report thumbnail of an image; returns its path relative to the results folder. */
export async function writeThumb(
  out: string,
  name: string,
  r: ScoredImage,
  model: KensaModel,
): Promise<string> {
  const rel = `thumbs/${name}.jpg`;
  const g = r.image.geometry;
  await writeFileAtomic(
    join(out, rel),
    await thumbnailJpeg(
      r.image.rgb,
      displayMap(r),
      g.inputWidth,
      g.inputHeight,
      model.meta.calibration.display,
    ),
  );
  return rel;
}

/** Writes the heat-map overlay on the original image; returns its path relative to the results folder. */
export async function writeOverlay(
  out: string,
  name: string,
  r: ScoredImage,
  v: Decision,
  model: KensaModel,
  opacity?: number,
): Promise<string> {
  const rel = `overlays/${name}.png`;
  await writeFileAtomic(join(out, rel), await overlayOf(r, v, model, opacity));
  return rel;
}

/**
 * The heat-map overlay on the original image, as PNG bytes (written by predict, sent by the service);
 * the original is decoded again only when the processed pixels cannot serve.
 */
export function overlayOf(
  r: ScoredImage,
  v: Decision,
  model: KensaModel,
  opacity?: number,
): Promise<Uint8Array> {
  return overlayPng(
    r.item.bytes ?? r.item.path,
    displayMap(r),
    r.image.geometry,
    model.meta.calibration.display,
    v.regions,
    r.image.rgb,
    undefined,
    opacity,
  );
}

/**
 * The calibration block of a results file: the kept calibration scores, and the highest calibration
 * images with a thumbnail of each (`calibration/<k>.jpg`, the photograph alone) where its file is still
 * there — so that the report shows what sets fpr0.
 */
export async function calibrationResults(
  out: string,
  model: KensaModel,
  thumbnails: boolean,
): Promise<NonNullable<ResultsFile['calibration']>> {
  const c = model.meta.calibration;
  const highest = highestCalibration(model.calibrationScores, c).filter((h) => !h.excluded);
  const rows: NonNullable<ResultsFile['calibration']>['highest'] = [];
  for (const [k, h] of highest.entries()) {
    const row: (typeof rows)[number] = { file: h.file, score: h.score, above: h.above };
    if (thumbnails && existsSync(h.file)) {
      try {
        const rel = `calibration/${k + 1}.jpg`;
        const jpeg = await (
          await openImage(h.file)
        )
          .sharp()
          .resize(160, 160, { fit: 'inside' })
          .jpeg({ quality: 80 })
          .toBuffer();
        await writeFileAtomic(join(out, rel), jpeg);
        row.thumb = rel;
      } catch {
        // a calibration image that cannot be read any more is listed without its picture
      }
    }
    rows.push(row);
  }
  return {
    mode: c.mode,
    scores: keptScores(model.calibrationScores, c),
    excluded: c.excluded?.length ?? 0,
    ...(c.scale === 'odds' ? { measure: 'odds' as const } : {}),
    highest: rows,
  };
}
