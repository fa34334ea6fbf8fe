import { describe, expect, it } from 'vitest';
import { commonRoot, MAX_OUTPUT_NAME_BYTES, outputNames } from '../../../src/pipeline/outputs/pictures.js';

describe('output names', () => {
  it('are readable (relative path, folders joined by _) and unique within a run', () => {
    const paths = ['/d/a_b/c.png', '/d/a/b_c.png', '/d/x.png', '/d/x.jpg', '/d/crack/007.bmp'];
    const root = commonRoot(paths);
    expect(root).toBe('/d');
    // names that differ by their extension only keep it; other clashes are numbered
    expect([...outputNames(paths, root).values()]).toEqual([
      'a_b_c',
      'a_b_c-2',
      'x_png',
      'x_jpg',
      'crack_007',
    ]);
    expect([...outputNames(['/d/part.bmp', '/d/part.tif', '/d/other.bmp'], '/d').values()]).toEqual([
      'part_bmp',
      'part_tif',
      'other',
    ]);
  });

  it('fit every file-system limit: long and multi-byte names are cut with a stable hash suffix', () => {
    const long = `/d/${'n'.repeat(240)}.png`;
    const japanese = `/d/${'検査画像'.repeat(20)}.png`;
    const nested = `/d/${Array.from({ length: 30 }, (_, i) => `folder${i}`).join('/')}/x.png`;
    const names = outputNames([long, japanese, nested, '/d/line\nbreak.png'], '/d');
    for (const name of names.values())
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_OUTPUT_NAME_BYTES);
    expect(names.get(long)).toMatch(/^n+~[0-9a-f]{10}$/);
    expect(names.get('/d/line\nbreak.png')).toBe('line_break');
    expect(names.get(japanese)!.startsWith('検査画像')).toBe(true);
    // stable: the same path gives the same name in another run; another path another name
    expect(outputNames([long], '/d').get(long)).toBe(names.get(long));
    expect(
      outputNames([`/d/${'n'.repeat(241)}.png`], '/d')
        .values()
        .next().value,
    ).not.toBe(names.get(long));
  });
});
