/**
 * The network inputs of one processed image: the whole image, or overlapping tiles of it.
 *
 * Tiles start at multiples of 16 (so every backbone stride divides their offsets) and neighbours overlap
 * by at least the requested overlap; the last tile of a row or column ends at the image's edge. Stitching:
 * every pixel belongs to the tile whose centre is nearest (per axis), so a tile's borders — where its
 * features see zero padding — are used only at the image's own borders.
 */
import { KensaError } from '../util/errors.js';
import { SIDE_MULTIPLE, type TileSettings } from './preprocess.js';

/** A network input: a rectangle of the processed image, and the part of it this input owns. */
export interface InputRect {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Owned pixels, relative to the input's own top-left corner: [x0, x1) × [y0, y1), multiples of 16. */
  owned: { x0: number; x1: number; y0: number; y1: number };
}

/** Tile offsets along one axis of `length` pixels. */
export function tileOffsets(length: number, tile: number, overlap: number): number[] {
  if (length <= tile) return [0];
  const step = tile - overlap;
  const offsets: number[] = [];
  for (let x = 0; x + tile < length; x += step) offsets.push(x);
  offsets.push(length - tile);
  return offsets;
}

/** Per tile along one axis, its owned range [from, to) in image pixels (multiples of 16). */
function ownedRanges(offsets: number[], tile: number, length: number): [number, number][] {
  const centres = offsets.map((o) => o + tile / 2);
  return offsets.map((o, i) => {
    const from = i === 0 ? 0 : Math.round((centres[i - 1] + centres[i]) / 2 / SIDE_MULTIPLE) * SIDE_MULTIPLE;
    const to =
      i === offsets.length - 1
        ? length
        : Math.round((centres[i] + centres[i + 1]) / 2 / SIDE_MULTIPLE) * SIDE_MULTIPLE;
    return [Math.max(from, o), Math.min(to, o + tile)];
  });
}

/** The inputs of an image of width×height processed pixels (multiples of 16). */
export function inputRects(width: number, height: number, tile?: TileSettings): InputRect[] {
  if (!tile) return [{ x: 0, y: 0, width, height, owned: { x0: 0, x1: width, y0: 0, y1: height } }];
  if (width < tile.size || height < tile.size) {
    throw new KensaError(
      'E_ARGUMENT',
      `the image is ${width}×${height} pixels after preprocessing, smaller than the ${tile.size}×${tile.size} tile; ` +
        'choose a smaller --tile or a larger --scale',
    );
  }
  const xs = tileOffsets(width, tile.size, tile.overlap);
  const ys = tileOffsets(height, tile.size, tile.overlap);
  const ox = ownedRanges(xs, tile.size, width);
  const oy = ownedRanges(ys, tile.size, height);
  const rects: InputRect[] = [];
  ys.forEach((y, j) =>
    xs.forEach((x, i) =>
      rects.push({
        x,
        y,
        width: tile.size,
        height: tile.size,
        owned: { x0: ox[i][0] - x, x1: ox[i][1] - x, y0: oy[j][0] - y, y1: oy[j][1] - y },
      }),
    ),
  );
  return rects;
}

/** How many tiles an image of width×height gets (for estimates before any image is read). */
export function tileCount(width: number, height: number, tile?: TileSettings): number {
  if (!tile) return 1;
  return (
    tileOffsets(width, tile.size, tile.overlap).length * tileOffsets(height, tile.size, tile.overlap).length
  );
}
