/**
 * The one place that talks to onnxruntime. Everything else hands it ONNX bytes and float32 arrays, so a
 * browser build can swap onnxruntime-node for onnxruntime-web here alone.
 */
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { KensaError } from '../util/errors.js';

type Ort = typeof import('onnxruntime-node');
let ortModule: Promise<Ort> | undefined;

/** Loads the native binding once, with one actionable message when it is missing. */
export function loadOrt(): Promise<Ort> {
  ortModule ??= import('onnxruntime-node').catch((error: unknown) => {
    ortModule = undefined;
    throw new KensaError(
      'E_RUNTIME',
      `could not load onnxruntime-node (${(error as Error).message}).\nPossible solutions:\n` +
        '- Run "npm ci" (or "npm install") again in the project folder, so that the package and its binaries are complete.\n' +
        '- Check that this platform is supported by onnxruntime-node (Linux, macOS or Windows on x64/arm64).',
      { cause: error },
    );
  });
  return ortModule;
}

export interface RunOutput {
  data: Float32Array;
  dims: number[];
}

/** A float64 tensor, for the few graphs that need double precision (PaDiM's leave-one-out). */
export interface RunOutput64 {
  data: Float64Array;
  dims: number[];
}

export interface SessionOptions {
  /** Threads for one operator; default: onnxruntime's choice (all physical cores). */
  threads?: number;
  /** Keep onnxruntime's memory arena (fast for repeated equal shapes; it never shrinks). Default true. */
  arena?: boolean;
  /**
   * Let the operator threads spin, waiting for the next piece of work, when one is done. Right for a
   * session called alone in a tight loop (the coreset's rounds: many small products with little in
   * between); wrong where sessions take turns (backbone, embedding, search for each batch): every session
   * has its own threads, and those spinning take the two cores from those working. Measured on MTD
   * (BENCHMARKS.md, Speed): scoring one image at a time 257 → 101 ms with spinning off; a coreset of 30 k
   * picks from 300 k rows 5.1–5.9 s → 6.5–7.5 s with it off. Default false.
   */
  spin?: boolean;
}

export class OnnxSession {
  private constructor(
    private readonly ort: Ort,
    private readonly session: InferenceSession,
  ) {}

  static async create(model: Uint8Array, options: SessionOptions = {}): Promise<OnnxSession> {
    const ort = await loadOrt();
    const session = await ort.InferenceSession.create(model, {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      enableCpuMemArena: options.arena ?? true,
      logSeverityLevel: 3, // errors only: kensa reports its own warnings
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
      // spinning is onnxruntime's default: only turning it off is said (saying '1' measured slower)
      ...(options.spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
    });
    return new OnnxSession(ort, session);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Runs the graph; inputs are checked against the session's input names first. `into` names outputs to
   * write into buffers the caller owns (no allocation), e.g. accumulators reused across calls.
   */
  async run(
    inputs: Record<string, RunOutput | RunOutput64>,
    outputs?: readonly string[],
    into?: Record<string, RunOutput>,
  ): Promise<Record<string, RunOutput>> {
    const missing = this.session.inputNames.filter((n) => !(n in inputs));
    if (missing.length) {
      throw new KensaError(
        'E_ARGUMENT',
        `missing model inputs: ${missing.join(', ')} (the model takes ${this.session.inputNames.join(', ')})`,
      );
    }
    const tensor = (v: RunOutput | RunOutput64) =>
      v.data instanceof Float64Array
        ? new this.ort.Tensor('float64', v.data, v.dims)
        : new this.ort.Tensor('float32', v.data, v.dims);
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, v] of Object.entries(inputs)) feeds[name] = tensor(v);
    if (into) {
      const fetches: Record<string, OrtTensor> = {};
      for (const [name, v] of Object.entries(into)) fetches[name] = tensor(v);
      await this.session.run(feeds, fetches);
      return into;
    }
    const result = outputs
      ? await this.session.run(feeds, outputs as string[])
      : await this.session.run(feeds);
    const out: Record<string, RunOutput> = {};
    for (const [name, t] of Object.entries(result))
      out[name] = { data: t.data as Float32Array, dims: [...t.dims] };
    return out;
  }

  /** Runs a graph whose outputs are float64 (inputs checked as in run). */
  async run64(inputs: Record<string, RunOutput | RunOutput64>): Promise<Record<string, RunOutput64>> {
    const out = (await this.run(inputs)) as unknown as Record<string, { data: unknown; dims: number[] }>;
    for (const [name, v] of Object.entries(out))
      if (!(v.data instanceof Float64Array))
        throw new KensaError('E_RUNTIME', `output ${name} of the graph is not float64`);
    return out as Record<string, RunOutput64>;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
