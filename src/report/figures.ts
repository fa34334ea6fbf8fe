/**
 * Pictures for people: the five-panel figure engineers know from the public PaDiM code (image, ground
 * truth, heat map with a colour bar labelled "Anomaly score", predicted mask, result with each defect
 * outlined in red), heat-map overlays, and ROC / PR curves. Drawn as raw pixels and SVG, composed and
 * encoded to PNG with sharp.
 */
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';
import { jet } from './colormap.js';

export interface FigureInput {
  title: string;
  /** S×S×3 RGB. */
  rgb: Uint8Array;
  size: number;
  map: Float32Array;
  /** Ground truth 0/1, when known. */
  mask?: Uint8Array;
  /** Predicted mask 0/1 (map > threshold). */
  predicted: Uint8Array;
  threshold: number;
  /** Heat-map range [low, high]. */
  range: [number, number];
  verdict: 'OK' | 'NG';
  score: number;
}

const escape = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Image blended with the jet-coloured map (alpha 0.5), as RGB. */
export function heatOverlay(
  rgb: Uint8Array,
  map: Float32Array,
  range: [number, number],
  alpha = 0.5,
): Uint8Array {
  const out = new Uint8Array(rgb.length);
  const [lo, hi] = range;
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < map.length; i++) {
    const c = jet((map[i] - lo) / span);
    for (let k = 0; k < 3; k++) out[i * 3 + k] = Math.round((1 - alpha) * rgb[i * 3 + k] + alpha * c[k]);
  }
  return out;
}

/** The image with the outline of each predicted region drawn in red. */
export function outlined(rgb: Uint8Array, mask: Uint8Array, size: number): Uint8Array {
  const out = rgb.slice();
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      if (!mask[i]) continue;
      const edge =
        x === 0 ||
        y === 0 ||
        x === size - 1 ||
        y === size - 1 ||
        !mask[i - 1] ||
        !mask[i + 1] ||
        !mask[i - size] ||
        !mask[i + size];
      if (edge) {
        out[i * 3] = 255;
        out[i * 3 + 1] = 0;
        out[i * 3 + 2] = 0;
      }
    }
  }
  return out;
}

function maskRgb(mask: Uint8Array): Uint8Array {
  const out = new Uint8Array(mask.length * 3);
  for (let i = 0; i < mask.length; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = mask[i] ? 255 : 0;
  return out;
}

function colourBar(height: number, range: [number, number], threshold: number): string {
  const [lo, hi] = range;
  const stops = Array.from({ length: 11 }, (_, i) => {
    const [r, g, b] = jet(1 - i / 10);
    return `<stop offset="${i / 10}" stop-color="rgb(${r},${g},${b})"/>`;
  }).join('');
  const y = (v: number) => ((hi - v) / (hi - lo || 1)) * height;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => lo + f * (hi - lo));
  const tick = (v: number) =>
    `<line x1="16" x2="20" y1="${y(v)}" y2="${y(v)}" stroke="#000"/><text x="23" y="${y(v) + 4}" font-size="10" font-family="sans-serif">${v.toFixed(1)}</text>`;
  const thr =
    threshold >= lo && threshold <= hi
      ? `<line x1="0" x2="16" y1="${y(threshold)}" y2="${y(threshold)}" stroke="#fff" stroke-width="2"/>`
      : '';
  return (
    `<defs><linearGradient id="cb" x1="0" y1="0" x2="0" y2="1">${stops}</linearGradient></defs>` +
    `<rect x="0" y="0" width="16" height="${height}" fill="url(#cb)" stroke="#000"/>${thr}${ticks.map(tick).join('')}` +
    `<text transform="translate(70 ${height / 2}) rotate(90)" text-anchor="middle" font-size="11" font-family="sans-serif">Anomaly score</text>`
  );
}

/** The five-panel figure as PNG bytes. */
export async function fivePanelFigure(f: FigureInput): Promise<Uint8Array> {
  const s = f.size;
  const gap = 10;
  const top = 40;
  const barWidth = 80;
  const width = 5 * s + 4 * gap + barWidth + 20;
  const height = top + s + 10;
  const panels: [string, Uint8Array | null][] = [
    ['Image', f.rgb],
    ['Ground truth', f.mask ? maskRgb(f.mask) : null],
    ['Predicted heat map', heatOverlay(f.rgb, f.map, f.range)],
    ['Predicted mask', maskRgb(f.predicted)],
    ['Segmentation result', outlined(f.rgb, f.predicted, s)],
  ];
  const x = (i: number) => 10 + i * (s + gap) + (i >= 3 ? barWidth : 0);
  const titles = panels
    .map(
      ([t], i) =>
        `<text x="${x(i) + s / 2}" y="${top - 8}" text-anchor="middle" font-size="13" font-family="sans-serif">${t}</text>`,
    )
    .join('');
  const missing = panels[1][1]
    ? ''
    : `<rect x="${x(1)}" y="${top}" width="${s}" height="${s}" fill="#eee"/><text x="${x(1) + s / 2}" y="${top + s / 2}" text-anchor="middle" font-size="12" font-family="sans-serif" fill="#666">no mask</text>`;
  const header = `<text x="10" y="16" font-size="13" font-family="sans-serif" font-weight="bold" fill="${f.verdict === 'NG' ? '#c00' : '#060'}">${escape(f.title)} — ${f.verdict} (score ${f.score.toFixed(2)}, threshold ${f.threshold.toFixed(2)})</text>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="#fff"/>${header}${titles}${missing}<g transform="translate(${x(2) + s + 6} ${top})">${colourBar(s, f.range, f.threshold)}</g></svg>`;
  const layers = panels
    .map(([, px], i) =>
      px
        ? { input: Buffer.from(px), raw: { width: s, height: s, channels: 3 as const }, left: x(i), top }
        : null,
    )
    .filter((l) => l !== null);
  return await sharp(Buffer.from(svg)).composite(layers).png().toBuffer();
}

