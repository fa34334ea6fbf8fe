/**
 * A pretrained CNN as a feature extractor: weights resolved and read, the ONNX graph built in memory,
 * one onnxruntime session. Input: float32 NCHW, normalised with the ImageNet mean and std, any batch
 * size, height and width multiples of 16. Output: three feature maps at strides 4, 8 and 16.
 */
import { KensaError } from '../util/errors.js';
import { readCheckpoint, type StateDict } from './checkpoint.js';
import { buildBackboneGraph, FEATURE_OUTPUTS, INPUT_NAME } from './graph.js';
import { getBackbone, type BackboneSpec } from './registry.js';
import { OnnxSession, type RunOutput } from '../onnx/runtime.js';
import { sha256Bytes } from '../util/hash.js';
import { canonicalBackboneGraph, checkProbe, onnxBackboneName, PROBE } from './onnx-backbone.js';
import { resolveWeights, type ResolveOptions, type ResolvedWeights } from './weights.js';

export { IMAGENET_MEAN, IMAGENET_STD } from '../image/preprocess.js';

export interface FeatureMap {
  data: Float32Array;
  /** [batch, channels, height, width] */
  dims: [number, number, number, number];
}

export interface BackboneOptions extends ResolveOptions {
  /** onnxruntime intra-op threads. */
  threads?: number;
  /** Build the classifier too (EfficientNet-Lite), for checking the whole network. */
  head?: boolean;
}

/** The backbone's ONNX graph itself (kensa export): weights resolved and read, the graph built. */
export async function backboneGraph(
  name: string,
  options: ResolveOptions = {},
): Promise<{ bytes: Uint8Array; weights: ResolvedWeights }> {
  const spec = getBackbone(name);
  const weights = await resolveWeights(spec, options);
  const stateDict = await readCheckpoint(weights.path);
  return { bytes: buildBackboneGraph(spec.architecture, spec.name, stateDict), weights };
}

export class Backbone {
  private constructor(
    readonly name: string,
    private readonly session: OnnxSession,
    readonly channels: [number, number, number],
    readonly weights?: ResolvedWeights,
    /** The registry's entry; absent for a network brought as an ONNX file. */
    readonly spec?: BackboneSpec,
  ) {}

  /** Resolves the weights (file, cache, download), reads them and builds the network. */
  static async load(name: string, options: BackboneOptions = {}): Promise<Backbone> {
    const spec = getBackbone(name);
    const weights = await resolveWeights(spec, options);
    const stateDict = await readCheckpoint(weights.path);
    return Backbone.fromStateDict(spec, stateDict, options, weights);
  }

  /** Builds the network from weights already in memory (e.g. reduced-width test networks). */
  static async fromStateDict(
    spec: BackboneSpec,
    stateDict: StateDict,
    options: Pick<BackboneOptions, 'threads' | 'head'> = {},
    weights?: ResolvedWeights,
  ): Promise<Backbone> {
    const model = buildBackboneGraph(spec.architecture, spec.name, stateDict, { head: options.head });
    const session = await OnnxSession.create(model, { threads: options.threads });
    // One small forward pass tells the channel counts of these weights (reduced-width networks differ).
    const probe = await session.run(
      { [INPUT_NAME]: { data: new Float32Array(3 * 32 * 32), dims: [1, 3, 32, 32] } },
      FEATURE_OUTPUTS,
    );
    const channels = FEATURE_OUTPUTS.map((n) => probe[n].dims[1]) as [number, number, number];
    return new Backbone(spec.name, session, channels, weights, spec);
  }

  /**
   * A feature extractor brought as an ONNX file (onnx-backbone.ts): `bytes` the file as it is, `layers`
   * the names of its feature maps at strides 4, 8 and 16, `file` its path (for messages and the name).
   * A probe batch checks that it runs at other sizes and reads its strides and channels.
   */
  static async fromOnnx(
    bytes: Uint8Array,
    layers: readonly string[],
    file: string,
    options: Pick<BackboneOptions, 'threads'> = {},
  ): Promise<Backbone> {
    const graph = canonicalBackboneGraph(bytes, layers, file);
    let session: OnnxSession;
    try {
      session = await OnnxSession.create(graph, { threads: options.threads });
    } catch (error) {
      throw new KensaError('E_FORMAT', `onnxruntime cannot load the network: ${(error as Error).message}`, {
        file,
        cause: error,
      });
    }
    const { batch, height, width } = PROBE;
    let probe: Record<string, RunOutput>;
    try {
      probe = await session.run(
        {
          [INPUT_NAME]: {
            data: new Float32Array(batch * 3 * height * width),
            dims: [batch, 3, height, width],
          },
        },
        FEATURE_OUTPUTS,
      );
    } catch (error) {
      await session.release();
      throw new KensaError(
        'E_ARGUMENT',
        `the network does not run on a batch of ${batch} images of ${height}×${width} (${(error as Error).message}). ` +
          "kensa feeds batches of any size at the model's input size: export it with dynamic batch, height and width (tools/export_backbone.py does)",
        { file, cause: error },
      );
    }
    try {
      const channels = checkProbe(
        FEATURE_OUTPUTS.map((n) => probe[n]),
        layers,
        file,
      );
      const weights: ResolvedWeights = {
        path: file,
        sha256: sha256Bytes(bytes),
        origin: 'file',
        official: false,
      };
      return new Backbone(onnxBackboneName(file), session, channels, weights);
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  private feeds(
    input: Float32Array,
    batch: number,
    height: number,
    width: number,
  ): Record<string, RunOutput> {
    for (const [label, v] of [
      ['height', height],
      ['width', width],
    ] as const) {
      if (!Number.isInteger(v) || v < 16 || v % 16 !== 0) {
        throw new KensaError(
          'E_ARGUMENT',
          `Expected a multiple of 16 (at least 16) for the input ${label} but received ${v}`,
        );
      }
    }
    if (!Number.isInteger(batch) || batch < 1 || input.length !== batch * 3 * height * width) {
      throw new KensaError(
        'E_ARGUMENT',
        `the input has ${input.length} values; a batch of ${batch} images of 3×${height}×${width} needs ${batch * 3 * height * width}`,
      );
    }
    return { [INPUT_NAME]: { data: input, dims: [batch, 3, height, width] } };
  }

  /** The three feature maps (strides 4, 8, 16) of a normalised NCHW batch. */
  async extract(
    input: Float32Array,
    batch: number,
    height: number,
    width: number,
  ): Promise<[FeatureMap, FeatureMap, FeatureMap]> {
    const out = await this.session.run(this.feeds(input, batch, height, width), FEATURE_OUTPUTS);
    return FEATURE_OUTPUTS.map((n) => ({ data: out[n].data, dims: out[n].dims as FeatureMap['dims'] })) as [
      FeatureMap,
      FeatureMap,
      FeatureMap,
    ];
  }

  /** Classifier logits [batch, classes]; only for a backbone loaded with `head: true`. */
  async logits(input: Float32Array, batch: number, height: number, width: number): Promise<Float32Array> {
    if (!this.session.outputNames.includes('logits')) {
      throw new KensaError(
        'E_ARGUMENT',
        `${this.name} was loaded without its classifier; load it with head: true`,
      );
    }
    const out = await this.session.run(this.feeds(input, batch, height, width), ['logits']);
    return out.logits.data;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
