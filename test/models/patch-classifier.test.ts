/**
 * The patch head (models/classifier/patch-head.ts) and the patch classifier (patch-method.ts, fitted by
 * kensa classify train): the head starts as the anomaly model and learns from NG images what the anomaly
 * score misses; its out-of-fold logits come from heads that did not see the image; the fitted model's
 * anomaly member (the ensemble, the default, or PatchCore) is the model kensa train fits on the same good
 * images, each image's probability is its top patch's, computed from that member's patch scores and the
 * patch embedding, and the exported graph gives the same probabilities.
 */
import { mkdtempSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Backbone } from '../../src/backbone/backbone.js';
import { collectImages } from '../../src/data/dataset.js';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { auroc } from '../../src/metrics/classification.js';
import {
  crossFit,
  foldHead,
  imageLogit,
  patchLogits,
  probabilityOf,
  trainPatchHead,
  type PatchExample,
} from '../../src/models/classifier/patch-head.js';
import {
  ANOMALY_MEMBERS,
  patchClassifier,
  type PatchClassifierState,
} from '../../src/models/classifier/patch-method.js';
import { ensemble, type EnsembleScores, type EnsembleState } from '../../src/models/ensemble/method.js';
import { exportOnnx } from '../../src/export/onnx.js';
import { Inspector } from '../../src/pipeline/engine/inspector.js';
import { EmbedGraph } from '../../src/models/patch-embedding.js';
import { patchcore } from '../../src/models/patchcore/method.js';
import type { PatchcoreState } from '../../src/models/patchcore/model.js';
import { loadModel, saveModel, type KensaModel } from '../../src/pipeline/contracts/model-file.js';
import { featureBatches } from '../../src/pipeline/engine/inspector.js';
import { trainClassifier } from '../../src/pipeline/verbs/classify.js';
import { train } from '../../src/pipeline/verbs/train.js';
import { mulberry32 } from '../../src/util/random.js';
import { moveDefectsToTrain } from '../helpers.js';

const SETTINGS = { epochs: 60, learningRate: 0.01, weightDecay: 1e-3, patience: 20, seed: 0 };

/**
 * Synthetic images of `cells` patches with C channels of noise; an NG image has one patch whose channel 2
 * is raised by `shift`. The anomaly scores are noise (`informative` false) or raised on that patch too.
 */
function examples(
  n: number,
  ng: number,
  seed: number,
  informative: boolean,
  C = 6,
  cells = 16,
): PatchExample[] {
  const random = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Array.from({ length: n + ng }, (_, i) => {
    const label = i < n ? 0 : 1;
    const rows = Float32Array.from({ length: cells * C }, gauss);
    const scores = Float32Array.from({ length: cells }, () => 1 + 0.2 * gauss());
    if (label) {
      const p = Math.floor(random() * cells);
      rows[p * C + 2] += 4;
      if (informative) scores[p] += 1;
    }
    return { rows, scores: [scores], label: label as 0 | 1 };
  });
}

