import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  collectImages,
  openDataset,
  openLabelled,
  openTestImages,
  reviewFolders,
  trainingImages,
} from '../../src/data/dataset.js';

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

  it('a plain folder is all training images, sub-folders too; folders for predict include sub-folders; globs work', () => {
    expect(openDataset(join(root, 'plain')).train.map((i) => i.path)).toEqual([
      join(root, 'plain/sub/y.tiff'),
      join(root, 'plain/x.tif'),
    ]);
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
      warnings.some((w) => w.startsWith('left out 1 file that is not an image kensa reads (.txt)')),
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

  it('predict inspects every image under a folder, whatever its sub-folders are called', () => {
    // a shift's folder with a test/ sub-folder is not a data set: every image in it is inspected
    for (const p of [
      ['shift', 'test', '2024-06-01', 'p1.png'],
      ['shift', 'line2', 'r01.png'],
      ['shift', 'line2', 'r02.png'],
      ['shift', 'line2', 'night', 'r03.bmp'],
      ['shift', 'p9.png'],
      ['shift', 'train', 'good', 'g1.png'],
    ])
      touch(...p);
    const items = collectImages([join(root, 'shift')]);
    expect(items.map((i) => i.path)).toEqual(
      [
        'line2/night/r03.bmp',
        'line2/r01.png',
        'line2/r02.png',
        'p9.png',
        'test/2024-06-01/p1.png',
        'train/good/g1.png',
      ].map((p) => join(root, 'shift', p)),
    );
    // no label is read from folder names: a date folder under test/ is not a defect type
    expect(items.every((i) => i.label === undefined && i.category === undefined)).toBe(true);
    // a data set's root: everything but the masks, and the masks' folder is named
    const warnings: string[] = [];
    const all = collectImages([join(root, 'part')], { onWarning: (w) => warnings.push(w) });
    expect(all.map((i) => i.path)).toEqual(
      [
        'test/crack/c1.png',
        'test/crack/c2.bmp',
        'test/good/g.png',
        'train/good/a.JPG',
        'train/good/b.png',
      ].map((p) => join(root, 'part', p)),
    );
    expect(warnings).toContain(
      `${join(root, 'part/ground_truth')}: left out: the masks of a data set in the MVTec layout are not images to inspect`,
    );
  });

  it('train and test take the images of sub-folders (train/good/older, test/blowhole/batch2) with their masks', () => {
    touch('deep', 'train', 'good', 'a.png');
    touch('deep', 'train', 'good', 'older', 'b.png');
    touch('deep', 'train', 'good', 'older', '2023', 'c.png');
    touch('deep', 'test', 'good', 'g.png');
    touch('deep', 'test', 'good', 'day2', 'g2.png');
    touch('deep', 'test', 'blowhole', 'h1.png');
    touch('deep', 'test', 'blowhole', 'batch2', 'h2.png');
    touch('deep', 'test', 'blowhole', 'batch2', 'h3.png');
    touch('deep', 'ground_truth', 'blowhole', 'h1_mask.png');
    touch('deep', 'ground_truth', 'blowhole', 'batch2', 'h2_mask.png');
    touch('deep', 'ground_truth', 'blowhole', 'h3_mask.png');
    const ds = openDataset(join(root, 'deep'));
    expect(ds.train.map((i) => i.path)).toEqual(
      ['a.png', 'older/2023/c.png', 'older/b.png'].map((p) => join(root, 'deep/train/good', p)),
    );
    const d = (p: string) => join(root, 'deep', p);
    expect(ds.test).toEqual([
      {
        path: d('test/blowhole/batch2/h2.png'),
        category: 'blowhole',
        label: 1,
        mask: d('ground_truth/blowhole/batch2/h2_mask.png'),
      },
      {
        path: d('test/blowhole/batch2/h3.png'),
        category: 'blowhole',
        label: 1,
        mask: d('ground_truth/blowhole/h3_mask.png'),
      },
      {
        path: d('test/blowhole/h1.png'),
        category: 'blowhole',
        label: 1,
        mask: d('ground_truth/blowhole/h1_mask.png'),
      },
      { path: d('test/good/day2/g2.png'), category: 'good', label: 0 },
      { path: d('test/good/g.png'), category: 'good', label: 0 },
    ]);
  });

  it("the shop floor's folder names: OK / NG (with types beneath or not), 良品 / 不良, any case", () => {
    touch('jp', 'train', '良品', 'a.png');
    touch('jp', 'test', 'OK', 'o1.png');
    touch('jp', 'test', 'NG', 'n1.png');
    touch('jp', 'test', 'NG', 'crack', 'n2.png');
    touch('jp', 'test', '不良', 'n3.png');
    const ds = openDataset(join(root, 'jp'));
    expect(ds.train.map((i) => i.path)).toEqual([join(root, 'jp/train/良品/a.png')]);
    expect(ds.test.map((i) => [i.path.slice(join(root, 'jp/test').length + 1), i.category, i.label])).toEqual(
      [
        ['NG/crack/n2.png', 'crack', 1],
        ['NG/n1.png', 'NG', 1],
        ['OK/o1.png', 'good', 0],
        ['不良/n3.png', '不良', 1],
      ],
    );
    touch('cap', 'train', 'Good', 'a.png');
    touch('cap', 'test', 'Good', 'g.png');
    touch('cap', 'test', 'Defect', 'd.png');
    const cap = openDataset(join(root, 'cap'));
    expect(cap.train).toHaveLength(1);
    expect(cap.test.map((i) => [i.category, i.label])).toEqual([
      ['Defect', 1],
      ['good', 0],
    ]);
    // a classifier's train/ follows the same rule
    const labelled = openLabelled(join(root, 'jp/test'));
    expect([labelled.good.length, labelled.defective.length]).toEqual([1, 3]);
    // the report's review copies go into the folders the data set already has, by its names
    expect(reviewFolders(join(root, 'jp'))).toEqual({ good: '良品', ng: 'NG' });
    expect(reviewFolders(join(root, 'cap'))).toEqual({ good: 'Good', ng: 'Defect' });
    expect(reviewFolders(join(root, 'part'))).toEqual({ good: 'good', ng: 'NG' });
    touch('jp2', 'train', 'OK', 'a.png');
    touch('jp2', 'test', '不良', 'crack', 'n.png');
    expect(reviewFolders(join(root, 'jp2'))).toEqual({ good: 'OK', ng: '不良' });
    expect(reviewFolders(join(root, 'no-such-folder'))).toEqual({ good: 'good', ng: 'NG' });
  });

  it('says what it leaves out, and refuses what it cannot tell apart', () => {
    touch('odd', 'train', 'good', 'a.png');
    touch('odd', 'train', 'crack', 'c.png');
    touch('odd', 'train', 'stray.png');
    touch('odd', 'test', 'loose.png');
    touch('odd', 'test', 'good', 'g.png');
    const warnings: string[] = [];
    const ds = openDataset(join(root, 'odd'), { onWarning: (w) => warnings.push(w) });
    expect(ds.train.map((i) => i.path)).toEqual([join(root, 'odd/train/good/a.png')]);
    expect(warnings.join('\n')).toContain(
      `${join(root, 'odd/train')}: left out crack/: kensa train learns from good images only`,
    );
    expect(warnings.join('\n')).toContain(
      `${join(root, 'odd/train')}: left out 1 image lying directly in train/ (e.g. stray.png)`,
    );
    expect(warnings.join('\n')).toContain(
      `${join(root, 'odd/test')}: left out 1 image lying directly in this folder (e.g. loose.png)`,
    );
    // a test run reads test/ only: what train/ leaves out is not its concern
    const testWarnings: string[] = [];
    const tested = openTestImages(join(root, 'odd'), { onWarning: (w) => testWarnings.push(w) });
    expect(tested.map((i) => i.path)).toEqual([join(root, 'odd/test/good/g.png')]);
    expect(testWarnings.join('\n')).not.toContain('odd/train');
    expect(testWarnings.join('\n')).toContain(
      'left out 1 image lying directly in this folder (e.g. loose.png)',
    );
    touch('two', 'train', 'good', 'a.png');
    touch('two', 'train', 'OK', 'b.png');
    expect(() => openDataset(join(root, 'two'))).toThrow(
      `${join(root, 'two/train')}: 2 folders of good images (OK, good): kensa cannot tell which one to train on. Keep one of them`,
    );
    touch('two-test', 'test', 'good', 'a.png');
    touch('two-test', 'test', '良品', 'b.png');
    expect(() => openDataset(join(root, 'two-test'))).toThrow('2 folders of good images (good, 良品)');
    // a plain folder with an NG folder inside: the NG images are not trained on
    touch('plain-ng', 'a.png');
    touch('plain-ng', 'NG', 'b.png');
    const w2: string[] = [];
    expect(openDataset(join(root, 'plain-ng'), { onWarning: (w) => w2.push(w) }).train).toHaveLength(1);
    expect(w2).toEqual([`${join(root, 'plain-ng')}: left out NG/: kensa train learns from good images only`]);
  });
});
