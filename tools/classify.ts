/**
 * Developer tool: runs a backbone's whole network (with its classifier) on a raw float32 NCHW file and
 * prints the logits as JSON. Used by tools/check_lite0_classes.py to compare with PyTorch.
 *
 *   npx tsx tools/classify.ts --backbone efficientnet_lite0 --input x.f32 --shape 2,3,224,224 [--weights FILE]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/backbone/backbone.js';

const { values } = parseArgs({
  options: {
    backbone: { type: 'string', default: 'efficientnet_lite0' },
    input: { type: 'string' },
    shape: { type: 'string' },
    weights: { type: 'string' },
  },
});
if (!values.input || !values.shape) throw new Error('--input and --shape are required');
const [n, c, h, w] = values.shape.split(',').map(Number);
const bytes = readFileSync(values.input);
const input = new Float32Array(bytes.buffer, bytes.byteOffset, n * c * h * w);
const backbone = await Backbone.load(values.backbone!, { weights: values.weights, head: true });
const logits = await backbone.logits(new Float32Array(input), n, h, w);
const classes = logits.length / n;
const rows = Array.from({ length: n }, (_, i) => Array.from(logits.subarray(i * classes, (i + 1) * classes)));
console.log(
  JSON.stringify({ backbone: backbone.name, weights_sha256: backbone.weights?.sha256, logits: rows }),
);
await backbone.dispose();
