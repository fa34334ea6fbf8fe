/**
 * Finding images: a data set in the MVTec AD layout, or plain folders, files and globs.
 *
 *   DIR/train/good/*              training images (good only)
 *   DIR/test/good/*, DIR/test/<defect type>/*
 *   DIR/ground_truth/<defect type>/<name>_mask.png   optional masks
 *
 * A folder without train/ and test/ is a plain folder of images. Lists are sorted by path, so that runs
 * are reproducible.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { globSync, isDynamicPattern } from 'tinyglobby';
import { KensaError } from '../util/errors.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff'];

export interface ImageItem {
  path: string;
  /** 'good', or the defect type (test/<type>); undefined when unknown (plain folders). */
  category?: string;
  /** 0 good, 1 defective; undefined when unknown. */
  label?: 0 | 1;
  mask?: string;
}

export interface Dataset {
  root: string;
  layout: 'mvtec' | 'folder';
  train: ImageItem[];
  test: ImageItem[];
}

const isImage = (name: string) => IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

function imagesIn(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && isImage(e.name))
    .map((e) => join(dir, e.name))
    .sort();
}

/** Images in a folder and its sub-folders, sorted by path. */
function imagesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...imagesBelow(p));
    else if (e.isFile() && isImage(e.name)) out.push(p);
  }
  return out.sort();
}

function subdirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

function findMask(root: string, category: string, file: string): string | undefined {
  const stem = basename(file, extname(file));
  const dir = join(root, 'ground_truth', category);
  if (!isDir(dir)) return undefined;
  for (const candidate of [`${stem}_mask.png`, `${stem}.png`, `${stem}_mask${extname(file)}`]) {
    const p = join(dir, candidate);
    if (existsSync(p)) return p;
  }
  return undefined;
}

function testItems(root: string): ImageItem[] {
  const testDir = join(root, 'test');
  if (!isDir(testDir)) return [];
  const items: ImageItem[] = [];
  for (const category of subdirs(testDir)) {
    for (const path of imagesIn(join(testDir, category))) {
      const good = category === 'good';
      items.push({
        path,
        category,
        label: good ? 0 : 1,
        mask: good ? undefined : findMask(root, category, path),
      });
    }
  }
  return items;
}

/** Opens a data set folder (MVTec AD layout, or a plain folder of good images for training). */
export function openDataset(dir: string): Dataset {
  const root = resolve(dir);
  if (!isDir(root)) {
    throw new KensaError('E_NOT_FOUND', 'the data folder does not exist. Check the path given to --data', {
      file: root,
    });
  }
  const trainGood = join(root, 'train', 'good');
  if (isDir(join(root, 'train')) || isDir(join(root, 'test'))) {
    const train = isDir(trainGood)
      ? imagesIn(trainGood).map((path) => ({ path, category: 'good', label: 0 as const }))
      : [];
    return { root, layout: 'mvtec', train, test: testItems(root) };
  }
  const train = imagesIn(root).map((path) => ({ path, category: 'good', label: 0 as const }));
  return { root, layout: 'folder', train, test: [] };
}

/**
 * Expands files, folders (their images and those of sub-folders; an MVTec-layout folder gives its test set) and glob
 * patterns into one sorted, de-duplicated list. Names every argument that matched nothing.
 */
export function collectImages(inputs: string[]): ImageItem[] {
  const seen = new Map<string, ImageItem>();
  const add = (item: ImageItem) => {
    if (!seen.has(item.path)) seen.set(item.path, item);
  };
  for (const input of inputs) {
    const path = resolve(input);
    if (isDir(path)) {
      const ds = openDataset(path);
      const items =
        ds.layout === 'mvtec' && ds.test.length ? ds.test : imagesBelow(path).map((p) => ({ path: p }));
      if (!items.length)
        throw new KensaError('E_NOT_FOUND', `the folder holds no images (${IMAGE_EXTENSIONS.join(', ')})`, {
          file: path,
        });
      items.forEach(add);
    } else if (existsSync(path)) {
      add({ path });
    } else if (isDynamicPattern(input)) {
      const matches = globSync(input, { absolute: true, onlyFiles: true }).filter(isImage).sort();
      if (!matches.length) throw new KensaError('E_NOT_FOUND', `the pattern '${input}' matches no images`);
      matches.forEach((p) => add({ path: p }));
    } else {
      throw new KensaError('E_NOT_FOUND', 'no such file or folder', { file: path });
    }
  }
  return [...seen.values()];
}

/** Training images from a data folder (train/good of an MVTec layout, or a plain folder) or a glob pattern. */
export function trainingImages(spec: string): ImageItem[] {
  if (!existsSync(spec) && isDynamicPattern(spec))
    return collectImages([spec]).map((i) => ({ ...i, category: 'good', label: 0 }));
  return openDataset(spec).train;
}