/** Heat map over the image at (about) its original size, as PNG bytes. */
export async function overlayPng(
  file: string,
  map: Float32Array,
  size: number,
  range: [number, number],
  maxSide = 1024,
): Promise<Uint8Array> {
  const base = sharp(file, { limitInputPixels: false }).autoOrient();
  const meta = await base.metadata();
  const scale = Math.min(1, maxSide / Math.max(meta.width ?? size, meta.height ?? size));
  const w = Math.max(1, Math.round((meta.width ?? size) * scale));
  const h = Math.max(1, Math.round((meta.height ?? size) * scale));
  const rgb = await base
    .clone()
    .removeAlpha()
    .toColourspace('srgb')
    .resize(w, h, { fit: 'fill' })
    .raw()
    .toBuffer();
  const mapPx = new Uint8Array(size * size * 3);
  const [lo, hi] = range;
  for (let i = 0; i < map.length; i++) mapPx.set(jet((map[i] - lo) / (hi - lo || 1)), i * 3);
  const heat = await sharp(Buffer.from(mapPx), { raw: { width: size, height: size, channels: 3 } })
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(0.5 * rgb[i] + 0.5 * heat[i]);
  return await sharp(Buffer.from(out), { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

export interface Curve {
  label: string;
  x: number[];
  y: number[];
}

/** A line plot (ROC or PR curve) as PNG bytes. */
export async function curvePng(
  title: string,
  xLabel: string,
  yLabel: string,
  curves: Curve[],
  diagonal = false,
): Promise<Uint8Array> {
  const W = 480;
  const H = 420;
  const m = { l: 60, r: 20, t: 40, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const px = (v: number) => m.l + v * pw;
  const py = (v: number) => m.t + (1 - v) * ph;
  const colours = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e'];
  const grid = [0, 0.2, 0.4, 0.6, 0.8, 1]
    .map(
      (v) =>
        `<line x1="${px(v)}" x2="${px(v)}" y1="${py(0)}" y2="${py(1)}" stroke="#eee"/><line x1="${px(0)}" x2="${px(1)}" y1="${py(v)}" y2="${py(v)}" stroke="#eee"/>` +
        `<text x="${px(v)}" y="${py(0) + 16}" text-anchor="middle" font-size="11" font-family="sans-serif">${v.toFixed(1)}</text>` +
        `<text x="${px(0) - 6}" y="${py(v) + 4}" text-anchor="end" font-size="11" font-family="sans-serif">${v.toFixed(1)}</text>`,
    )
    .join('');
  const lines = curves
    .map(
      (c, i) =>
        `<polyline fill="none" stroke="${colours[i % colours.length]}" stroke-width="2" points="${c.x.map((x, j) => `${px(x).toFixed(1)},${py(c.y[j]).toFixed(1)}`).join(' ')}"/>`,
    )
    .join('');
  const legend = curves
    .map(
      (c, i) =>
        `<text x="${px(0.98)}" y="${py(0.02) - 16 * (curves.length - 1 - i)}" text-anchor="end" font-size="12" font-family="sans-serif" fill="${colours[i % colours.length]}">${escape(c.label)}</text>`,
    )
    .join('');
  const diag = diagonal
    ? `<line x1="${px(0)}" y1="${py(0)}" x2="${px(1)}" y2="${py(1)}" stroke="#999" stroke-dasharray="4 4"/>`
    : '';
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="#fff"/>${grid}${diag}${lines}` +
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#000"/>${legend}` +
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-family="sans-serif">${escape(title)}</text>` +
    `<text x="${px(0.5)}" y="${H - 10}" text-anchor="middle" font-size="12" font-family="sans-serif">${escape(xLabel)}</text>` +
    `<text transform="translate(16 ${py(0.5)}) rotate(-90)" text-anchor="middle" font-size="12" font-family="sans-serif">${escape(yLabel)}</text></svg>`;
  return await sharp(Buffer.from(svg)).png().toBuffer();
}

export async function writePng(path: string, png: Uint8Array): Promise<void> {
  await writeFileAtomic(path, png);
}

/** A small JPEG thumbnail of the image with its heat map, for the report's grid. */
export async function thumbnailJpeg(
  rgb: Uint8Array,
  map: Float32Array,
  size: number,
  range: [number, number],
  side = 160,
): Promise<Uint8Array> {
  const px = heatOverlay(rgb, map, range, 0.45);
  return await sharp(Buffer.from(px), { raw: { width: size, height: size, channels: 3 } })
    .resize(side, side, { fit: 'fill' })
    .jpeg({ quality: 80 })
    .toBuffer();
}
