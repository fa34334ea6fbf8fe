/**
 * The patch head (models/classifier/patch-head.ts) and the patch classifier (patch-method.ts, fitted by
 * kensa classify train): the head starts as the anomaly model and learns from NG images what the anomaly
 * score misses; its out-of-fold logits come from heads that did not see the image; the fitted model's
 * PatchCore member is the model kensa train fits on the same good images, and each image's probability is
 * its top patch's, computed from that member's patch scores and the patch embedding.
 */
import { mkdirSync, mkdtempSync, readdirSync, renameSync } from 'node:fs';
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
import { patchClassifier, type PatchClassifierState } from '../../src/models/classifier/patch-method.js';
import { EmbedGraph } from '../../src/models/patch-embedding.js';
import { patchcore } from '../../src/models/patchcore/method.js';
import type { PatchcoreState } from '../../src/models/patchcore/model.js';
import { loadModel, saveModel, type KensaModel } from '../../src/pipeline/contracts/model-file.js';
import { featureBatches } from '../../src/pipeline/engine/inspector.js';
import { trainClassifier } from '../../src/pipeline/verbs/classify.js';
import { train } from '../../src/pipeline/verbs/train.js';
import { mulberry32 } from '../../src/util/random.js';

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
    return { rows, scores, label: label as 0 | 1 };
  });
}

describe('the patch head', () => {
  it('starts as the anomaly model: with no epoch, images rank by their top anomaly score', () => {
    const ex = examples(30, 6, 1, true);
    const { params } = trainPatchHead(ex, [], { ...SETTINGS, epochs: 0 });
    expect(Array.from(params.weight).every((w) => w === 0)).toBe(true);
    expect(params.scoreWeight).toBe(1);
    const head = foldHead(params);
    const logits = ex.map((e) => imageLogit(head, e).logit);
    const tops = ex.map((e) => Math.max(...e.scores));
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
      testSet.map((e) => Math.max(...e.scores)),
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

describe('kensa classify train --head patch (the default)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kensa-patch-classifier-'));
  const preprocess = { mode: 'resize', size: 64 } as const;
  let model: KensaModel;

  beforeAll(async () => {
    await makeSyntheticDataset(dir, { size: 64, train: 16, testGood: 4, testPerDefect: 6, seed: 9 });
    for (const type of readdirSync(join(dir, 'test')).filter((t) => t !== 'good')) {
      mkdirSync(join(dir, 'train', type));
      for (const f of readdirSync(join(dir, 'test', type))
        .sort()
        .slice(0, 3))
        renameSync(join(dir, 'test', type, f), join(dir, 'train', type, f));
    }
    model = (await trainClassifier({ data: dir, out: join(dir, 'patch.kensa'), preprocess, seed: 2 })).model;
  }, 180_000);

  it('holds the PatchCore model kensa train fits on the same good images', async () => {
    expect(model.meta.method).toBe('patch-classifier');
    const alone = await train({ data: join(dir, 'train', 'good'), method: 'patchcore', preprocess, seed: 2 });
    const member = (model.state as PatchClassifierState).anomaly;
    const pc = alone.model.state as PatchcoreState;
    expect(member.bank.length).toBe(pc.bank.length);
    expect(Array.from(member.bank)).toEqual(Array.from(pc.bank));
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
    const member = await patchcore.openScorer(state.anomaly);
    const embed = await EmbedGraph.create(backbone.channels);
    const head = foldHead(state.head);
    let n = 0;
    try {
      for await (const b of featureBatches(backbone, files, preprocess, {}, 8)) {
        const got = await scorer.score(b.features);
        const grid = (await member.score(b.features)).grid;
        const rows = await embed.run(b.features);
        const [B, h, w] = got.dims;
        for (let i = 0; i < B; i++) {
          const l = patchLogits(head, rows, grid, i * h * w, h * w);
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

  it('round-trips through the model file, and refuses a damaged head', async () => {
    const file = join(dir, 'copy.kensa');
    await saveModel(file, model);
    const back = await loadModel(file);
    const a = model.state as PatchClassifierState;
    const b = back.state as PatchClassifierState;
    expect(b.head).toEqual(a.head);
    expect(Array.from(b.anomaly.bank)).toEqual(Array.from(a.anomaly.bank));
    const { tensors, meta } = patchClassifier.serialize(a);
    const map = new Map(tensors);
    const context = { channels: a.channels, formatVersion: 2 };
    expect(patchClassifier.deserialize(map, { ...meta, score_std: 0 }, context)).toBe(
      'its patch-classifier score spread is not a positive number',
    );
    expect(patchClassifier.deserialize(map, { ...meta, anomaly: undefined }, context)).toBe(
      'lacks the PatchCore settings',
    );
    map.delete('patch-classifier.weight');
    expect(patchClassifier.deserialize(map, meta, context)).toBe('tensor patch-classifier.weight is missing');
  });
});
