/**
 * The heavy linear algebra of PaDiM as small ONNX graphs on onnxruntime (batched over positions):
 *   accumulate:  S[p] += X[p]ᵀ X[p]                 X: [P, K, d] (centred), S: [P, d, d]
 *   inverse:     Σ[p]⁻¹ in float64 (com.microsoft Inverse)
 * Each graph is built once per process and reused.
 */
import { DataType, encodeGraph, valueInfo } from '../../onnx/graph.js';
import { OnnxSession } from '../../onnx/runtime.js';

/**
 * These graphs handle hundreds of megabytes per call: no arena, so memory goes back after each call. Each
 * is called alone in a loop over chunks of positions: its threads spin between calls (OnnxSession).
 */
const NO_ARENA = { arena: false, spin: true };

let sessions: Promise<{ accumulate: OnnxSession; inverse: OnnxSession; inverse64: OnnxSession }> | undefined;

function getSessions() {
  sessions ??= (async () => ({
    accumulate: await OnnxSession.create(
      encodeGraph(
        'accumulate',
        [
          { op: 'Transpose', inputs: ['x'], output: 'xt', attrs: { perm: [0, 2, 1] } },
          { op: 'MatMul', inputs: ['xt', 'x'], output: 'xtx' },
          { op: 'Add', inputs: ['xtx', 'acc'], output: 'sum' },
        ],
        [valueInfo('x', ['p', 'k', 'd']), valueInfo('acc', ['p', 'd', 'd'])],
        [valueInfo('sum', ['p', 'd', 'd'])],
      ),
      NO_ARENA,
    ),
    inverse: await OnnxSession.create(
      encodeGraph(
        'inverse',
        [
          { op: 'Cast', inputs: ['a'], output: 'a64', attrs: { to: DataType.DOUBLE } },
          { op: 'Inverse', domain: 'com.microsoft', inputs: ['a64'], output: 'inv64' },
          { op: 'Cast', inputs: ['inv64'], output: 'inv', attrs: { to: DataType.FLOAT } },
        ],
        [valueInfo('a', ['p', 'd', 'd'])],
        [valueInfo('inv', ['p', 'd', 'd'])],
      ),
      NO_ARENA,
    ),
    inverse64: await OnnxSession.create(
      encodeGraph(
        'inverse64',
        [
          { op: 'Cast', inputs: ['a'], output: 'a64', attrs: { to: DataType.DOUBLE } },
          { op: 'Inverse', domain: 'com.microsoft', inputs: ['a64'], output: 'inv' },
        ],
        [valueInfo('a', ['p', 'd', 'd'])],
        [valueInfo('inv', ['p', 'd', 'd'], DataType.DOUBLE)],
      ),
      NO_ARENA,
    ),
  }))();
  return sessions;
}

/** Positions per accumulate call: bounds onnxruntime's intermediate buffers (Xᵀ and Xᵀ X of a chunk). */
const ACCUMULATE_CHUNK = 1024;

/**
 * acc += Xᵀ X for each position, in place (acc: P·d·d values). onnxruntime writes each chunk's sum into
 * one chunk-sized buffer that is copied back, so no second full-size accumulator is needed.
 */
export async function accumulateOuter(
  x: Float32Array,
  acc: Float32Array,
  P: number,
  K: number,
  d: number,
): Promise<void> {
  const s = (await getSessions()).accumulate;
  const dd = d * d;
  const spare = new Float32Array(Math.min(ACCUMULATE_CHUNK, P) * dd);
  for (let start = 0; start < P; start += ACCUMULATE_CHUNK) {
    const n = Math.min(ACCUMULATE_CHUNK, P - start);
    const part = acc.subarray(start * dd, (start + n) * dd);
    const into = spare.subarray(0, n * dd);
    await s.run(
      {
        x: { data: x.subarray(start * K * d, (start + n) * K * d), dims: [n, K, d] },
        acc: { data: part, dims: [n, d, d] },
      },
      undefined,
      { sum: { data: into, dims: [n, d, d] } },
    );
    part.set(into);
  }
}

/** Positions inverted per call: bounds the float64 working copies (3 × 256 · d² · 8 bytes). */
const INVERSE_CHUNK = 256;

/** Inverses of P symmetric positive-definite d×d matrices, computed in float64, symmetrised; in place. */
export async function invertBatch(
  a: Float32Array,
  P: number,
  d: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Float32Array> {
  const s = (await getSessions()).inverse;
  for (let start = 0; start < P; start += INVERSE_CHUNK) {
    const n = Math.min(INVERSE_CHUNK, P - start);
    const part = a.subarray(start * d * d, (start + n) * d * d);
    const inv = (await s.run({ a: { data: part, dims: [n, d, d] } })).inv.data;
    for (let p = 0; p < n; p++) {
      const o = p * d * d;
      for (let i = 0; i < d; i++) {
        part[o + i * d + i] = inv[o + i * d + i];
        for (let j = i + 1; j < d; j++) {
          const v = 0.5 * (inv[o + i * d + j] + inv[o + j * d + i]);
          part[o + i * d + j] = v;
          part[o + j * d + i] = v;
        }
      }
    }
    onProgress?.(start + n, P);
  }
  return a;
}

/**
 * Inverses of P symmetric positive-definite d×d matrices, kept in float64 and symmetrised: for computations
 * that subtract nearly equal numbers afterwards (PaDiM's leave-one-out), where float32 would lose them.
 * `matrix(start, n, into)` writes positions [start, start + n) into `into` (float32): the matrices are made
 * a chunk at a time, so no second full-size float32 copy is needed.
 */
export async function invertBatch64(
  matrix: (start: number, n: number, into: Float32Array) => void,
  P: number,
  d: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Float64Array> {
  const s = (await getSessions()).inverse64;
  const out = new Float64Array(P * d * d);
  const chunk = new Float32Array(Math.min(INVERSE_CHUNK, P) * d * d);
  for (let start = 0; start < P; start += INVERSE_CHUNK) {
    const n = Math.min(INVERSE_CHUNK, P - start);
    const a = chunk.subarray(0, n * d * d);
    matrix(start, n, a);
    const inv = (await s.run64({ a: { data: a, dims: [n, d, d] } })).inv.data;
    const part = out.subarray(start * d * d, (start + n) * d * d);
    for (let p = 0; p < n; p++) {
      const o = p * d * d;
      for (let i = 0; i < d; i++) {
        part[o + i * d + i] = inv[o + i * d + i];
        for (let j = i + 1; j < d; j++)
          part[o + i * d + j] = part[o + j * d + i] = 0.5 * (inv[o + i * d + j] + inv[o + j * d + i]);
      }
    }
    onProgress?.(start + n, P);
  }
  return out;
}