describe('the patch head', () => {
  it('starts as the anomaly model: with no epoch, images rank by their top anomaly score', () => {
    const ex = examples(30, 6, 1, true);
    const { params } = trainPatchHead(ex, [], { ...SETTINGS, epochs: 0 });
    expect(Array.from(params.weight).every((w) => w === 0)).toBe(true);
    expect(params.scoreWeight).toEqual([1]);
    const head = foldHead(params);
    const logits = ex.map((e) => imageLogit(head, e).logit);
    const tops = ex.map((e) => Math.max(...e.scores[0]));
    for (let i = 0; i < ex.length; i++)
      for (let j = 0; j < ex.length; j++) if (tops[i] < tops[j]) expect(logits[i]).toBeLessThan(logits[j]);
    // the typical good image starts at the log-odds of the classes' prior, log(6 / 30)
    const typical = logits.slice(0, 30).reduce((s, v) => s + v, 0) / 30;
    expect(typical).toBeCloseTo(Math.log(6 / 30), 6);
  });

  it('learns from NG images what the anomaly score misses (on new images)', () => {
    const trainSet = examples(60, 15, 2, false);
    const testSet = examples(60, 30, 3, false);
    const labels = testSet.map((e) => e.label);
    const anomalyOnly = auroc(
      testSet.map((e) => Math.max(...e.scores[0])),
      labels,
    ).value;
    const { params } = trainPatchHead(trainSet, [], { ...SETTINGS, epochs: 300 });
    const head = foldHead(params);
    const learned = auroc(
      testSet.map((e) => imageLogit(head, e).logit),
      labels,
    ).value;
    expect(anomalyOnly).toBeLessThan(0.7);
    expect(learned).toBeGreaterThan(0.95);
    // and an NG image's top patch is, but for the odd one, the raised one
    const ng = testSet.filter((e) => e.label === 1);
    const found = ng.filter((e) => e.rows[imageLogit(head, e).top * 6 + 2] > 2).length;
    expect(found / ng.length).toBeGreaterThan(0.9);
  });

  it("with two anomaly scores (the ensemble's) it starts from their standardised sum, and learns both weights", () => {
    // a second score: the first's noise on another scale, informative on the NG patch where the first is not
    const random = mulberry32(7);
    const two = examples(40, 10, 5, false).map((e) => {
      const second = Float32Array.from(e.scores[0], (v) => 100 + 30 * (v - 1) + random());
      if (e.label) second[(e.rows.findIndex((_, k) => k % 6 === 2 && e.rows[k] > 2.5) / 6) | 0] += 60;
      return { ...e, scores: [e.scores[0], second] };
    });
    const start = trainPatchHead(two, [], { ...SETTINGS, epochs: 0 }).params;
    expect(start.scoreWeight).toEqual([1, 1]);
    expect(start.scoreStd[1] / start.scoreStd[0]).toBeGreaterThan(20);
    const f = foldHead(start);
    for (const e of two.slice(0, 5)) {
      const l = patchLogits(f, e.rows, e.scores);
      const z = (j: number, p: number) => (e.scores[j][p] - start.scoreMean[j]) / start.scoreStd[j];
      for (let p = 0; p < l.length; p++) expect(l[p] - start.bias).toBeCloseTo(z(0, p) + z(1, p), 4);
    }
    const learned = trainPatchHead(two, [], { ...SETTINGS, epochs: 200 }).params;
    expect(learned.scoreWeight[1]).toBeGreaterThan(learned.scoreWeight[0]);
  });

  it('cross-fits: each out-of-fold logit is from a head trained without the fold, for the folds’ median epochs', () => {
    const ex = examples(40, 10, 4, true);
    const folds = ex.map((_, i) => i % 5);
    const r = crossFit(ex, folds, 5, SETTINGS);
    expect(r.foldEpochs).toHaveLength(5);
    const epochs = [...r.foldEpochs].sort((a, b) => a - b)[2];
    expect(r.history).toHaveLength(epochs);
    for (const f of [0, 3]) {
      const without = trainPatchHead(
        ex.filter((_, i) => folds[i] !== f),
        [],
        { ...SETTINGS, epochs },
      );
      const head = foldHead(without.params);
      ex.forEach((e, i) => {
        if (folds[i] === f) expect(r.outOfFold[i]).toBe(imageLogit(head, e).logit);
      });
    }
    // the final head is the one trained on every image for as many epochs, with a fitted temperature
    const all = trainPatchHead(ex, [], { ...SETTINGS, epochs });
    expect(Array.from(r.params.weight)).toEqual(Array.from(all.params.weight));
    expect(r.params.temperature).toBeGreaterThan(0);
  });
});

