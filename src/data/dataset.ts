/**
 * Finding images: a data set in the MVTec AD layout, or plain folders, files and globs.
 *
 *   DIR/train/good/*              training images (good only)
 *   DIR/test/good/*, DIR/test/<defect type>/*
 *   DIR/ground_truth/<defect type>/<name>_mask.png   optional masks
 *
 * A folder without train/ and test/ is a plain folder of images. Lists are sorted by path, so that runs
 * are reproducible. Symbolic links are followed (a link that leads back into a folder being read is not
 * followed twice). Nothing is left out silently: files that are not images, broken links and link loops
 * are reported through `onWarning`. Results folders are never read as input: the run's own output folder
 * and any folder kensa has marked as results (output-paths.ts) are skipped, and said so once.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { globSync, isDynamicPattern } from 'tinyglobby';
import { KensaError } from '../util/errors.js';
import { tr } from '../i18n.js';

/**
 * Raster formats kensa decodes: what sharp's libvips reads (JPEG, PNG, WebP, TIFF, GIF, AVIF) and BMP
 * (image/bmp.ts), the format many industrial cameras save.
 */
export const IMAGE_EXTENSIONS = [
  '.png',
  '.jpg',
  '.jpeg',
  '.jpe',
  '.jfif',
  '.bmp',
  '.tif',
  '.tiff',
  '.webp',
  '.gif',
  '.avif',
];
/** The file that marks a folder as kensa's results. */
export const RESULTS_MARKER = '.kensa-results';

export interface ImageItem {
  path: string;
  /** 'good', or the defect type (test/<type>); undefined when unknown (plain folders). */
  category?: string;
  /** 0 good, 1 defective; undefined when unknown. */
  label?: 0 | 1;
  mask?: string;
  /** The image's bytes when they are already in memory (the service); `path` then only names them. */
  bytes?: Buffer;
}

export interface Dataset {
  root: string;
  layout: 'mvtec' | 'folder';
  train: ImageItem[];
  test: ImageItem[];
}

export interface DiscoveryOptions {
  /** Folders whose contents are never taken as input (e.g. this run's --out). */
  exclude?: string[];
  /** What was left out and why (files that are not images, broken links, loops, results folders). */
  onWarning?: (message: string) => void;
  /** Paths that look like images but cannot be opened (broken links); predict lists them as errors. */
  onUnreadable?: (path: string, reason: string) => void;
}

const isImage = (name: string) => IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** Collects what discovery leaves out, to report it once per run. */
class Omissions {
  readonly notImages: string[] = [];
  readonly results = new Set<string>();
  constructor(private readonly options: DiscoveryOptions) {}

  warn(message: string): void {
    this.options.onWarning?.(message);
  }

  unreadable(path: string, reason: string): void {
    if (this.options.onUnreadable) this.options.onUnreadable(path, reason);
    else this.warn(`${path}: ${tr('left out', '除外')}: ${reason}`);
  }

  report(): void {
    if (this.notImages.length) {
      const exts = [...new Set(this.notImages.map((p) => extname(p).toLowerCase() || '(no extension)'))];
      const n = this.notImages.length;
      const list = exts.slice(0, 6).join(', ');
      this.warn(
        tr(
          `left out ${n} file${n === 1 ? ' that is not an image' : 's that are not images'} kensa reads (${list}), e.g. ${this.notImages[0]}`,
          `kensa が読む画像ではないファイル ${n} 個を除外しました（${list}）。例: ${this.notImages[0]}`,
        ),
      );
    }
    for (const dir of this.results)
      this.warn(
        `${dir}: ${tr('left out: this is a kensa results folder, not input', '除外: kensa の結果フォルダで、入力ではありません')}`,
      );
  }
}

/** A directory walker that follows links, skips excluded and results folders, and records omissions. */
export class Walker {
  private readonly excluded: string[];
  readonly omissions: Omissions;

  constructor(options: DiscoveryOptions) {
    this.excluded = (options.exclude ?? []).map((d) => {
      try {
        return realpathSync(resolve(d));
      } catch {
        return resolve(d);
      }
    });
    this.omissions = new Omissions(options);
  }

  /** Whether a folder (real path) is an output folder: this run's, or one marked as results. */
  private skipFolder(real: string, shown: string): boolean {
    const inside = this.excluded.some((e) => real === e || real.startsWith(e + sep));
    if (inside || existsSync(join(real, RESULTS_MARKER))) {
      this.omissions.results.add(shown);
      return true;
    }
    return false;
  }

