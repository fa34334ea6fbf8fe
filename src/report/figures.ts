/**
 * Pictures for people: the five-panel figure engineers know from the public PaDiM code (image, ground
 * truth, heat map with a colour bar labelled "Anomaly score", predicted mask, result with each defect
 * outlined in red), heat-map overlays on the original image, thumbnails, and ROC / PR curves. Drawn as
 * raw pixels and SVG, composed and encoded to PNG with sharp.
 *
 * Every picture keeps the image's own aspect ratio. Panels have a bounded size, so text stays readable
 * whatever the image size; when the image is shrunk to fit (a large camera image), a second row shows
 * enlarged crops around the highest-scoring regions at full processed resolution, so a 10-px defect is
 * visible.
 */
import sharp, { type OverlayOptions } from 'sharp';
import { spawnSync } from 'node:child_process';
import { readdirSync, type Dirent } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { language } from '../i18n.js';
import { openImage } from '../image/load.js';
import { shownRegion, type Geometry } from '../image/preprocess.js';
import { jet, jetInto } from './colormap.js';

/** A box in original-image pixels with its peak score (a decision's region). */
export interface FigureRegion {
  x: number;
  y: number;
  width: number;
  height: number;
  peak_score: number;
}

export interface FigureInput {
  title: string;
  /** H×W×3 RGB of the processed image. */
  rgb: Uint8Array;
  width: number;
  height: number;
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
  /** The decision's regions (original pixels), for the enlarged crops. */
  regions?: FigureRegion[];
  /** Maps the regions back to processed pixels. */
  geometry?: Geometry;
  /** The title's numbers, when they are not "score S, threshold T" (a classifier's probability). */
  scoreText?: string;
  /** The colour bar's label (default "Anomaly score"). */
  mapLabel?: string;
}

/** Longest panel side in the figure. */
export const PANEL_SIDE = 320;
/** Crops shown below the panels of a shrunk image, at most. */
const MAX_CROPS = 4;
const CROP_SIDE = 200;

const escape = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
/**
 * Whether the figures can be drawn in Japanese. Their text is drawn with the system's fonts (fontconfig),
 * and a Linux machine without a Japanese font draws every kana and kanji as a box; there the figures stay
 * in English (`fc-list :lang=ja` lists no font, or fontconfig is not there). Windows and macOS ship
 * Japanese fonts. KENSA_FIGURE_FONTS=ja|none says it instead (a test's, or a machine's own check).
 */
let japaneseFont: boolean | undefined;
export function figuresCanShowJapanese(): boolean {
  const given = process.env.KENSA_FIGURE_FONTS;
  if (given === 'ja' || given === 'none') return given === 'ja';
  if (japaneseFont === undefined) {
    if (process.platform !== 'linux') japaneseFont = true;
    else {
      const r = spawnSync('fc-list', [':lang=ja', 'family'], { encoding: 'utf8', timeout: 5000 });
      // without fontconfig's tools, the font files' names: Noto CJK, IPA, Takao, VL Gothic, …
      japaneseFont = r.error ? japaneseFontFiles() : r.status === 0 && r.stdout.trim() !== '';
    }
  }
  return japaneseFont;
}

/** The folders fonts are installed in on Linux. */
const fontDirs = () => [
  '/usr/share/fonts',
  '/usr/local/share/fonts',
  join(homedir(), '.fonts'),
  join(homedir(), '.local/share/fonts'),
];

/** Whether a font file named for Japanese lies in the font folders (a few levels deep). */
export function japaneseFontFiles(dirs: readonly string[] = fontDirs()): boolean {
  const named = /cjk|ipa(ex)?[gmp]|takao|vl-?gothic|japanese|-jp\b|jp-/i;
  const look = (dir: string, depth: number): boolean => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return false;
    }
    return entries.some((e) =>
      e.isDirectory()
        ? depth > 0 && look(join(dir, e.name), depth - 1)
        : /\.(ttf|ttc|otf|otc)$/i.test(e.name) && named.test(e.name),
    );
  };
  return dirs.some((d) => look(d, 4));
}

/** A figure's text in the user's language, where the machine can draw it (figuresCanShowJapanese). */
export const figureText = (en: string, ja: string): string =>
  language() === 'ja' && figuresCanShowJapanese() ? ja : en;

const FONT = 'font-family="sans-serif"';

