/**
 * results.json: everything the HTML report needs from a `kensa test` or `kensa predict` run — the
 * thresholds, the metrics, and per image its score, verdict, label (when known) and the pictures written
 * for it (relative paths inside the results folder).
 */
import { join, resolve } from 'node:path';
import { readFileOrExplain } from '../io/read.js';
import { writeJson } from '../io/results.js';
import { KensaError } from '../util/errors.js';

export const RESULTS_FILE = 'results.json';

export interface ResultImage {
  file: string;
  /** Output name (unique in this run), e.g. "crack_007". */
  name: string;
  category?: string;
  /** 0 good, 1 defective, when known. */
  label?: 0 | 1;
  score: number;
  regions: number;
  /** Relative paths, when written. */
  thumb?: string;
  figure?: string;
  overlay?: string;
}

export interface ResultsFile {
  kind: 'test' | 'predict';
  model: {
    path?: string;
    method?: string;
    backbone: string;
    thresholds: Record<string, number | null | undefined>;
  };
  /** The data set folder of a kensa test run (absolute), where the review's images are copied to. */
  data?: string;
  /** With `data`: its folders for good training images and NG test images, as it names them (reviewFolders). */
  folders?: { good: string; ng: string };
  /** The threshold the verdicts were made with. */
  threshold: number;
  /**
   * The calibration scores the thresholds rest on (good images the model had not seen), for the report to
   * show beside the scores of this run, and the highest of them with a thumbnail where the file was found.
   */
  calibration?: {
    mode: string;
    scores: number[];
    excluded: number;
    /** 'odds' where `above` compares odds (probabilities: a classifier), else the scores. */
    measure?: 'odds';
    highest: { file: string; score: number; above: number | null; thumb?: string }[];
  };
  metrics?: Record<string, unknown>;
  images: ResultImage[];
}

/**
 * The model block of a results file: the model's path (absolute, when it was given as one), its method, backbone
 * and thresholds (by default the model's own).
 */
export function resultsModel(
  source: string | object,
  meta: { method: string; backbone: { name: string }; thresholds: object },
  thresholds: object = meta.thresholds,
): ResultsFile['model'] {
  return {
    path: typeof source === 'string' ? resolve(source) : undefined,
    method: meta.method,
    backbone: meta.backbone.name,
    thresholds: { ...(thresholds as ResultsFile['model']['thresholds']) },
  };
}

export async function writeResultsFile(dir: string, results: ResultsFile): Promise<void> {
  await writeJson(join(dir, RESULTS_FILE), results);
}

export async function readResultsFile(dir: string): Promise<ResultsFile> {
  const path = join(dir, RESULTS_FILE);
  const text = new TextDecoder().decode(
    await readFileOrExplain(
      path,
      RESULTS_FILE,
      'Give the folder written by kensa test or kensa predict (--out)',
    ),
  );
  try {
    const r = JSON.parse(text) as ResultsFile;
    if (!Array.isArray(r.images) || typeof r.threshold !== 'number')
      throw new Error('missing images or threshold');
    return r;
  } catch (error) {
    throw new KensaError(
      'E_FORMAT',
      `not a kensa results file (${(error as Error).message}); run kensa test or kensa predict again`,
      { file: path },
    );
  }
}