  /** Image files directly in a folder (and, with `deep`, in its sub-folders), sorted by path. */
  images(dir: string, deep: boolean, seen = new Set<string>()): string[] {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      return [];
    }
    if (seen.has(real)) {
      this.omissions.warn(
        `${dir}: ${tr(
          'left out: a symbolic link leads back into a folder already being read (a loop)',
          '除外: シンボリックリンクが読み込み中のフォルダに戻っています（ループ）',
        )}`,
      );
      return [];
    }
    if (this.skipFolder(real, dir)) return [];
    seen.add(real);
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.omissions.warn(
        `${dir}: ${tr(`left out: the folder cannot be read (${code})`, `除外: フォルダを読めません（${code}）`)}`,
      );
      return [];
    }
    const out: string[] = [];
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.name === RESULTS_MARKER || e.name.startsWith('.kensa')) continue;
      let kind: 'file' | 'dir' | 'other' = e.isFile() ? 'file' : e.isDirectory() ? 'dir' : 'other';
      if (e.isSymbolicLink()) {
        try {
          const s = statSync(p);
          kind = s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (isImage(e.name))
            this.omissions.unreadable(
              p,
              code === 'ELOOP'
                ? 'the link is a loop of symbolic links'
                : 'the link points to nothing (a broken symbolic link)',
            );
          continue;
        }
      }
      if (kind === 'dir') {
        if (deep) out.push(...this.images(p, deep, seen));
      } else if (kind === 'file') {
        if (isImage(e.name)) out.push(p);
        else if (!e.name.startsWith('.')) this.omissions.notImages.push(p);
      } else if (isImage(e.name)) {
        this.omissions.unreadable(p, 'this is not a regular file (a pipe, socket or device)');
      }
    }
    seen.delete(real);
    return out.sort();
  }

  subdirs(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => (e.isDirectory() || e.isSymbolicLink()) && isDir(join(dir, e.name)))
      .map((e) => e.name)
      .sort();
  }
}

/**
 * Folder names that mean "good images" and "NG images", in the words engineers use: kensa's own verdict
 * words, the MVTec layout's, and Japanese (良品 / 不良). Compared case-insensitively.
 */
export const GOOD_FOLDER_NAMES = ['good', 'ok', '良品', '正常'];
export const NG_FOLDER_NAMES = ['ng', 'defect', '不良'];
const isGoodName = (name: string) => GOOD_FOLDER_NAMES.includes(name.normalize('NFKC').toLowerCase());
const isNgName = (name: string) => NG_FOLDER_NAMES.includes(name.normalize('NFKC').toLowerCase());

/**
 * The folders of a data set that reviewed images are copied into, by the names the data set already uses:
 * its folder of good training images (train/良品, train/OK, …; `good` where it has none, so that the next
 * kensa train does not find two) and its test folder for NG images (test/不良, test/NG, …; `NG` where it
 * has none).
 */
export function reviewFolders(dir: string): { good: string; ng: string } {
  const within = (sub: string, named: (name: string) => boolean, fallback: string) => {
    const d = join(dir, sub);
    return (isDir(d) ? new Walker({}).subdirs(d).find(named) : undefined) ?? fallback;
  };
  return { good: within('train', isGoodName, 'good'), ng: within('test', isNgName, 'NG') };
}