/** Image blended with the jet-coloured map (alpha 0.5), as RGB. */
export function heatOverlay(
  rgb: Uint8Array,
  map: Float32Array,
  range: [number, number],
  alpha = 0.5,
): Uint8Array {
  const out = colouredMap(map, range);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((1 - alpha) * rgb[i] + alpha * out[i]);
  return out;
}

/** The map in jet colours over [low, high], as RGB. */
export function colouredMap(map: Float32Array, range: [number, number]): Uint8Array {
  const out = new Uint8Array(map.length * 3);
  const [lo, hi] = range;
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < map.length; i++) jetInto((map[i] - lo) / span, out, i * 3);
  return out;
}

/**
 * A map of W×H values shrunk to w×h (w ≤ W, h ≤ H) by averaging the values each target pixel covers: a
 * picture smaller than the processed image colours only the pixels it shows.
 */
export function shrinkMap(map: Float32Array, W: number, H: number, w: number, h: number): Float32Array {
  if (w === W && h === H) return map;
  if (w > W || h > H) throw new RangeError(`shrinkMap: ${W}×${H} cannot shrink to ${w}×${h}`);
  const out = new Float32Array(w * h);
  const xs = Int32Array.from({ length: w + 1 }, (_, x) => Math.floor((x * W) / w));
  const row = new Float64Array(w);
  for (let y = 0; y < h; y++) {
    const y0 = Math.floor((y * H) / h);
    const y1 = Math.floor(((y + 1) * H) / h);
    row.fill(0);
    for (let sy = y0; sy < y1; sy++) {
      const o = sy * W;
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let sx = xs[x]; sx < xs[x + 1]; sx++) s += map[o + sx];
        row[x] += s;
      }
    }
    for (let x = 0; x < w; x++) out[y * w + x] = row[x] / ((y1 - y0) * (xs[x + 1] - xs[x]));
  }
  return out;
}

/** The image with the outline of each predicted region drawn in red. */
export function outlined(rgb: Uint8Array, mask: Uint8Array, width: number, height: number): Uint8Array {
  const out = rgb.slice();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!mask[i]) continue;
      const edge =
        x === 0 ||
        y === 0 ||
        x === width - 1 ||
        y === height - 1 ||
        !mask[i - 1] ||
        !mask[i + 1] ||
        !mask[i - width] ||
        !mask[i + width];
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

/** A panel: RGB pixels resized to w×h (shrinking: area average; nearest when enlarging a mask). */
async function panel(px: Uint8Array, width: number, height: number, w: number, h: number, nearest = false) {
  if (w === width && h === height) return Buffer.from(px);
  return sharp(Buffer.from(px), { raw: { width, height, channels: 3 } })
    .resize(w, h, { fit: 'fill', kernel: nearest ? 'nearest' : 'lanczos3' })
    .raw()
    .toBuffer();
}

/**
 * A colour bar of `height` px for [lo, hi] with five ticks and the threshold marked; when the map goes
 * past the top of the range, an arrow above the bar says so ("max 12.3").
 */
export function colourBar(
  height: number,
  range: [number, number],
  threshold: number,
  max?: number,
  label = figureText('Anomaly score', '異常スコア'),
): string {
  const [lo, hi] = range;
  const stops = Array.from({ length: 11 }, (_, i) => {
    const [r, g, b] = jet(1 - i / 10);
    return `<stop offset="${i / 10}" stop-color="rgb(${r},${g},${b})"/>`;
  }).join('');
  const y = (v: number) => ((hi - v) / (hi - lo || 1)) * height;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => lo + f * (hi - lo));
  const digits = hi - lo < 1 ? 3 : hi - lo < 10 ? 2 : 1;
  const tick = (v: number) =>
    `<line x1="16" x2="20" y1="${y(v)}" y2="${y(v)}" stroke="#000"/><text x="23" y="${y(v) + 4}" font-size="11" ${FONT}>${v.toFixed(digits)}</text>`;
  const thr =
    threshold >= lo && threshold <= hi
      ? `<line x1="-3" x2="19" y1="${y(threshold)}" y2="${y(threshold)}" stroke="#fff" stroke-width="3"/><line x1="-3" x2="19" y1="${y(threshold)}" y2="${y(threshold)}" stroke="#000" stroke-width="1"/>`
      : '';
  const over =
    max !== undefined && max > hi
      ? `<path d="M0 -4 L16 -4 L8 -14 Z" fill="rgb(128,0,0)"/><text x="20" y="-5" font-size="11" ${FONT}>max ${max.toFixed(digits)}</text>`
      : '';
  return (
    `<defs><linearGradient id="cb" x1="0" y1="0" x2="0" y2="1">${stops}</linearGradient></defs>` +
    `<rect x="0" y="0" width="16" height="${height}" fill="url(#cb)" stroke="#000"/>${thr}${over}${ticks.map(tick).join('')}` +
    `<text transform="translate(72 ${height / 2}) rotate(90)" text-anchor="middle" font-size="12" ${FONT}>${escape(label)}</text>`
  );
}

