#!/usr/bin/env python3
"""Golden values for kensa's metrics and anomaly-map post-processing (developer-only):

  test/fixtures/metrics/classification.json   scores (with ties) and labels; scikit-learn's roc_auc_score,
                                               average_precision_score and best F1 from precision_recall_curve
  test/fixtures/metrics/aupro.json             small maps and masks; AUPRO from the brute-force reference
                                               below (per-threshold region overlap, scipy.ndimage.label)
  test/fixtures/metrics/anomaly_map.json       a 14x14 distance grid; F.interpolate(bilinear) to 56 and
                                               scipy gaussian_filter(sigma=4)
  test/fixtures/metrics/anomaly_map_rect.json  a 10x17 grid upsampled by 8 to 80x136 (not square), smoothed
                                               with sigma 4 in scipy's 'reflect' mode (PaDiM reference) and
                                               'mirror' mode (anomalib's GaussianBlur2d, PatchCore reference)

  python tools/make_metric_fixtures.py
"""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter, label
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "metrics"


def aupro_reference(maps, masks, limit=0.3):
    """Brute force: for every distinct score t (high to low), PRO(t) = mean over 8-connected ground-truth
    regions of the share of region pixels with score >= t; FPR(t) = share of good pixels with score >= t.
    The curve starts at (0, 0); area up to FPR = limit (linear interpolation), divided by limit."""
    regions = []
    good = []
    for m, g in zip(maps, masks):
        lab, n = label(g, structure=np.ones((3, 3)))
        regions += [m[lab == i] for i in range(1, n + 1)]
        good.append(m[g == 0])
    good = np.concatenate(good)
    thresholds = np.unique(np.concatenate([m.ravel() for m in maps]))[::-1]
    fpr = [0.0] + [float((good >= t).mean()) for t in thresholds]
    pro = [0.0] + [float(np.mean([(r >= t).mean() for r in regions])) for t in thresholds]
    fpr, pro = np.array(fpr), np.array(pro)
    keep = fpr <= limit
    xs, ys = list(fpr[keep]), list(pro[keep])
    if xs[-1] < limit and (~keep).any():
        i = np.argmax(~keep)
        t = (limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        xs.append(limit)
        ys.append(pro[i - 1] + t * (pro[i] - pro[i - 1]))
    return float(np.trapezoid(ys, xs) / limit)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    cases = []
    for n, ties in [(40, False), (200, True), (7, True)]:
        scores = rng.normal(size=n)
        if ties:
            scores = np.round(scores, 1)
        labels = (rng.random(n) < 0.4).astype(int)
        labels[0], labels[1] = 0, 1
        p, r, _ = precision_recall_curve(labels, scores)
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0)
        cases.append({"scores": scores.tolist(), "labels": labels.tolist(),
                      "roc_auc": roc_auc_score(labels, scores), "average_precision": average_precision_score(labels, scores),
                      "f1_max": float(f1.max())})
    (OUT / "classification.json").write_text(json.dumps(cases))

    maps, masks = [], []
    for k in range(4):
        m = rng.random((12, 12)).astype(np.float32)
        g = np.zeros((12, 12), dtype=np.uint8)
        if k:  # one good image, three with regions of different sizes
            g[k:k + 2 * k, 2:2 + k] = 1
            g[9:11, 9:11] = 1
            m[g == 1] += 0.5
        maps.append(np.round(m, 3))
        masks.append(g)
    (OUT / "aupro.json").write_text(json.dumps({"size": 12, "maps": [m.ravel().tolist() for m in maps],
                                                "masks": [g.ravel().tolist() for g in masks],
                                                "aupro": aupro_reference(maps, masks)}))

    d = rng.random((14, 14))
    up = F.interpolate(torch.tensor(d)[None, None], size=56, mode="bilinear", align_corners=False)[0, 0].numpy()
    (OUT / "anomaly_map.json").write_text(json.dumps({"grid": 14, "size": 56, "sigma": 4, "dist": d.ravel().tolist(),
                                                      "map": gaussian_filter(up, sigma=4).ravel().tolist()}))

    d = rng.random((10, 17))
    up = F.interpolate(torch.tensor(d)[None, None], size=(80, 136), mode="bilinear", align_corners=False)[0, 0].numpy()
    (OUT / "anomaly_map_rect.json").write_text(json.dumps({
        "grid": [10, 17], "size": [80, 136], "sigma": 4, "dist": d.ravel().tolist(),
        "reflect": gaussian_filter(up, sigma=4, mode="reflect").ravel().tolist(),
        "mirror": gaussian_filter(up, sigma=4, mode="mirror").ravel().tolist()}))


if __name__ == "__main__":
    main()
