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
