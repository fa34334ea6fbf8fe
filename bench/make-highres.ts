/**
 * Writes the high-resolution benchmark data set (bench/highres.ts): seeded 3872×3200 brushed-metal
 * images with small dust specks and thin scratches, and their masks, in the MVTec AD layout.
 *
 *   npx tsx bench/make-highres.ts --out /tmp/highres [--width 3872 --height 3200] [--seed 31] [--contrast 1]
 *
 * --contrast scales the defects' contrast (1: specks of 28–58 gray levels, scratches of 25–50; 0.4: faint)
 */
import { parseArgs } from 'node:util';
import { makeSurfaceDataset } from '../src/data/synthetic.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    width: { type: 'string', default: '3872' },
    height: { type: 'string', default: '3200' },
    seed: { type: 'string', default: '31' },
    contrast: { type: 'string', default: '1' },
  },
});
if (!values.out) throw new Error('--out is required');
const counts = await makeSurfaceDataset(values.out, {
  width: Number(values.width),
  height: Number(values.height),
  seed: Number(values.seed),
  contrast: Number(values.contrast),
  onProgress: (done, total) => process.stderr.write(`\r${done}/${total} images`),
});
process.stderr.write('\n');
console.log(JSON.stringify(counts));
