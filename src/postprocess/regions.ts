/**
 * Connected components (8-connectivity, as scipy.ndimage.label with a 3×3 structure) and the defect
 * regions of a thresholded anomaly map: bounding box, area and peak score of each.
 */

/** Labels 1..count for the foreground (non-zero) pixels; 0 stays background. */
export function labelComponents(
  mask: Uint8Array,
  width: number,
  height: number,
): { labels: Int32Array; count: number } {
  const labels = new Int32Array(width * height);
  const stack = new Int32Array(width * height);
  let count = 0;
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || labels[start]) continue;
    count++;
    let top = 0;
    stack[top++] = start;
    labels[start] = count;
    while (top > 0) {
      const p = stack[--top];
      const x = p % width;
      const y = (p - x) / width;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          if (nx < 0 || nx >= width) continue;
          const q = ny * width + nx;
          if (mask[q] && !labels[q]) {
            labels[q] = count;
            stack[top++] = q;
          }
        }
      }
    }
  }
  return { labels, count };
}

export interface Region {
  /** Box in the map's pixels. */
  x: number;
  y: number;
  width: number;
  height: number;
  /** Pixels in the region. */
  area: number;
  /** Highest anomaly score inside. */
  peak: number;
}

/** Regions where map > threshold, largest peak first. */
export function findRegions(
  map: Float32Array,
  width: number,
  height: number,
  threshold: number,
): { regions: Region[]; mask: Uint8Array } {
  const mask = new Uint8Array(map.length);
  for (let i = 0; i < map.length; i++) mask[i] = map[i] > threshold ? 1 : 0;
  const { labels, count } = labelComponents(mask, width, height);
  const boxes = Array.from({ length: count }, () => ({
    x0: Infinity,
    y0: Infinity,
    x1: -1,
    y1: -1,
    area: 0,
    peak: -Infinity,
  }));
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!l) continue;
    const b = boxes[l - 1];
    const x = i % width;
    const y = (i - x) / width;
    if (x < b.x0) b.x0 = x;
    if (x > b.x1) b.x1 = x;
    if (y < b.y0) b.y0 = y;
    if (y > b.y1) b.y1 = y;
    b.area++;
    if (map[i] > b.peak) b.peak = map[i];
  }
  const regions = boxes.map((b) => ({
    x: b.x0,
    y: b.y0,
    width: b.x1 - b.x0 + 1,
    height: b.y1 - b.y0 + 1,
    area: b.area,
    peak: b.peak,
  }));
  regions.sort((a, b) => b.peak - a.peak);
  return { regions, mask };
}

/** Median of a sample (modifies it). */
function median(values: Float64Array): number {
  values.sort();
  const n = values.length;
  return n % 2 ? values[(n - 1) >> 1] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/**
 * A box that fits the defect inside a region of the anomaly map. The map is smooth (the features see a
 * neighbourhood, and the map is smoothed), so a small defect's region is much larger than the defect.
 * Two steps narrow it: the region's core, where the map is above halfway from the threshold to the
 * region's peak; then, in the image around that core, the pixels whose gray level stands out from the
 * surrounding surface (beyond 6 robust standard deviations, and at least 12 levels) and touch the core.
 * The box of those pixels and their count, or the core's box and size when none stands out (a change of
 * texture, not of brightness). `rgb`: the processed image, H×W×3.
 */
export function tightBox(
  map: Float32Array,
  rgb: Uint8Array,
  width: number,
  height: number,
  region: Region,
  threshold: number,
): { x: number; y: number; width: number; height: number; area: number } {
  const level = threshold + 0.5 * (region.peak - threshold);
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  let core = 0;
  for (let y = region.y; y < region.y + region.height; y++)
    for (let x = region.x; x < region.x + region.width; x++)
      if (map[y * width + x] >= level) {
        core++;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
  if (x1 < 0)
    return { x: region.x, y: region.y, width: region.width, height: region.height, area: region.area };
  // the surface around the core: a window twice its size, within the region's box
  const cw = x1 - x0 + 1;
  const ch = y1 - y0 + 1;
  const wx0 = Math.max(region.x, x0 - (cw >> 1));
  const wx1 = Math.min(region.x + region.width - 1, x1 + (cw >> 1));
  const wy0 = Math.max(region.y, y0 - (ch >> 1));
  const wy1 = Math.min(region.y + region.height - 1, y1 + (ch >> 1));
  const ww = wx1 - wx0 + 1;
  const wh = wy1 - wy0 + 1;
  const gray = new Float64Array(ww * wh);
  for (let y = 0; y < wh; y++)
    for (let x = 0; x < ww; x++) {
      const i = ((wy0 + y) * width + wx0 + x) * 3;
      gray[y * ww + x] = 0.299 * rgb[i] + 0.587 * rgb[i + 1] + 0.114 * rgb[i + 2];
    }
  const centre = median(gray.slice());
  const spread = 1.4826 * median(gray.map((g) => Math.abs(g - centre)));
  const limit = Math.max(6 * spread, 12);
  const odd = new Uint8Array(ww * wh);
  for (let i = 0; i < gray.length; i++) odd[i] = Math.abs(gray[i] - centre) > limit ? 1 : 0;
  const { labels, count } = labelComponents(odd, ww, wh);
  // the components that touch the core
  const touching = new Uint8Array(count + 1);
  for (let y = y0; y <= y1; y++)
    for (let x = x0; x <= x1; x++) {
      const l = labels[(y - wy0) * ww + x - wx0];
      if (l && map[y * width + x] >= level) touching[l] = 1;
    }
  let bx0 = Infinity;
  let by0 = Infinity;
  let bx1 = -1;
  let by1 = -1;
  let area = 0;
  for (let y = 0; y < wh; y++)
    for (let x = 0; x < ww; x++)
      if (touching[labels[y * ww + x]] && labels[y * ww + x]) {
        area++;
        bx0 = Math.min(bx0, x + wx0);
        bx1 = Math.max(bx1, x + wx0);
        by0 = Math.min(by0, y + wy0);
        by1 = Math.max(by1, y + wy0);
      }
  return bx1 < 0
    ? { x: x0, y: y0, width: cw, height: ch, area: core }
    : { x: bx0, y: by0, width: bx1 - bx0 + 1, height: by1 - by0 + 1, area };
}
