import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectImages, openDataset, trainingImages } from '../../src/data/dataset.js';

const root = mkdtempSync(join(tmpdir(), 'kensa-ds-'));
const touch = (...p: string[]) => {
  mkdirSync(join(root, ...p.slice(0, -1)), { recursive: true });
  writeFileSync(join(root, ...p), '');
};
touch('part', 'train', 'good', 'b.png');
touch('part', 'train', 'good', 'a.JPG');
touch('part', 'train', 'good', 'notes.txt');
touch('part', 'test', 'good', 'g.png');
touch('part', 'test', 'crack', 'c1.png');
touch('part', 'test', 'crack', 'c2.bmp');
touch('part', 'ground_truth', 'crack', 'c1_mask.png');
touch('plain', 'x.tif');
touch('plain', 'sub', 'y.tiff');

describe('data discovery', () => {
  it('reads the MVTec AD layout: sorted images, labels, categories, masks when present', () => {
    const ds = openDataset(join(root, 'part'));
    expect(ds.layout).toBe('mvtec');
    expect(ds.train.map((i) => i.path)).toEqual([
      join(root, 'part/train/good/a.JPG'),
      join(root, 'part/train/good/b.png'),
    ]);
    expect(ds.test).toEqual([
      {
        path: join(root, 'part/test/crack/c1.png'),
        category: 'crack',
        label: 1,
        mask: join(root, 'part/ground_truth/crack/c1_mask.png'),
      },
      { path: join(root, 'part/test/crack/c2.bmp'), category: 'crack', label: 1, mask: undefined },
      { path: join(root, 'part/test/good/g.png'), category: 'good', label: 0, mask: undefined },
    ]);
  });

  it('a plain folder is all training images; folders for predict include sub-folders; globs work', () => {
    expect(openDataset(join(root, 'plain')).train.map((i) => i.path)).toEqual([join(root, 'plain/x.tif')]);
    expect(collectImages([join(root, 'plain')]).map((i) => i.path)).toEqual([
      join(root, 'plain/sub/y.tiff'),
      join(root, 'plain/x.tif'),
    ]);
    expect(trainingImages(join(root, 'part/test/*/*.png')).map((i) => i.path)).toEqual([
      join(root, 'part/test/crack/c1.png'),
      join(root, 'part/test/good/g.png'),
    ]);
    expect(() => collectImages([join(root, 'nothing/*.png')])).toThrow('matches no images');
    expect(() => collectImages([join(root, 'nope.png')])).toThrow(
      `${join(root, 'nope.png')}: no such file or folder`,
    );
  });

  it('follows symbolic links (refusing loops), reads every raster format, and says what it left out', () => {
    touch('links', 'real', 'a.png');
    touch('links', 'real', 'b.webp');
    touch('links', 'real', 'c.avif');
    touch('links', 'real', 'notes.txt');
    symlinkSync(join(root, 'links/real/a.png'), join(root, 'links/real/link.png'));
    symlinkSync(join(root, 'links/nowhere.png'), join(root, 'links/real/broken.png'));
    symlinkSync(join(root, 'links'), join(root, 'links/real/loop'));
    const warnings: string[] = [];
    const unreadable: string[] = [];
    const items = collectImages([join(root, 'links')], {
      onWarning: (w) => warnings.push(w),
      onUnreadable: (p, why) => unreadable.push(`${p}: ${why}`),
    });
    expect(items.map((i) => i.path)).toEqual(
      ['a.png', 'b.webp', 'c.avif', 'link.png'].map((n) => join(root, 'links/real', n)),
    );
    expect(unreadable).toEqual([
      `${join(root, 'links/real/broken.png')}: the link points to nothing (a broken symbolic link)`,
    ]);
    expect(warnings).toContain(
      `${join(root, 'links/real/loop')}: left out: a symbolic link leads back into a folder already being read (a loop)`,
    );
    expect(
      warnings.some((w) => w.startsWith('left out 1 file(s) that are not images kensa reads (.txt)')),
    ).toBe(true);
  });

  it("never takes a results folder as input: the run's own --out, or any folder kensa marked", () => {
    touch('inbox', 'p1.png');
    touch('inbox', 'results', 'overlays', 'p1.png');
    touch('inbox', 'old-results', 'overlays', 'p1.png');
    touch('inbox', 'old-results', '.kensa-results');
    const warnings: string[] = [];
    const items = collectImages([join(root, 'inbox')], {
      exclude: [join(root, 'inbox', 'results')],
      onWarning: (w) => warnings.push(w),
    });
    expect(items.map((i) => i.path)).toEqual([join(root, 'inbox/p1.png')]);
    expect(warnings).toEqual([
      `${join(root, 'inbox/old-results')}: left out: this is a kensa results folder, not input`,
      `${join(root, 'inbox/results')}: left out: this is a kensa results folder, not input`,
    ]);
  });
});
