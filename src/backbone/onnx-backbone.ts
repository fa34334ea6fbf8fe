/**
 * A feature extractor the user brings as an ONNX file (kensa train --backbone-onnx FILE --layers A,B,C):
 * any network that takes one float32 NCHW image batch, normalised with ImageNet's mean and std as
 * kensa's own backbones are, and has three tensors — graph outputs or any values inside it — that are
 * feature maps at strides 4, 8 and 16.
 *
 * The file is kept as it is (its bytes in the model, its sha256 as the weights' identity); what runs is
 * its canonical form, rewritten here: every name of the user's graph under `net/`, its input fed from
 * `input`, the three named values given out as `layer1`..`layer3` and nothing else (so that
 * onnxruntime drops what only other outputs needed, e.g. a classifier head). That is the same interface
 * as the built-in graphs (graph.ts), so the methods, the service and the export take it unchanged.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type onnxProto from 'onnx-proto';
import { onnx, OPSET } from '../onnx/graph.js';
import { KensaError } from '../util/errors.js';
import { FEATURE_OUTPUTS, FEATURE_STRIDES, INPUT_NAME } from './graph.js';

/** What a model records of a backbone brought as an ONNX file (besides its sha256 as weights_sha256). */
export interface OnnxBackboneSpec {
  /** The file's name when the model was trained (for messages). */
  file: string;
  /** The user's names of the three feature maps, strides 4, 8 and 16. */
  layers: [string, string, string];
  /** Size of the file in bytes. */
  bytes: number;
}

/** The name a model gives a backbone brought as an ONNX file. */
export const onnxBackboneName = (file: string): string => `onnx:${basename(file)}`;

/** Where a user learns how to make such a file. */
const HOW =
  'Export the network with one float32 input [batch, 3, height, width] whose batch, height and width are dynamic, ' +
  'opset 17, weights inside the file (tools/export_backbone.py does this for torchvision and timm models)';

/** The layer names of --layers: exactly three, distinct, non-empty. */
export function parseLayers(value: string | readonly string[], file?: string): [string, string, string] {
  const layers = (typeof value === 'string' ? value.split(',') : [...value]).map((s) => s.trim());
  if (layers.length !== 3 || layers.some((l) => !l)) {
    throw new KensaError(
      'E_ARGUMENT',
      `--layers needs three names of feature maps, at strides 4, 8 and 16 (e.g. layer1,layer2,layer3), but received ${JSON.stringify(typeof value === 'string' ? value : value.join(','))}. ` +
        'PatchCore scores the last two and PaDiM all three; a network without a stride-4 map cannot be used yet',
      { file },
    );
  }
  if (new Set(layers).size !== 3)
    throw new KensaError('E_ARGUMENT', `--layers names a feature map twice: ${layers.join(',')}`, { file });
  return layers as [string, string, string];
}

/** The bytes of a --backbone-onnx file, refused early when it is missing or empty. */
export async function readBackboneFile(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new KensaError(
      'E_NOT_FOUND',
      `cannot read the backbone file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}). Check the path given to --backbone-onnx`,
      { file, cause: error },
    );
  }
  if (!bytes.length) throw new KensaError('E_FORMAT', `the backbone file is empty. ${HOW}`, { file });
  return bytes;
}

type Graph = onnxProto.onnx.IGraphProto;

/** The default-domain opset a model imports (ONNX's '' and 'ai.onnx' are the same domain). */
export function defaultOpset(model: InstanceType<typeof onnx.ModelProto>): number | undefined {
  const entry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry ? Number(entry.version) : undefined;
}

function decode(bytes: Uint8Array, file: string): InstanceType<typeof onnx.ModelProto> {
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new KensaError('E_FORMAT', `not an ONNX model (${(error as Error).message}). ${HOW}`, {
      file,
      cause: error,
    });
  }
  if (!model.graph || !(model.graph.node ?? []).length)
    throw new KensaError('E_FORMAT', `not an ONNX model with a graph of nodes. ${HOW}`, { file });
  return model;
}

