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
}

export type ProgressCallback = (event: ProgressEvent) => void;