/** Regions (original pixels) as boxes in processed pixels, clamped to the image. */
function processedBoxes(regions: FigureRegion[], g: Geometry) {
  return regions.map((r) => {
    const x0 = Math.max(0, Math.floor(r.x / g.scaleX - g.left));
    const y0 = Math.max(0, Math.floor(r.y / g.scaleY - g.top));
    const x1 = Math.min(g.inputWidth, Math.ceil((r.x + r.width) / g.scaleX - g.left));
    const y1 = Math.min(g.inputHeight, Math.ceil((r.y + r.height) / g.scaleY - g.top));
    return { x0, y0, x1: Math.max(x1, x0 + 1), y1: Math.max(y1, y0 + 1), region: r };
  });
}

/** The five-panel figure as PNG bytes (with a row of enlarged crops when the image is shrunk). */
export async function fivePanelFigure(f: FigureInput): Promise<Uint8Array> {
  const { width: W, height: H } = f;
  const shrink = Math.min(1, PANEL_SIDE / Math.max(W, H));
  const pw = Math.max(1, Math.round(W * shrink));
  const ph = Math.max(1, Math.round(H * shrink));
  const gap = 12;
  const top = 44;
  const barWidth = 96;
  const heat = heatOverlay(f.rgb, f.map, f.range);
  const result = outlined(f.rgb, f.predicted, W, H);
  const panels: [string, Uint8Array | null, boolean][] = [
    [figureText('Image', '画像'), f.rgb, false],
    [figureText('Ground truth', '正解'), f.mask ? maskRgb(f.mask) : null, true],
    [figureText('Predicted heat map', 'ヒートマップ'), heat, false],
    [figureText('Predicted mask', '推定マスク'), maskRgb(f.predicted), true],
    [figureText('Segmentation result', '検出結果'), result, false],
  ];
  const x = (i: number) => 10 + i * (pw + gap) + (i >= 3 ? barWidth : 0);
  // crops around the strongest regions, when the panels are shrunk enough to hide small defects: the
  // photograph alone beside the heat map, so that a 10-px defect is seen as it is
  const boxes =
    f.geometry && f.regions && shrink < 0.75 ? processedBoxes(f.regions.slice(0, MAX_CROPS), f.geometry) : [];
  const slot = 2 * CROP_SIDE + 6 + gap + 24;
  const width = Math.max(5 * pw + 4 * gap + barWidth + 20, 560, 10 + boxes.length * slot);
  const cropTop = top + ph + 40;
  const height = boxes.length ? cropTop + CROP_SIDE + 44 : top + ph + 14;
  let svg = `<rect width="100%" height="100%" fill="#fff"/>`;
  svg += `<text x="10" y="18" font-size="14" ${FONT} font-weight="bold" fill="${f.verdict === 'NG' ? '#c00' : '#060'}">${escape(f.title)} — ${f.verdict} (${f.scoreText ?? figureText(`score ${f.score.toFixed(3)}, threshold ${f.threshold.toFixed(3)}`, `スコア ${f.score.toFixed(3)}、しきい値 ${f.threshold.toFixed(3)}`)})</text>`;
  svg += panels
    .map(
      ([t], i) =>
        `<text x="${x(i) + pw / 2}" y="${top - 8}" text-anchor="middle" font-size="13" ${FONT}>${t}</text>`,
    )
    .join('');
  if (!f.mask)
    svg += `<rect x="${x(1)}" y="${top}" width="${pw}" height="${ph}" fill="#eee"/><text x="${x(1) + pw / 2}" y="${top + ph / 2}" text-anchor="middle" font-size="12" ${FONT} fill="#666">${figureText('no mask', 'マスクなし')}</text>`;
  let max = -Infinity;
  for (let i = 0; i < f.map.length; i++) if (f.map[i] > max) max = f.map[i];
  svg += `<g transform="translate(${x(2) + pw + 8} ${top})">${colourBar(ph, f.range, f.threshold, max, f.mapLabel)}</g>`;
  const layers: OverlayOptions[] = [];
  for (const [i, [, px, nearest]] of panels.entries()) {
    if (!px) continue;
    layers.push({
      input: await panel(px, W, H, pw, ph, nearest),
      raw: { width: pw, height: ph, channels: 3 },
      left: x(i),
      top,
    });
  }
  if (boxes.length) {
    svg += `<text x="10" y="${cropTop - 12}" font-size="13" ${FONT}>${figureText('Strongest regions, enlarged: the photograph, and the heat map (red outline: map above the threshold; white box: the defect):', '強い領域の拡大: 写真とヒートマップ（赤い輪郭: しきい値を超えた部分、白い枠: 欠陥）:')}</text>`;
    for (const [k, b] of boxes.entries()) {
      // a square crop around the defect's box (three times its size, at least 64 processed pixels), shown at CROP_SIDE
      const side = Math.min(Math.max(W, H), Math.max(64, Math.ceil(3 * Math.max(b.x1 - b.x0, b.y1 - b.y0))));
      const cw = Math.min(side, W);
      const chh = Math.min(side, H);
      const cx = Math.max(0, Math.min(W - cw, Math.round((b.x0 + b.x1 - cw) / 2)));
      const cy = Math.max(0, Math.min(H - chh, Math.round((b.y0 + b.y1 - chh) / 2)));
      // the heat overlay, with the predicted regions' outlines in red and the defect's box in white (the
      // ring of pixels just outside it)
      const crop = new Uint8Array(cw * chh * 3);
      const photo = new Uint8Array(cw * chh * 3);
      for (let yy = 0; yy < chh; yy++) {
        for (let xx = 0; xx < cw; xx++) {
          const px = cx + xx;
          const py = cy + yy;
          const p = py * W + px;
          const ring =
            px >= b.x0 - 1 &&
            px <= b.x1 &&
            py >= b.y0 - 1 &&
            py <= b.y1 &&
            (px === b.x0 - 1 || px === b.x1 || py === b.y0 - 1 || py === b.y1);
          const edge =
            f.predicted[p] && result[p * 3] === 255 && result[p * 3 + 1] === 0 && result[p * 3 + 2] === 0;
          crop.set(
            ring ? [255, 255, 255] : edge ? [255, 0, 0] : heat.subarray(p * 3, p * 3 + 3),
            (yy * cw + xx) * 3,
          );
          photo.set(ring ? [255, 255, 255] : f.rgb.subarray(p * 3, p * 3 + 3), (yy * cw + xx) * 3);
        }
      }
      const scale = CROP_SIDE / Math.max(cw, chh);
      const dw = Math.max(1, Math.round(cw * scale));
      const dh = Math.max(1, Math.round(chh * scale));
      const left = 10 + k * slot;
      for (const [i, px] of [photo, crop].entries())
        layers.push({
          input: await sharp(Buffer.from(px), { raw: { width: cw, height: chh, channels: 3 } })
            .resize(dw, dh, { fit: 'fill', kernel: i === 0 ? 'lanczos3' : 'nearest' })
            .raw()
            .toBuffer(),
          raw: { width: dw, height: dh, channels: 3 },
          left: left + i * (dw + 6),
          top: cropTop,
        });
      const r = b.region;
      svg += `<text x="${left}" y="${cropTop + dh + 16}" font-size="12" ${FONT}>#${k + 1}: ${r.width}×${r.height} px ${figureText('at', '位置')} (${r.x}, ${r.y})</text>`;
      svg += `<text x="${left}" y="${cropTop + dh + 31}" font-size="12" ${FONT}>${figureText('peak', 'ピーク')} ${r.peak_score.toFixed(2)}</text>`;
    }
  }
  const doc = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${svg}</svg>`;
  return await sharp(Buffer.from(doc)).composite(layers).png().toBuffer();
}

/**
 * The heat map over the original image (at most `maxSide` pixels a side), placed on the part of the image
 * the model saw (the centre crop in crop mode), with each region's box drawn in red.
 */
export async function overlayPng(
  file: string | Buffer,
  map: Float32Array,
  g: Geometry,
  range: [number, number],
  regions: FigureRegion[] = [],
  processed?: Uint8Array,
  maxSide = 1024,
  /** How strongly the heat map covers the photograph: 0 the photograph alone, 1 the heat map alone. */
  opacity = 0.5,
): Promise<Uint8Array> {
  // the original through the decoding path of inspection (BMP too), upright
  const original = await openImage(file);
  const W0 = original.width;
  const H0 = original.height;
  const scale = Math.min(1, maxSide / Math.max(W0, H0));
  const w = Math.max(1, Math.round(W0 * scale));
  const h = Math.max(1, Math.round(H0 * scale));
  // where the processed image lies, in original pixels
  const [rx, ry, rw, rh] = shownRegion(g);
  // the processed image (already decoded) serves as the picture when it shows the whole image at the
  // overlay's resolution or finer: a large camera image is then not decoded a second time
  const whole = Math.abs(rx) < 0.5 && Math.abs(ry) < 0.5 && Math.abs(rw - W0) < 1 && Math.abs(rh - H0) < 1;
  const source =
    processed && whole && g.inputWidth >= w && g.inputHeight >= h
      ? sharp(processed, { raw: { width: g.inputWidth, height: g.inputHeight, channels: 3 } })
      : original.sharp().removeAlpha().toColourspace('srgb');
  const rgb = await source.resize(w, h, { fit: 'fill' }).raw().toBuffer();
  const left = Math.max(0, Math.round(rx * scale));
  const top = Math.max(0, Math.round(ry * scale));
  const mw = Math.max(1, Math.min(w - left, Math.round(rw * scale)));
  const mh = Math.max(1, Math.min(h - top, Math.round(rh * scale)));
  // a camera image's overlay is smaller than its map: the map is shrunk first, then coloured
  const shrinks = mw <= g.inputWidth && mh <= g.inputHeight;
  const heat = shrinks
    ? colouredMap(shrinkMap(map, g.inputWidth, g.inputHeight, mw, mh), range)
    : await sharp(Buffer.from(colouredMap(map, range)), {
        raw: { width: g.inputWidth, height: g.inputHeight, channels: 3 },
      })
        .resize(mw, mh, { fit: 'fill', kernel: 'linear' })
        .raw()
        .toBuffer();
  const out = Buffer.from(rgb);
  for (let y = 0; y < mh; y++) {
    for (let x = 0; x < mw * 3; x++) {
      const i = ((top + y) * w + left) * 3 + x;
      out[i] = Math.round((1 - opacity) * rgb[i] + opacity * heat[y * mw * 3 + x]);
    }
  }
  const stroke = Math.max(2, Math.round(Math.max(w, h) / 400));
  const boxes = regions
    .map(
      // red, edged in white so that it shows on the heat map's red too
      (r) =>
        `<rect x="${r.x * scale - stroke}" y="${r.y * scale - stroke}" width="${r.width * scale + 2 * stroke}" height="${r.height * scale + 2 * stroke}" fill="none" stroke="#fff" stroke-width="${stroke + 2}"/>` +
        `<rect x="${r.x * scale - stroke}" y="${r.y * scale - stroke}" width="${r.width * scale + 2 * stroke}" height="${r.height * scale + 2 * stroke}" fill="none" stroke="#ff1744" stroke-width="${stroke}"/>`,
    )
    .join('');
  let img = sharp(out, { raw: { width: w, height: h, channels: 3 } });
  if (boxes)
    img = img.composite([
      {
        input: Buffer.from(
          `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${boxes}</svg>`,
        ),
        left: 0,
        top: 0,
      },
    ]);
  return await img.png().toBuffer();
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
  /** The axes' ranges (default [0, 1] each): a learning curve's epochs and losses. */
  range: { x: [number, number]; y: [number, number] } = { x: [0, 1], y: [0, 1] },
): Promise<Uint8Array> {
  const unit = (v: number, [lo, hi]: [number, number]) => (v - lo) / (hi - lo || 1);
  const label = (v: number, [lo, hi]: [number, number]) => {
    const value = lo + v * (hi - lo);
    return value.toFixed(hi - lo >= 10 ? 0 : hi - lo >= 0.5 ? 1 : 2);
  };
  curves = curves.map((c) => ({
    ...c,
    x: c.x.map((v) => unit(v, range.x)),
    y: c.y.map((v) => unit(v, range.y)),
  }));
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
        `<text x="${px(v)}" y="${py(0) + 16}" text-anchor="middle" font-size="11" ${FONT}>${label(v, range.x)}</text>` +
        `<text x="${px(0) - 6}" y="${py(v) + 4}" text-anchor="end" font-size="11" ${FONT}>${label(v, range.y)}</text>`,
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
        `<text x="${px(0.98)}" y="${py(0.02) - 16 * (curves.length - 1 - i)}" text-anchor="end" font-size="12" ${FONT} fill="${colours[i % colours.length]}">${escape(c.label)}</text>`,
    )
    .join('');
  const diag = diagonal
    ? `<line x1="${px(0)}" y1="${py(0)}" x2="${px(1)}" y2="${py(1)}" stroke="#999" stroke-dasharray="4 4"/>`
    : '';
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="#fff"/>${grid}${diag}${lines}` +
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#000"/>${legend}` +
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" ${FONT}>${escape(title)}</text>` +
    `<text x="${px(0.5)}" y="${H - 10}" text-anchor="middle" font-size="12" ${FONT}>${escape(xLabel)}</text>` +
    `<text transform="translate(16 ${py(0.5)}) rotate(-90)" text-anchor="middle" font-size="12" ${FONT}>${escape(yLabel)}</text></svg>`;
  return await sharp(Buffer.from(svg)).png().toBuffer();
}

