/**
 * kensa predict: inspects new images with a trained model and writes predictions.csv and
 * predictions.json (score, normalised score, OK/NG verdict, defect regions as boxes in original
 * pixels), regions.csv (one row per region), ng_list.txt, and a heat-map overlay per image. No labels
 * needed, no re-training. An image that cannot be read, or whose pictures cannot be written, is listed in
 * errors.csv; the others get their results.
 */
import { collectImages, type ImageItem } from '../../data/dataset.js';
import { checkOptions } from '../../options.js';
import type { ThresholdChoice } from '../contracts/decisions.js';
import type { DriftStatus } from '../contracts/drift.js';
import type { KensaModel } from '../contracts/model-file.js';
import { runImages, type Prediction, type RunError, type ScoringOptions } from '../engine/run.js';

export interface PredictOptions extends ScoringOptions {
  model: string | KensaModel;
  /** Files, folders or glob patterns, or items. */
  inputs: string[] | ImageItem[];
  out: string;
  threshold?: ThresholdChoice;
  /** Heat-map overlays (default true) and five-panel figures (default false; on with report). */
  overlays?: boolean;
  figures?: boolean;
  /** Also write the HTML report (report.html). */
  report?: boolean;
  /** Stop at the first unreadable image instead of listing it in errors.csv and going on. */
  failFast?: boolean;
}

export type { Prediction, RunError as PredictError };

export async function predict(
  options: PredictOptions,
): Promise<{ predictions: Prediction[]; errors: RunError[]; threshold: number; drift: DriftStatus }> {
  checkOptions(options, ['batch', 'pixelLimit', 'mmPerPixel', 'minDefectMm', 'overlayOpacity']);
  const overlays = options.overlays ?? true;
  const figures = !!(options.figures || options.report);
  const r = await runImages({
    ...options,
    kind: 'predict',
    images: ({ exclude, unreadable }) =>
      options.inputs.length && typeof options.inputs[0] === 'string'
        ? collectImages(options.inputs as string[], {
            exclude,
            onWarning: options.onWarning,
            onUnreadable: unreadable,
          })
        : (options.inputs as ImageItem[]),
    pictures: { thumbs: overlays || figures, overlays, figures },
    task: 'predict',
  });
  return { predictions: r.predictions, errors: r.errors, threshold: r.threshold.value, drift: r.drift };
}
