/**
 * Principal axes of a set of rows, for exact nearest-neighbour searches that prune with a lower bound:
 * rotated onto its principal axes (an orthonormal change of basis, so every distance is kept), the
 * squared distance over the leading components alone can only be smaller than the whole one. Most of the
 * variance of CNN patch embeddings lies in their first few dozen components, so that partial distance
 * separates the few candidates worth an exact distance from the many that cannot be nearest.
 */
import { encodeGraph, float32Tensor, valueInfo as vi } from '../../onnx/graph.js';
import { OnnxSession } from '../../onnx/runtime.js';
import { symmetricEigen } from '../../util/linalg.js';

/** Rows per onnxruntime call when accumulating or rotating. */
const BLOCK_ROWS = 65536;

export interface PrincipalAxes {
  /** Mean row [C]. */
  mean: Float32Array;
  /** Axes as the columns of a C×C row-major matrix, by falling variance. */
  axes: Float32Array;
  /** Variance along each axis. */
  variances: Float64Array;
}

/** Mean and principal axes of rows [N, C] (the scatter matrix on onnxruntime, the eigenvectors in float64). */
export async function principalAxes(rows: Float32Array, C: number): Promise<PrincipalAxes> {
  const N = rows.length / C;
  const mean64 = new Float64Array(C);
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) mean64[c] += rows[i * C + c];
  for (let c = 0; c < C; c++) mean64[c] /= N;
  const mean = Float32Array.from(mean64);
  const session = await OnnxSession.create(
    encodeGraph(
      'scatter',
      [
        { op: 'Sub', inputs: ['x', 'mean'], output: 'xc' },
        { op: 'Transpose', inputs: ['xc'], output: 'xt', attrs: { perm: [1, 0] } },
        { op: 'MatMul', inputs: ['xt', 'xc'], output: 's' },
      ],
      [vi('x', ['n', C])],
      [vi('s', [C, C])],
      [float32Tensor('mean', [1, C], mean)],
    ),
  );
  const scatter = new Float64Array(C * C);
  try {
    for (let start = 0; start < N; start += BLOCK_ROWS) {
      const n = Math.min(BLOCK_ROWS, N - start);
      const { s } = await session.run({
        x: { data: rows.subarray(start * C, (start + n) * C), dims: [n, C] },
      });
      for (let i = 0; i < C * C; i++) scatter[i] += s.data[i];
    }
  } finally {
    await session.release();
  }
  // exactly symmetric before the eigen-decomposition
  for (let i = 0; i < C; i++)
    for (let j = i + 1; j < C; j++)
      scatter[i * C + j] = scatter[j * C + i] = (scatter[i * C + j] + scatter[j * C + i]) / 2;
  const { values, vectors } = symmetricEigen(scatter, C);
  return { mean, axes: Float32Array.from(vectors), variances: values.map((v) => v / Math.max(1, N - 1)) };
}

/** rows [N, C] → (rows − mean) · axes, [N, C]. */
export async function rotate(rows: Float32Array, C: number, pca: PrincipalAxes): Promise<Float32Array> {
  const N = rows.length / C;
  const out = new Float32Array(N * C);
  const session = await OnnxSession.create(
    encodeGraph(
      'rotate',
      [
        { op: 'Sub', inputs: ['x', 'mean'], output: 'xc' },
        { op: 'MatMul', inputs: ['xc', 'axes'], output: 'y' },
      ],
      [vi('x', ['n', C])],
      [vi('y', ['n', C])],
      [float32Tensor('mean', [1, C], pca.mean), float32Tensor('axes', [C, C], pca.axes)],
    ),
  );
  try {
    for (let start = 0; start < N; start += BLOCK_ROWS) {
      const n = Math.min(BLOCK_ROWS, N - start);
      const { y } = await session.run({
        x: { data: rows.subarray(start * C, (start + n) * C), dims: [n, C] },
      });
      out.set(y.data, start * C);
    }
  } finally {
    await session.release();
  }
  return out;
}