/** A small JPEG thumbnail of the image with its heat map (at most `side` a side, aspect kept). */
export async function thumbnailJpeg(
  rgb: Uint8Array,
  map: Float32Array,
  width: number,
  height: number,
  range: [number, number],
  side = 160,
): Promise<Uint8Array> {
  const s = Math.min(1, side / Math.max(width, height));
  const w = Math.max(1, Math.round(width * s));
  const h = Math.max(1, Math.round(height * s));
  // shrunk first, then blended: a camera image's thumbnail colours 160 px, not millions
  const small =
    s < 1
      ? await sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } })
          .resize(w, h, { fit: 'fill' })
          .raw()
          .toBuffer()
      : rgb;
  const px = heatOverlay(small, shrinkMap(map, width, height, w, h), range, 0.45);
  return await sharp(Buffer.from(px), { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 80 })
    .toBuffer();
}

/** One training epoch's losses and accuracies, as a learning curve draws them (models/method.ts EpochHistory). */
export interface EpochPoint {
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  val_loss: number | null;
  val_accuracy: number | null;
}

/** Loss and accuracy per epoch, train and validation, as one PNG (two plots side by side). */
export async function learningCurves(history: readonly EpochPoint[]): Promise<Uint8Array> {
  const epochs = history.map((r) => r.epoch);
  const last = epochs.at(-1) ?? 1;
  const series = (key: keyof EpochPoint) =>
    history.filter((r) => r[key] !== null).map((r) => r[key] as number);
  const hasVal = history.some((r) => r.val_loss !== null);
  const lossTop = Math.max(...series('train_loss'), ...(hasVal ? series('val_loss') : []), 1e-3) * 1.05;
  const loss = await curvePng(
    figureText(
      'Loss per epoch (class-balanced cross-entropy)',
      'エポックごとの損失（クラス均衡の交差エントロピー）',
    ),
    figureText('Epoch', 'エポック'),
    figureText('Loss', '損失'),
    [
      { label: 'train', x: epochs, y: series('train_loss') },
      ...(hasVal ? [{ label: 'validation', x: epochs, y: series('val_loss') }] : []),
    ],
    false,
    { x: [0, last], y: [0, lossTop] },
  );
  const accuracy = await curvePng(
    figureText('Accuracy per epoch (at p = 0.5)', 'エポックごとの正解率（p = 0.5 で）'),
    figureText('Epoch', 'エポック'),
    figureText('Accuracy', '正解率'),
    [
      { label: 'train', x: epochs, y: series('train_accuracy') },
      ...(hasVal ? [{ label: 'validation', x: epochs, y: series('val_accuracy') }] : []),
    ],
    false,
    { x: [0, last], y: [0, 1] },
  );
  const a = await sharp(loss).metadata();
  return sharp({ create: { width: a.width! * 2, height: a.height!, channels: 3, background: '#fff' } })
    .composite([
      { input: Buffer.from(loss), left: 0, top: 0 },
      { input: Buffer.from(accuracy), left: a.width!, top: 0 },
    ])
    .png()
    .toBuffer();
}