describe.each(ANOMALY_MEMBERS)('kensa classify train --head patch on %s', (member) => {
  const dir = mkdtempSync(join(tmpdir(), `kensa-patch-classifier-${member}-`));
  const preprocess = { mode: 'resize', size: 64 } as const;
  let model: KensaModel;

  beforeAll(async () => {
    await makeSyntheticDataset(dir, { size: 64, train: 16, testGood: 4, testPerDefect: 6, seed: 9 });
    moveDefectsToTrain(dir, 3);
    // the ensemble is the default: named only for PatchCore
    const anomalyMethod = member === 'ensemble' ? undefined : member;
    const out = join(dir, 'patch.kensa');
    model = (await trainClassifier({ data: dir, out, preprocess, seed: 2, anomalyMethod })).model;
  }, 180_000);

  it(`holds the ${member} model kensa train fits on the same good images`, async () => {
    expect(model.meta.method).toBe('patch-classifier');
    const alone = await train({ data: join(dir, 'train', 'good'), method: member, preprocess, seed: 2 });
    const state = model.state as PatchClassifierState;
    expect(state.anomaly.method).toBe(member);
    const bank = (s: unknown) =>
      member === 'patchcore' ? (s as PatchcoreState).bank : (s as EnsembleState).patchcore.bank;
    expect(Array.from(bank(state.anomaly))).toEqual(Array.from(bank(alone.model.state)));
    if (member === 'ensemble') {
      const [a, b] = [state.anomaly as EnsembleState, alone.model.state as EnsembleState];
      expect(Array.from(a.padim.mean)).toEqual(Array.from(b.padim.mean));
      // weighed by the good images' out-of-fold scores, as kensa train weighs it
      expect(a.scales.every((x) => x > 0 && x !== 1)).toBe(true);
      expect(state.head.scoreWeight).toHaveLength(2);
    } else expect(state.head.scoreWeight).toHaveLength(1);
    // every good image is a calibration image (out-of-fold), and fpr0 is the highest of them
    expect(model.meta.calibration.mode).toBe('kfold');
    expect(model.meta.calibration.scores.count).toBe(16);
    expect(model.meta.thresholds.fpr0).toBe(Math.max(...model.calibrationScores));
  });

  it("scores each image by its top patch: the head on the member's patch scores and the embedding", async () => {
    const state = model.state as PatchClassifierState;
    const files = collectImages([join(dir, 'test')]);
    const backbone = await Backbone.load('efficientnet_lite0');
    const scorer = await patchClassifier.openScorer(state);
    const member =
      state.anomaly.method === 'patchcore'
        ? await patchcore.openScorer(state.anomaly)
        : await ensemble.openScorer(state.anomaly);
    const embed = await EmbedGraph.create(backbone.channels);
    const head = foldHead(state.head);
    let n = 0;
    try {
      for await (const b of featureBatches(backbone, files, preprocess, {}, 8)) {
        const got = await scorer.score(b.features);
        const own = await member.score(b.features);
        const rows = await embed.run(b.features);
        const [B, h, w] = got.dims;
        // PatchCore's distances; with the ensemble also PaDiM's patch scores, the largest of each 2 × 2
        const scores = [
          state.anomaly.method === 'patchcore' ? own.grid : (own as EnsembleScores).memberGrids[0],
        ];
        if (state.anomaly.method === 'ensemble') {
          const pd = (own as EnsembleScores).memberGrids[1];
          const pooled = new Float32Array(B * h * w);
          for (let e = 0; e < B; e++)
            for (let y = 0; y < h; y++)
              for (let x = 0; x < w; x++) {
                const at = (dy: number, dx: number) => pd[(e * 2 * h + 2 * y + dy) * 2 * w + 2 * x + dx];
                pooled[(e * h + y) * w + x] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
              }
          scores.push(pooled);
        }
        for (let i = 0; i < B; i++) {
          const l = patchLogits(head, rows, scores, i * h * w, h * w);
          const top = Math.max(...l);
          expect(Math.abs(got.peaks!.score[i] - probabilityOf(state.head, top))).toBeLessThan(1e-6);
          // the image's probability is its map's maximum: the top patch's
          const cells = got.grid.subarray(i * h * w, (i + 1) * h * w);
          expect(Math.abs(Math.max(...cells) - got.peaks!.score[i])).toBeLessThan(1e-6);
          n++;
        }
      }
    } finally {
      await Promise.all([scorer.release(), member.release(), embed.release(), backbone.dispose()]);
    }
    expect(n).toBe(files.length);
  });

  it("exports to one graph that gives kensa's probabilities", async () => {
    const { bytes } = await exportOnnx(model);
    const session = await ort.InferenceSession.create(bytes);
    const inspector = await Inspector.open(model);
    const files = collectImages([join(dir, 'test')]);
    let n = 0;
    try {
      for await (const s of inspector.score(files)) {
        const g = s.image.geometry;
        const o = await session.run({
          image: new ort.Tensor('uint8', s.image.rgb, [1, g.inputHeight, g.inputWidth, 3]),
        });
        // onnxruntime's Sigmoid is exact to ~1e-7 absolute, not relative: compare on the probability scale
        const p = (o.score.data as Float32Array)[0];
        expect(Math.abs(p - s.score)).toBeLessThan(1e-5);
        n++;
      }
    } finally {
      await inspector.dispose();
    }
    expect(n).toBe(files.length);
  });

  it('round-trips through the model file, and refuses a damaged head', async () => {
    const file = join(dir, 'copy.kensa');
    await saveModel(file, model);
    const back = await loadModel(file);
    const a = model.state as PatchClassifierState;
    const b = back.state as PatchClassifierState;
    expect(b.head).toEqual(a.head);
    expect(b.anomaly).toEqual(a.anomaly);
    const { tensors, meta } = patchClassifier.serialize(a);
    const map = new Map(tensors);
    const context = { channels: a.channels, formatVersion: 2 };
    const bad = member === 'patchcore' ? 0 : [1, 0];
    expect(patchClassifier.deserialize(map, { ...meta, score_std: bad }, context)).toBe(
      'its patch-classifier score spread is not a positive number',
    );
    expect(patchClassifier.deserialize(map, { ...meta, anomaly: undefined }, context)).toBe(
      member === 'patchcore' ? 'lacks the PatchCore settings' : 'lacks the ensemble settings',
    );
    if (member === 'ensemble') {
      // two scores' fields, one given: refused rather than read as PatchCore's head
      expect(patchClassifier.deserialize(map, { ...meta, score_weight: 1 }, context)).toBe(
        'its patch-classifier score weights, means and spreads are not lists of 2 numbers',
      );
      expect(patchClassifier.deserialize(map, { ...meta, anomaly_method: 'padim' }, context)).toBe(
        'names an anomaly member "padim" (expected ensemble or patchcore)',
      );
    }
    map.delete('patch-classifier.weight');
    expect(patchClassifier.deserialize(map, meta, context)).toBe('tensor patch-classifier.weight is missing');
  });
});
