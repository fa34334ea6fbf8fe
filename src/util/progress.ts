/**
 * Progress reporting. Library code reports through a callback; the CLI turns the callback into a bar
 * (cli-progress) on a terminal, or into occasional plain lines when the output is a file or a pipe.
 */
export interface ProgressEvent {
  /** What is being done, e.g. "download resnet18-f37072fd.pth" or "train features". */
  task: string;
  done: number;
  total: number;
  /** Unit of done/total, e.g. "bytes" or "images". */
  unit: string;
  /** Where inside the current item, e.g. "image 3: tile 40/72" for a large image cut into tiles. */
  detail?: string;
  /**
   * Where the whole run stands, in image passes (train: the fitting pass and the calibration's), for an
   * estimate of the time left in all its steps, not only this one.
   */
  run?: { done: number; total: number };
}

export type ProgressCallback = (event: ProgressEvent) => void;

/**
 * A run of several steps over images: `at(base)` is a callback for a step that starts after `base` image
 * passes; its image events tell the run's progress too (other units: where the run stands).
 */
export function runProgress(
  total: number,
  onProgress: ProgressCallback | undefined,
): (base: number) => ProgressCallback {
  return (base) => (e) =>
    onProgress?.({
      ...e,
      run: { done: Math.min(total, base + (e.unit === 'images' ? e.done : 0)), total },
    });
}