/** The mask of a test image: ground_truth/ mirrors test/ (sub-folders too), a mask named <stem>_mask.png. */
function findMask(root: string, testDir: string, category: string, file: string): string | undefined {
  const stem = basename(file, extname(file));
  const rel = relative(testDir, dirname(file)).split(sep).filter(Boolean);
  // ground_truth/<folders of the image under test/>, then each folder above it, then the defect type's
  const dirs = rel.map((_, i) => join(root, 'ground_truth', ...rel.slice(0, rel.length - i)));
  dirs.push(join(root, 'ground_truth', category));
  for (const dir of dirs) {
    if (!isDir(dir)) continue;
    for (const candidate of [`${stem}_mask.png`, `${stem}.png`, `${stem}_mask${extname(file)}`]) {
      const p = join(dir, candidate);
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

/**
 * The labelled images of a folder of class folders (test/, or a classifier's train/): a folder named for
 * good images (good, OK, 良品, 正常) holds good images; any other folder holds defective images of the
 * type it names, from every sub-folder within it (test/crack/batch2/*); a folder named for NG images
 * (NG, defect, 不良) holds defect types as sub-folders (test/NG/crack/*) or defective images directly.
 * Two folders of good images (test/good and test/OK) are an error that names both; images lying directly
 * in `dir`, outside any class folder, are left out with a warning.
 */
export function labelledImages(
  walker: Walker,
  dir: string,
  maskRoot?: string,
): { good: ImageItem[]; defective: ImageItem[] } {
  const good: ImageItem[] = [];
  const defective: ImageItem[] = [];
  const folders = walker.subdirs(dir);
  const goodFolders = folders.filter(isGoodName);
  if (goodFolders.length > 1)
    throw new KensaError(
      'E_ARGUMENT',
      `${goodFolders.length} folders of good images (${goodFolders.join(', ')}): kensa cannot tell which one holds the good images. Keep one of them`,
      { file: dir },
    );
  const loose = walker.images(dir, false);
  if (loose.length)
    walker.omissions.warn(
      `${dir}: ` +
        tr(
          `left out ${loose.length} image${loose.length === 1 ? '' : 's'} lying directly in this folder (e.g. ${basename(loose[0])}): ` +
            `put good images in ${join(dir, 'good')} and defective ones in a folder per defect type (or ${join(dir, 'NG')})`,
          `このフォルダの直下にある画像 ${loose.length} 枚を除外しました（例: ${basename(loose[0])}）。` +
            `良品は ${join(dir, 'good')} に、不良品は欠陥の種類ごとのフォルダ（または ${join(dir, 'NG')}）に入れてください`,
        ),
    );
  const defectItem = (path: string, category: string): ImageItem => ({
    path,
    category,
    label: 1,
    mask: maskRoot ? findMask(maskRoot, dir, category, path) : undefined,
  });
  for (const folder of folders) {
    const path = join(dir, folder);
    if (isGoodName(folder)) {
      for (const p of walker.images(path, true)) good.push({ path: p, category: 'good', label: 0 });
    } else if (isNgName(folder)) {
      for (const p of walker.images(path, false)) defective.push(defectItem(p, folder));
      for (const type of walker.subdirs(path))
        for (const p of walker.images(join(path, type), true)) defective.push(defectItem(p, type));
    } else {
      for (const p of walker.images(path, true)) defective.push(defectItem(p, folder));
    }
  }
  return { good, defective };
}

/** train/: its folder of good images, every image within it (sub-folders too); the other folders said. */
function trainItems(walker: Walker, root: string): ImageItem[] {
  const trainDir = join(root, 'train');
  if (!isDir(trainDir)) return [];
  const folders = walker.subdirs(trainDir);
  const goodFolders = folders.filter(isGoodName);
  if (goodFolders.length > 1)
    throw new KensaError(
      'E_ARGUMENT',
      `${goodFolders.length} folders of good images (${goodFolders.join(', ')}): kensa cannot tell which one to train on. Keep one of them`,
      { file: trainDir },
    );
  const others = folders.filter((f) => !isGoodName(f));
  if (others.length)
    walker.omissions.warn(
      `${trainDir}: ` +
        tr(
          `left out ${others.map((f) => `${f}/`).join(', ')}: kensa train learns from good images only ` +
            `(${GOOD_FOLDER_NAMES.map((n) => `train/${n}`).join(', ')}); for a classifier of good and NG images use kensa classify train`,
          `${others.map((f) => `${f}/`).join('、')} を除外しました。kensa train は良品画像だけで学習します` +
            `（${GOOD_FOLDER_NAMES.map((n) => `train/${n}`).join('、')}）。良品と NG の分類器には kensa classify train を使ってください`,
        ),
    );
  const loose = walker.images(trainDir, false);
  if (loose.length)
    walker.omissions.warn(
      `${trainDir}: ` +
        tr(
          `left out ${loose.length} image${loose.length === 1 ? '' : 's'} lying directly in train/ (e.g. ${basename(loose[0])}): put the good images in train/good`,
          `train/ の直下にある画像 ${loose.length} 枚を除外しました（例: ${basename(loose[0])}）。良品画像は train/good に入れてください`,
        ),
    );
  if (!goodFolders.length) return [];
  return walker
    .images(join(trainDir, goodFolders[0]), true)
    .map((path) => ({ path, category: 'good', label: 0 as const }));
}

function testItems(walker: Walker, root: string): ImageItem[] {
  const testDir = join(root, 'test');
  if (!isDir(testDir)) return [];
  const { good, defective } = labelledImages(walker, testDir, root);
  return [...good, ...defective].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function open(walker: Walker, dir: string): Dataset {
  const root = resolve(dir);
  if (!isDir(root)) {
    throw new KensaError('E_NOT_FOUND', 'the data folder does not exist. Check the path given to --data', {
      file: root,
    });
  }
  if (isDir(join(root, 'train')) || isDir(join(root, 'test')))
    return { root, layout: 'mvtec', train: trainItems(walker, root), test: testItems(walker, root) };
  // a plain folder of good images, its sub-folders too, but for those named for NG images
  const paths = walker.images(root, false);
  const ngFolders: string[] = [];
  for (const folder of walker.subdirs(root)) {
    if (isNgName(folder)) ngFolders.push(folder);
    else paths.push(...walker.images(join(root, folder), true));
  }
  if (ngFolders.length)
    walker.omissions.warn(
      `${root}: ` +
        tr(
          `left out ${ngFolders.map((f) => `${f}/`).join(', ')}: kensa train learns from good images only`,
          `${ngFolders.map((f) => `${f}/`).join('、')} を除外しました。kensa train は良品画像だけで学習します`,
        ),
    );
  const train = paths.sort().map((path) => ({ path, category: 'good', label: 0 as const }));
  return { root, layout: 'folder', train, test: [] };
}

/** Opens a data set folder (MVTec AD layout, or a plain folder of good images for training). */
export function openDataset(dir: string, options: DiscoveryOptions = {}): Dataset {
  const walker = new Walker(options);
  const ds = open(walker, dir);
  walker.omissions.report();
  return ds;
}

/**
 * The labelled test images of a data folder (test/good and test/<defect>), without looking at train/: what
 * is left out there concerns training, not a test run (a classifier's train/<defect> folders are its own).
 */
export function openTestImages(dir: string, options: DiscoveryOptions = {}): ImageItem[] {
  const walker = new Walker(options);
  const root = resolve(dir);
  if (!isDir(root))
    throw new KensaError('E_NOT_FOUND', 'the data folder does not exist. Check the path given to --data', {
      file: root,
    });
  const items = testItems(walker, root);
  walker.omissions.report();
  return items;
}

/**
 * Expands files, folders (every image in them and in their sub-folders) and glob patterns into one sorted, de-duplicated list. Names every argument that matched nothing.
 */
export function collectImages(inputs: string[], options: DiscoveryOptions = {}): ImageItem[] {
  const walker = new Walker(options);
  const seen = new Map<string, ImageItem>();
  const add = (item: ImageItem) => {
    if (!seen.has(item.path)) seen.set(item.path, item);
  };
  for (const input of inputs) {
    const path = resolve(input);
    if (isDir(path)) {
      // every image under the folder: the MVTec layout's folder names mean nothing here (a test/ folder
      // may be a day's images), except that the masks of a data set's ground_truth/ are not photographs
      const masks = join(path, 'ground_truth');
      const isDataSet = isDir(masks) && isDir(join(path, 'test'));
      const items = walker
        .images(path, true)
        .filter((p) => !(isDataSet && p.startsWith(masks + sep)))
        .map((p) => ({ path: p }));
      if (isDataSet)
        walker.omissions.warn(
          `${masks}: ${tr(
            'left out: the masks of a data set in the MVTec layout are not images to inspect',
            '除外: MVTec 形式のデータセットのマスクは検査する画像ではありません',
          )}`,
        );
      if (!items.length && !walker.omissions.results.has(path))
        throw new KensaError('E_NOT_FOUND', `the folder holds no images (${IMAGE_EXTENSIONS.join(', ')})`, {
          file: path,
        });
      items.forEach(add);
    } else if (existsSync(path)) {
      // a file named directly is taken whatever its extension: the decoder says whether it is an image
      add({ path });
    } else if (isDynamicPattern(input)) {
      const matches = globSync(input, { absolute: true, onlyFiles: true, followSymbolicLinks: true })
        .filter(isImage)
        .filter((p) => !(options.exclude ?? []).some((e) => !relative(resolve(e), p).startsWith('..')))
        .sort();
      if (!matches.length) throw new KensaError('E_NOT_FOUND', `the pattern '${input}' matches no images`);
      matches.forEach((p) => add({ path: p }));
    } else {
      throw new KensaError('E_NOT_FOUND', 'no such file or folder', { file: path });
    }
  }
  walker.omissions.report();
  return [...seen.values()];
}

/** The labelled images of a folder of class folders (see labelledImages), with what was left out said. */
export function openLabelled(
  dir: string,
  options: DiscoveryOptions = {},
): { good: ImageItem[]; defective: ImageItem[] } {
  const walker = new Walker(options);
  const root = resolve(dir);
  if (!isDir(root)) throw new KensaError('E_NOT_FOUND', 'the folder does not exist', { file: root });
  const found = labelledImages(walker, root);
  walker.omissions.report();
  return found;
}

/** What a data folder that gave no training images holds, for the error that says so. */
export function whyNoTrainingImages(spec: string): string {
  const root = resolve(spec);
  const expected = `expected ${GOOD_FOLDER_NAMES.map((n) => `train/${n}/`).join(', ')} (any case) or a folder of good images`;
  if (!isDir(root)) return expected;
  const train = join(root, 'train');
  let seen: string[];
  try {
    seen = isDir(train) ? readdirSync(train).map((n) => `train/${n}`) : readdirSync(root);
  } catch {
    return expected;
  }
  return `${expected}; the folder holds ${seen.length ? seen.slice(0, 8).join(', ') + (seen.length > 8 ? ', ...' : '') : 'nothing'}`;
}

/**
 * A list of images in a text file, one a line: a path, or a verdict, a tab and a path — the review list
 * the report writes (review.txt: `good<TAB>path` for an NG image marked a good part, `ng<TAB>path` for an
 * OK image marked defective). Empty lines and lines starting with # are skipped. A relative path is taken
 * from the current folder, else from the list's own folder. A path that is not there is an error naming
 * the list and its line, so that no image is silently missing.
 */
export function readImageList(file: string): { good: ImageItem[]; ng: ImageItem[] } {
  const list = resolve(file);
  let text: string;
  try {
    text = readFileSync(list, 'utf8');
  } catch (error) {
    throw new KensaError('E_NOT_FOUND', `cannot read the image list: ${(error as Error).message}`, {
      file: list,
    });
  }
  const good: ImageItem[] = [];
  const ng: ImageItem[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^\uFEFF/, '').trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(good|ng)\t(.+)$/i.exec(line);
    const verdict = m ? m[1].toLowerCase() : 'good';
    const given = (m ? m[2] : line).trim();
    const here = resolve(given);
    const path = existsSync(here) ? here : resolve(dirname(list), given);
    if (!existsSync(path))
      throw new KensaError(
        'E_NOT_FOUND',
        `line ${i + 1} names ${given}, which is not there (a relative path is taken from the current folder, then from the list's folder); ` +
          'run the command from the folder the list was made in, or correct the line',
        { file: list },
      );
    if (seen.has(path)) return;
    seen.add(path);
    (verdict === 'good' ? good : ng).push(
      verdict === 'good' ? { path, category: 'good', label: 0 } : { path, label: 1 },
    );
  });
  return { good, ng };
}

/** Whether a path names a list of images (a text file) rather than an image, a folder or a pattern. */
export function isImageList(spec: string): boolean {
  return LIST_EXTENSIONS.includes(extname(spec).toLowerCase()) && existsSync(spec) && !isDir(spec);
}
const LIST_EXTENSIONS = ['.txt', '.tsv', '.lst', '.list'];

/**
 * Good images from several places (kensa update --add): each a data folder, a plain folder, a glob, an
 * image list, or an image file; in the order given, each image once. A place that gives no image is an
 * error that names it and says what it holds.
 */
export function goodImages(specs: readonly string[], options: DiscoveryOptions = {}): ImageItem[] {
  const seen = new Map<string, ImageItem>();
  for (const spec of specs) {
    const direct = existsSync(spec) && !isDir(spec) && !isImageList(spec);
    const found = direct
      ? [{ path: resolve(spec), category: 'good', label: 0 as const }]
      : trainingImages(spec, options);
    if (!found.length)
      throw new KensaError('E_NOT_FOUND', `no good images here: ${whyNoTrainingImages(spec)}`, {
        file: spec,
      });
    for (const item of found) if (!seen.has(item.path)) seen.set(item.path, item);
  }
  return [...seen.values()];
}

/**
 * Training images from a data folder (train/good of an MVTec layout, or a plain folder), a glob pattern,
 * or an image list (readImageList: its good lines; the NG ones are said and left out).
 */
export function trainingImages(spec: string, options: DiscoveryOptions = {}): ImageItem[] {
  if (isImageList(spec)) {
    const { good, ng } = readImageList(spec);
    if (ng.length)
      options.onWarning?.(
        `${spec}: ` +
          tr(
            `${ng.length} image${ng.length === 1 ? ' is' : 's are'} marked ng in the list, not taken as good images ` +
              "(copy them into the data set's test/NG for the next kensa test)",
            `一覧で ng とされた画像 ${ng.length} 枚は良品として使いません（次の kensa test 用にデータセットの test/NG へコピーしてください）`,
          ),
      );
    return good;
  }
  if (!existsSync(spec) && isDynamicPattern(spec))
    return collectImages([spec], options).map((i) => ({ ...i, category: 'good', label: 0 }));
  return openDataset(spec, options).train;
}
