#!/usr/bin/env python3
"""Runs a graph written by `kensa export --format onnx` with Python's onnxruntime and compares it with
kensa's own results: image scores within 1e-4 relative, anomaly maps within 1e-3 (largest difference
relative to the map's maximum). Exits 1 when any image is outside.

Two ways to give the images:

  --cases DIR   a folder written by kensa's test suite (test/export/python.test.ts): cases.json lists, per
                image, the processed input kensa fed its backbone (a PNG at the model's input size: the
                exact pixels, so the comparison is of the computation alone), kensa predict's score, and
                kensa's map as raw float32 (.f32). This is the proof of equality.
  --images F…   plain image files: each is resized to the input size the model's preprocessing gives
                (kensa.json's rule) with Pillow's bilinear filter and scored; with --expect
                predictions.json (from kensa predict) the scores are compared too. Pillow resamples
                differently from libvips, so expect small differences here; this is how a caller uses it.

Developer tool (pip install onnxruntime numpy pillow); kensa never runs Python.

  python tools/onnx_check.py --onnx OUT/model.onnx --cases CASES
  python tools/onnx_check.py --onnx OUT/model.onnx --images a.png b.png --expect RESULTS/predictions.json
"""
import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def round16(v):
    return max(16, round(v / 16) * 16)


def geometry(p, width, height):
    """The input size and crop of an image (kensa's image/preprocess.ts geometry())."""
    if p["mode"] == "resize":
        return (p["size"], p["size"], 0, 0, p["size"], p["size"])
    if p["mode"] == "fit":
        f = p["size"] / math.sqrt(width * height)
        w, h = min(16384, round16(width * f)), min(16384, round16(height * f))
        return (w, h, 0, 0, w, h)
    if p["mode"] == "scale":
        w, h = round16(width * p["scale"]), round16(height * p["scale"])
        return (w, h, 0, 0, w, h)
    r, c = p["resize"], p["crop"]
    rw, rh = (r, r * height // width) if width <= height else (r * width // height, r)
    return (rw, rh, round((rw - c) / 2), round((rh - c) / 2), c, c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--cases")
    ap.add_argument("--images", nargs="*")
    ap.add_argument("--expect")
    ap.add_argument("--score-tolerance", type=float, default=1e-4)
    ap.add_argument("--map-tolerance", type=float, default=1e-3)
    a = ap.parse_args()
    session = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    info = json.loads(session.get_modelmeta().custom_metadata_map["kensa"])
    threshold = info["threshold"]["value"]

    def run(rgb):
        out = session.run(["anomaly_map", "score"], {"image": rgb[None]})
        return out[0][0], float(out[1][0])

    rows, failed = [], 0
    if a.cases:
        root = Path(a.cases)
        for case in json.loads((root / "cases.json").read_text())["cases"]:
            rgb = np.asarray(Image.open(root / case["input"]).convert("RGB"), dtype=np.uint8)
            amap, score = run(rgb)
            kmap = np.fromfile(root / case["map"], dtype="<f4").reshape(amap.shape)
            s_err = abs(score - case["score"]) / abs(case["score"])
            m_err = float(np.abs(amap - kmap).max() / np.abs(kmap).max())
            ok = s_err <= a.score_tolerance and m_err <= a.map_tolerance and (score > threshold) == (case["verdict"] == "NG")
            failed += not ok
            rows.append({"file": case["file"], "score": score, "kensa_score": case["score"], "score_rel_error": s_err, "map_rel_error": m_err, "verdict": "NG" if score > threshold else "OK", "ok": ok})
    expected = {}
    if a.expect:
        expected = {str(Path(p["file"]).resolve()): p for p in json.loads(Path(a.expect).read_text())["predictions"]}
    for f in a.images or []:
        img = Image.open(f).convert("RGB")
        rw, rh, left, top, w, h = geometry(info["preprocess"], img.width, img.height)
        img = img.resize((rw, rh), Image.BILINEAR).crop((left, top, left + w, top + h))
        amap, score = run(np.asarray(img, dtype=np.uint8))
        row = {"file": f, "score": score, "verdict": "NG" if score > threshold else "OK"}
        k = expected.get(str(Path(f).resolve()))
        if k:
            row.update(kensa_score=k["score"], kensa_verdict=k["verdict"], score_rel_error=abs(score - k["score"]) / abs(k["score"]))
        rows.append(row)
    worst = lambda key: max((r[key] for r in rows if key in r), default=None)
    summary = {"images": len(rows), "failed": failed, "worst_score_rel_error": worst("score_rel_error"), "worst_map_rel_error": worst("map_rel_error"), "onnxruntime": ort.__version__}
    if a.images and expected:
        summary["verdicts_equal"] = sum(r.get("kensa_verdict") == r["verdict"] for r in rows if "kensa_verdict" in r)
    print(json.dumps({"summary": summary, "images": rows}, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