/** Refuses what kensa cannot run or rename safely, with the reason. */
function checkGraph(graph: Graph, file: string): { input: string } {
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name ?? ''));
  if (inputs.length !== 1)
    throw new KensaError(
      'E_ARGUMENT',
      `the network takes ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ') || 'none'}); kensa feeds one image batch. ${HOW}`,
      { file },
    );
  const input = inputs[0];
  const tensor = input.type?.tensorType;
  const dims = tensor?.shape?.dim ?? [];
  if (!tensor || tensor.elemType !== onnx.TensorProto.DataType.FLOAT || dims.length !== 4)
    throw new KensaError(
      'E_ARGUMENT',
      `the network's input '${input.name}' is not a float32 tensor of 4 dimensions [batch, 3, height, width]. ${HOW}`,
      { file },
    );
  const fixed = (i: number) => (dims[i].dimValue ? Number(dims[i].dimValue) : undefined);
  if (fixed(1) !== undefined && fixed(1) !== 3)
    throw new KensaError(
      'E_ARGUMENT',
      `the network's input '${input.name}' has ${fixed(1)} channels; kensa feeds RGB images (3 channels, NCHW). ${HOW}`,
      { file },
    );
  // a fixed batch, height or width is dropped with the input it was declared on: the probe run (Backbone)
  // tells whether the nodes themselves take other sizes
  if ((graph.sparseInitializer ?? []).length)
    throw new KensaError(
      'E_ARGUMENT',
      `the network has sparse initializers, which kensa does not read. ${HOW}`,
      {
        file,
      },
    );
  const external = (graph.initializer ?? []).find(
    (t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL,
  );
  if (external)
    throw new KensaError(
      'E_ARGUMENT',
      `the network keeps its weights in a separate file (tensor '${external.name}' has external data); kensa stores the backbone in the model and needs them inside. ${HOW}`,
      { file },
    );
  const A = onnx.AttributeProto.AttributeType;
  for (const n of graph.node ?? []) {
    if ((n.attribute ?? []).some((a) => a.type === A.GRAPH || a.type === A.GRAPHS || a.g || a.graphs?.length))
      throw new KensaError(
        'E_ARGUMENT',
        `node '${n.name || n.opType}' (${n.opType}) holds a subgraph; kensa takes feed-forward networks without If, Loop or Scan. ${HOW}`,
        { file },
      );
  }
  return { input: input.name! };
}

/** The values a graph offers as feature maps (for the message when a name is not one of them). */
function valueNames(graph: Graph): string[] {
  return [
    ...new Set([
      ...(graph.output ?? []).map((o) => o.name!),
      ...(graph.node ?? []).flatMap((n) => n.output ?? []),
    ]),
  ].filter(Boolean);
}

/**
 * The canonical form of a user's feature extractor (see the top of this file): ONNX bytes with input
 * `input` and outputs `layer1`..`layer3`, its own opsets kept. Refuses what it cannot take, naming the
 * file and the reason.
 */
export function canonicalBackboneGraph(
  bytes: Uint8Array,
  layers: readonly string[],
  file: string,
): Uint8Array {
  const model = decode(bytes, file);
  const graph = model.graph!;
  const { input } = checkGraph(graph, file);
  const names = new Set(valueNames(graph));
  const missing = layers.filter((l) => !names.has(l));
  if (missing.length) {
    const offer = [...names];
    const outputs = (graph.output ?? []).map((o) => o.name);
    throw new KensaError(
      'E_ARGUMENT',
      `the network has no value named ${missing.map((m) => `'${m}'`).join(', ')}. Its outputs are ${outputs.map((o) => `'${o}'`).join(', ')}; ` +
        `${offer.length} values inside it can be named too (e.g. ${offer
          .slice(0, 6)
          .map((o) => `'${o}'`)
          .join(
            ', ',
          )}…; Netron shows them all). Give --layers the names of the three feature maps at strides 4, 8 and 16`,
      { file },
    );
  }
  const rename = (n: string) => (n ? `net/${n}` : n); // '' marks an omitted optional input
  for (const n of graph.node ?? []) {
    n.name = rename(n.name || (n.output ?? [])[0] || '');
    n.input = (n.input ?? []).map(rename);
    n.output = (n.output ?? []).map(rename);
  }
  for (const t of graph.initializer ?? []) t.name = rename(t.name!);
  const free = (i: number) => ({
    tensorType: {
      elemType: onnx.TensorProto.DataType.FLOAT,
      shape: { dim: ['batch', `c${i}`, `h${i}`, `w${i}`].map((d) => ({ dimParam: d })) },
    },
  });
  const identity = (from: string, to: string) =>
    onnx.NodeProto.create({
      opType: 'Identity',
      domain: '',
      input: [from],
      output: [to],
      name: `kensa/${to}`,
    });
  graph.node = [
    identity(INPUT_NAME, rename(input)),
    ...(graph.node ?? []),
    ...layers.map((l, i) => identity(rename(l), FEATURE_OUTPUTS[i])),
  ];
  graph.input = [
    onnx.ValueInfoProto.create({
      name: INPUT_NAME,
      type: {
        tensorType: {
          elemType: onnx.TensorProto.DataType.FLOAT,
          shape: {
            dim: [{ dimParam: 'batch' }, { dimValue: 3 }, { dimParam: 'height' }, { dimParam: 'width' }],
          },
        },
      },
    }),
  ];
  graph.output = FEATURE_OUTPUTS.map((name, i) => onnx.ValueInfoProto.create({ name, type: free(i + 1) }));
  graph.valueInfo = []; // the user's shape annotations, by the old names; onnxruntime infers them again
  return onnx.ModelProto.encode(model).finish();
}

