/**
 * The heavy linear algebra of PaDiM as small ONNX graphs on onnxruntime (batched over positions):
 *   accumulate:  S[p] += X[p]ᵀ X[p]                 X: [P, K, d] (centred), S: [P, d, d]
 *   inverse:     Σ[p]⁻¹ in float64 (com.microsoft Inverse)
 * Each graph is built once per process and reused.
 */
import onnxProto from 'onnx-proto';
import { OnnxSession } from '../../backbone/runtime.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const DOUBLE = onnx.TensorProto.DataType.DOUBLE;

type Dim = number | string;
function valueInfo(name: string, dims: Dim[], elemType = FLOAT) {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function model(
  nodes: {
    op: string;
    inputs: string[];
    output: string;
    domain?: string;
    attrs?: Record<string, number[] | number>;
  }[],
  inputs: ReturnType<typeof valueInfo>[],
  outputs: ReturnType<typeof valueInfo>[],
  initializer: InstanceType<typeof onnx.TensorProto>[] = [],
): Uint8Array {
  const A = onnx.AttributeProto.AttributeType;
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'kensa',
      opsetImport: [
        { domain: '', version: 17 },
        { domain: 'com.microsoft', version: 1 },
      ],
      graph: {
        name: 'padim',
        node: nodes.map((n) =>
          onnx.NodeProto.create({
            opType: n.op,
            domain: n.domain ?? '',
            input: n.inputs,
            output: [n.output],
            attribute: Object.entries(n.attrs ?? {}).map(([name, v]) =>
              Array.isArray(v) ? { name, type: A.INTS, ints: v } : { name, type: A.INT, i: v },
            ),
          }),
        ),
        input: inputs,
        output: outputs,
        initializer,
      },
    }),
  ).finish();
}

/** These graphs handle hundreds of megabytes per call: no arena, so memory goes back after each call. */
const NO_ARENA = { arena: false };

let sessions: Promise<{ accumulate: OnnxSession; inverse: OnnxSession }> | undefined;

function getSessions() {
  sessions ??= (async () => ({
    accumulate: await OnnxSession.create(
      model(
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
      model(
        [
          { op: 'Cast', inputs: ['a'], output: 'a64', attrs: { to: DOUBLE } },
          { op: 'Inverse', domain: 'com.microsoft', inputs: ['a64'], output: 'inv64' },
          { op: 'Cast', inputs: ['inv64'], output: 'inv', attrs: { to: FLOAT } },
        ],
        [valueInfo('a', ['p', 'd', 'd'])],
        [valueInfo('inv', ['p', 'd', 'd'])],
      ),
      NO_ARENA,
    ),
  }))();
  return sessions;
}

/** Positions per accumulate call: bounds onnxruntime's intermediate buffers (Xᵀ and Xᵀ X of a chunk). */
const ACCUMULATE_CHUNK = 1024;

/** into = acc + Xᵀ X for each position (`into` and `acc` are distinct buffers of P·d·d values). */
export async function accumulateOuter(
  x: Float32Array,
  acc: Float32Array,
  into: Float32Array,
  P: number,
  K: number,
  d: number,
): Promise<void> {
  const s = (await getSessions()).accumulate;
  for (let start = 0; start < P; start += ACCUMULATE_CHUNK) {
    const n = Math.min(ACCUMULATE_CHUNK, P - start);
    const dd = d * d;
    await s.run(
      {
        x: { data: x.subarray(start * K * d, (start + n) * K * d), dims: [n, K, d] },
        acc: { data: acc.subarray(start * dd, (start + n) * dd), dims: [n, d, d] },
      },
      undefined,
      { sum: { data: into.subarray(start * dd, (start + n) * dd), dims: [n, d, d] } },
    );
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
