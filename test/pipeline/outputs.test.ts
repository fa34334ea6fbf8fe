import { describe, expect, it } from 'vitest';
import { commonRoot, outputNames } from '../../src/pipeline/outputs.js';

describe('output names', () => {
  it('are readable (relative path, folders joined by _) and unique within a run', () => {
    const paths = ['/d/a_b/c.png', '/d/a/b_c.png', '/d/x.png', '/d/x.jpg', '/d/crack/007.bmp'];
    const root = commonRoot(paths);
    expect(root).toBe('/d');
    expect([...outputNames(paths, root).values()]).toEqual(['a_b_c', 'a_b_c-2', 'x', 'x-2', 'crack_007']);
  });
});
