/**
 * Writing ONNX graphs (protobuf via onnx-proto): the small hand-written graphs of the methods, the map
 * step's helpers and the backbones' GraphBuilder all encode through here. Opset 17, plus onnxruntime's
 * com.microsoft domain for the few contrib operators kensa uses (Inverse).
 */
import onnxProto from 'onnx-proto';

export const { onnx } = onnxProto;
export const OPSET = 17;

export type AttrValue = number | number[] | string | { float: number };

/** A node of a small hand-written graph: its output (or outputs, e.g. TopK's values and indices). */
export interface NodeSpec {
  op: string;
  inputs: string[];
  output: string | string[];
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export function attribute(name: string, v: AttrValue) {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
  if (typeof v === 'object') return { name, type: A.FLOAT, f: v.float };
  return { name, type: A.INT, i: v };
}

/** A graph input or output: element type (float32 unless given) and dimensions (named ones are free). */
export function valueInfo(
  name: string,
  dims: (number | string)[],
  elemType: number = onnx.TensorProto.DataType.FLOAT,
) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

export const float32Tensor = (name: string, dims: number[], data: Float32Array) =>
  onnx.TensorProto.create({
    name,
    dims,
    dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });

export const float64Tensor = (name: string, dims: number[], data: Float64Array) =>
  onnx.TensorProto.create({
    name,
    dims,
    dataType: onnx.TensorProto.DataType.DOUBLE,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });

/** An int64 tensor: a vector of `values`, or a scalar when `dims` is [] (int64Tensor('n', [], [3])). */
export function int64Tensor(name: string, values: number[]): TensorProto;
export function int64Tensor(name: string, dims: number[], values: number[]): TensorProto;
export function int64Tensor(name: string, a: number[], b?: number[]): TensorProto {
  const values = b ?? a;
  return onnx.TensorProto.create({
    name,
    dims: b ? a : [values.length],
    dataType: onnx.TensorProto.DataType.INT64,
    int64Data: values,
  });
}

export const DataType = onnx.TensorProto.DataType;

export type TensorProto = InstanceType<typeof onnx.TensorProto>;
export type NodeProto = InstanceType<typeof onnx.NodeProto>;
export type ValueInfo = ReturnType<typeof valueInfo>;

/** A renaming that prefixes a part's values, keeping those it shares with the rest of the graph (and ''). */
export function prefixed(prefix: string, keep: ReadonlySet<string>): (name: string) => string {
  return (name: string) => (name === '' || keep.has(name) ? name : `${prefix}${name}`);
}

/** A part's nodes and initializers with every value renamed (the initializers in place). */
export function renameSpecs(
  nodes: NodeSpec[],
  inits: TensorProto[],
  rename: (n: string) => string,
): NodeSpec[] {
  for (const t of inits) t.name = rename(t.name);
  return nodes.map((n) => ({
    ...n,
    inputs: n.inputs.map(rename),
    output: typeof n.output === 'string' ? rename(n.output) : n.output.map(rename),
  }));
}

/**
 * Only the nodes the given outputs need (a part whose other results go unused: PatchCore's own image score
 * under a head that scores the image itself), and only the initializers those nodes read.
 */
export function pruned(
  nodes: readonly NodeSpec[],
  inits: readonly TensorProto[],
  outputs: readonly string[],
): { nodes: NodeSpec[]; initializers: TensorProto[] } {
  const needed = new Set(outputs);
  const kept: NodeSpec[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    const outs = typeof n.output === 'string' ? [n.output] : n.output;
    if (!outs.some((o) => needed.has(o))) continue;
    kept.push(n);
    for (const input of n.inputs) needed.add(input);
  }
  return { nodes: kept.reverse(), initializers: inits.filter((t) => needed.has(t.name)) };
}

/** A node spec as an ONNX NodeProto (named after its first output). */
export function nodeProto(n: NodeSpec): NodeProto {
  return onnx.NodeProto.create({
    opType: n.op,
    domain: n.domain ?? '',
    input: n.inputs,
    output: typeof n.output === 'string' ? [n.output] : n.output,
    name: typeof n.output === 'string' ? n.output : n.output[0],
    attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
  });
}

/** Encodes a graph (opset 17, plus onnxruntime's com.microsoft domain) with optional metadata. */
export function encodeModel(model: {
  name: string;
  nodes: NodeProto[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers?: TensorProto[];
  metadata?: Record<string, string>;
  /** Leave out the com.microsoft domain (a graph for other runtimes). */
  standardOnly?: boolean;
}): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'kensa',
      opsetImport: [
        { domain: '', version: OPSET },
        ...(model.standardOnly ? [] : [{ domain: 'com.microsoft', version: 1 }]),
      ],
      metadataProps: Object.entries(model.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: model.name,
        node: model.nodes,
        input: model.inputs,
        output: model.outputs,
        initializer: model.initializers ?? [],
      },
    }),
  ).finish();
}

/** Encodes a small graph (opset 17, plus onnxruntime's com.microsoft domain) to ONNX bytes. */
export function encodeGraph(
  name: string,
  nodes: NodeSpec[],
  inputs: ValueInfo[],
  outputs: ValueInfo[],
  initializer: TensorProto[] = [],
): Uint8Array {
  return encodeModel({ name, nodes: nodes.map(nodeProto), inputs, outputs, initializers: initializer });
}