/** The size of the probe batch: height and width differ, so that a map's two strides are both read. */
export const PROBE = { batch: 2, height: 64, width: 96 } as const;

/**
 * Checks the probe's feature maps: four dimensions, the batch, and strides 4, 8 and 16 read from their
 * shapes. Returns the channel counts.
 */
export function checkProbe(
  maps: readonly { dims: readonly number[]; data: unknown }[],
  layers: readonly string[],
  file: string,
): [number, number, number] {
  maps.forEach((m, i) => {
    const shape = m.dims.join('×');
    if (!(m.data instanceof Float32Array))
      throw new KensaError('E_ARGUMENT', `the feature map '${layers[i]}' is not float32. ${HOW}`, { file });
    if (m.dims.length !== 4 || m.dims[0] !== PROBE.batch)
      throw new KensaError(
        'E_ARGUMENT',
        `the value '${layers[i]}' is not a feature map [batch, channels, height, width]: for a batch of ${PROBE.batch} images of ${PROBE.height}×${PROBE.width} it is ${shape}. ` +
          "Name values of the network that are NCHW feature maps (a ViT's tokens must be reshaped to a map in the exported graph)",
        { file },
      );
    const [sy, sx] = [PROBE.height / m.dims[2], PROBE.width / m.dims[3]];
    const want = FEATURE_STRIDES[i];
    if (sy !== want || sx !== want)
      throw new KensaError(
        'E_ARGUMENT',
        `the feature map '${layers[i]}' has stride ${sy === sx ? sy : `${sy} × ${sx}`} (${shape} for ${PROBE.height}×${PROBE.width} inputs), ` +
          `but the ${['first', 'second', 'third'][i]} name given to --layers must be the map at stride ${want}: the three at strides ${FEATURE_STRIDES.join(', ')}, in that order`,
        { file },
      );
  });
  return maps.map((m) => m.dims[1]) as [number, number, number];
}

/** Refuses, for kensa export, a backbone graph the exported file cannot hold as it is. */
export function checkExportable(bytes: Uint8Array, file: string): void {
  const model = decode(bytes, file);
  const opset = defaultOpset(model);
  if (opset !== OPSET)
    throw new KensaError(
      'E_ARGUMENT',
      `the backbone was exported with opset ${opset ?? 'unknown'}, and kensa export writes one graph of opset ${OPSET} (operators change meaning between opsets). ` +
        `Export the backbone again with opset ${OPSET} (tools/export_backbone.py --opset ${OPSET}), train again, then export`,
      { file },
    );
  if ((model.functions ?? []).length)
    throw new KensaError(
      'E_ARGUMENT',
      'the backbone defines its own ONNX functions, which the exported graph does not carry. Export the backbone with its functions inlined, train again, then export',
      { file },
    );
  const foreign = (model.graph?.node ?? []).find((n) => n.domain && n.domain !== 'ai.onnx');
  if (foreign)
    throw new KensaError(
      'E_ARGUMENT',
      `the backbone uses the operator ${foreign.domain}.${foreign.opType}, outside the standard ONNX domain that exported files keep. ` +
        'Export the backbone without runtime-specific optimisations, train again, then export',
      { file },
    );
}
