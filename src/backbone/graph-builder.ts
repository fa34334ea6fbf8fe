/**
 * The backbones' ONNX graph builder, with the one fusion every backbone needs: batch-norm folded into the
 * preceding convolution when the graph is built; and named access to a state_dict.
 *
 * Inputs have a free batch size and free spatial size (named dimensions), weights are float32
 * initializers, and the graph is encoded once at the end.
 */
import { attribute, onnx, OPSET, valueInfo, type AttrValue } from '../onnx/graph.js';
import { KensaError } from '../util/errors.js';
import { shapeString, toFloat32, type Tensor } from '../util/tensor.js';
import type { StateDict } from './checkpoint.js';

/** Named access to a state_dict that says which architecture a missing key belongs to. */
export class Weights {
  constructor(
    private readonly dict: StateDict,
    private readonly architecture: string,
  ) {}

  has(name: string): boolean {
    return this.dict.has(name);
  }

  tensor(name: string, rank?: number): Tensor {
    const t = this.dict.get(name);
    if (!t) {
      const sample = [...this.dict.keys()].slice(0, 3).join(', ');
      throw new KensaError(
        'E_SHAPE',
        `the weights lack '${name}', which ${this.architecture} needs (the file has ${this.dict.size} tensors, e.g. ${sample}). ` +
          'Pass weights of the chosen backbone, or choose the backbone these weights belong to',
      );
    }
    if (rank !== undefined && t.shape.length !== rank) {
      throw new KensaError(
        'E_SHAPE',
        `'${name}' has shape ${shapeString(t.shape)}; ${this.architecture} needs ${rank} dimensions`,
      );
    }
    return t;
  }

  float(name: string, rank?: number): Float32Array {
    return toFloat32(this.tensor(name, rank));
  }
}

export interface ConvSpec {
  stride?: number;
  /** [top, left, bottom, right] */
  pads?: [number, number, number, number];
  group?: number;
}

export class GraphBuilder {
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private readonly inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly constants = new Map<string, string>();
  private counter = 0;

  constructor(private readonly weights: Weights) {}

  private fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, dims: (number | string)[]): string {
    this.inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Marks `value` as a graph output called `name` (adds an Identity so the names are stable). */
  output(name: string, value: string, dims: (number | string)[]): void {
    this.node('Identity', [value], {}, name);
    this.outputs.push(valueInfo(name, dims));
  }

  initializer(name: string, dims: number[], data: Float32Array): string {
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    this.initializers.push(
      onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: raw }),
    );
    return name;
  }

  /** A float scalar constant, shared between nodes that use the same value. */
  scalar(value: number): string {
    const key = String(value);
    let name = this.constants.get(key);
    if (!name) {
      name = this.initializer(`const_${this.constants.size}`, [], new Float32Array([value]));
      this.constants.set(key, name);
    }
    return name;
  }

  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, output?: string): string {
    const out = output ?? this.fresh(op.toLowerCase());
    const attributes = Object.entries(attrs).map(([name, v]) => attribute(name, v));
    this.nodes.push(
      onnx.NodeProto.create({ opType: op, input: inputs, output: [out], name: out, attribute: attributes }),
    );
    return out;
  }

  relu(x: string): string {
    return this.node('Relu', [x]);
  }

  relu6(x: string): string {
    return this.node('Clip', [x, this.scalar(0), this.scalar(6)]);
  }

  /**
   * Conv (no bias in the checkpoint) followed by BatchNorm (inference statistics), folded into one Conv:
   * W' = W·γ/√(σ²+ε) per output channel, b' = β − μ·γ/√(σ²+ε). Computed in float64, stored as float32.
   */
  convBn(x: string, conv: string, bn: string, eps: number, spec: ConvSpec = {}): string {
    const w = this.weights.tensor(`${conv}.weight`, 4);
    const weight = toFloat32(w);
    const [outC, , kh, kw] = w.shape;
    const gamma = this.weights.float(`${bn}.weight`, 1);
    const beta = this.weights.float(`${bn}.bias`, 1);
    const mean = this.weights.float(`${bn}.running_mean`, 1);
    const variance = this.weights.float(`${bn}.running_var`, 1);
    const bias = this.weights.has(`${conv}.bias`) ? this.weights.float(`${conv}.bias`, 1) : undefined;
    for (const [name, v] of [
      ['weight', gamma],
      ['bias', beta],
      ['running_mean', mean],
      ['running_var', variance],
    ] as const) {
      if (v.length !== outC) {
        throw new KensaError(
          'E_SHAPE',
          `'${bn}.${name}' has ${v.length} values but '${conv}.weight' has ${outC} output channels`,
        );
      }
    }
    const per = weight.length / outC;
    const folded = new Float32Array(weight.length);
    const foldedBias = new Float32Array(outC);
    for (let o = 0; o < outC; o++) {
      const scale = gamma[o] / Math.sqrt(variance[o] + eps);
      for (let i = 0; i < per; i++) folded[o * per + i] = weight[o * per + i] * scale;
      foldedBias[o] = beta[o] + ((bias ? bias[o] : 0) - mean[o]) * scale;
    }
    const W = this.initializer(`${conv}.weight`, w.shape, folded);
    const B = this.initializer(`${conv}.bias`, [outC], foldedBias);
    const stride = spec.stride ?? 1;
    return this.node('Conv', [x, W, B], {
      kernel_shape: [kh, kw],
      strides: [stride, stride],
      pads: spec.pads ?? [0, 0, 0, 0],
      group: spec.group ?? 1,
    });
  }

  /** Fully connected layer y = x·Wᵀ + b from a torch nn.Linear. */
  linear(x: string, prefix: string): string {
    const w = this.weights.tensor(`${prefix}.weight`, 2);
    const W = this.initializer(`${prefix}.weight`, w.shape, toFloat32(w));
    const B = this.initializer(`${prefix}.bias`, [w.shape[0]], this.weights.float(`${prefix}.bias`, 1));
    return this.node('Gemm', [x, W, B], { transB: 1 });
  }

  encode(name: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'kensa',
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
