/**
 * The web export's page (index.html): an operator drops images (or picks them) and sees OK/NG, the score,
 * the heat map and the boxes — offline, from file:// or any static server, in English and Japanese.
 *
 * Loading works without fetch, so that file:// pages (where browsers refuse fetch and module imports) run:
 * the ONNX graph comes from model.js and model-K.js (base64 parts), onnxruntime-web from its own UMD
 * script (ort.wasm.min.js), its WASM binary from ort-wasm.js (base64) and its loader module from
 * ort-glue.js (a string imported as a blob: URL). Served cross-origin isolated (COOP/COEP headers), it runs on 2+ threads, else on one.
 *
 * Per image, as kensa does: the size the model takes (geometry(), ported below), the image resized to it
 * on a canvas, the graph → map and score; NG when score > threshold; regions where the map, on the score's
 * scale, is above the threshold (8-connected), boxed in original pixels. The browser's resampling is not
 * libvips': for images that need resizing, scores can differ slightly from kensa predict's, and the boxes
 * are the map's regions (kensa predict narrows them to the pixels that stand out).
 */

/** `parts`: the model-K.js files that hold the graph (export.ts, WEB_PART_BYTES each). */
export function webPage(lut: number[], title: string, parts = 1): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
:root { --ng: #c62828; --ok: #2e7d32; --line: #ddd; font-family: system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP", sans-serif; }
body { margin: 0; background: #fafafa; color: #222; }
header { display: flex; align-items: center; justify-content: space-between; padding: 12px 20px; background: #263238; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
main { padding: 16px 20px; max-width: 1300px; margin: 0 auto; }
#drop { border: 3px dashed #90a4ae; border-radius: 10px; padding: 28px; text-align: center; background: #fff; font-size: 18px; }
#drop.over { background: #e3f2fd; border-color: #1e88e5; }
#status { margin: 10px 0; color: #555; min-height: 1.4em; }
#summary { font-size: 20px; margin: 8px 0; }
#results { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 14px; }
.result { background: #fff; border: 3px solid var(--line); border-radius: 8px; padding: 8px; }
.result.NG { border-color: var(--ng); } .result.OK { border-color: var(--ok); }
.result canvas { width: 100%; display: block; }
.verdict { font-size: 26px; font-weight: bold; } .NG .verdict { color: var(--ng); } .OK .verdict { color: var(--ok); }
.name { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
.error { color: var(--ng); }
button { font-size: 14px; }
</style>
</head>
<body>
<header><h1 data-t="title"></h1><button id="lang">日本語</button></header>
<main>
<div id="drop"><p data-t="drop"></p><input type="file" id="files" multiple accept="image/*"></div>
<div id="status"></div>
<div id="summary"></div>
<div id="results"></div>
</main>
<script src="model.js"></script>
${Array.from({ length: parts }, (_, k) => `<script src="model-${k}.js"></script>`).join('\n')}
<script src="ort.wasm.min.js"></script>
<script src="ort-wasm.js"></script>
<script src="ort-glue.js"></script>
<script>
(function () {
  'use strict';
  var LUT = ${JSON.stringify(lut)};
  var T = {
    en: { title: 'kensa — inspection', drop: 'Drop images here, or choose them:', loading: 'Loading the model…',
          ready: 'Ready. Model: {m}, threshold {t} ({n}).', working: 'Inspecting {i} of {n}…', done: '{n} images: {ng} NG, {ok} OK',
          score: 'score', norm: 'score / threshold', regions: 'regions', failed: 'Cannot read this image', lang: '日本語', threads: 'threads' },
    ja: { title: 'kensa — 検査', drop: '画像をここにドロップするか、選択してください：', loading: 'モデルを読み込んでいます…',
          ready: '準備完了。モデル: {m}、しきい値 {t}（{n}）。', working: '{n} 枚中 {i} 枚目を検査中…', done: '{n} 枚: NG {ng} 枚、OK {ok} 枚',
          score: 'スコア', norm: 'スコア / しきい値', regions: '領域', failed: 'この画像を読み込めません', lang: 'English', threads: 'スレッド' }
  };
  var lang = (navigator.language || '').indexOf('ja') === 0 ? 'ja' : 'en';
  var info = window.KENSA_INFO;
  var session = null;
  var results = [];
  var statusKey = null, statusArgs = {};
  function t(key, args) {
    var s = T[lang][key];
    Object.keys(args || {}).forEach(function (k) { s = s.replace('{' + k + '}', args[k]); });
    return s;
  }
  function say(key, args) { statusKey = key; statusArgs = args || {}; document.getElementById('status').textContent = t(key, args); }
  function relabel() {
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-t]').forEach(function (e) { e.textContent = t(e.getAttribute('data-t')); });
    document.getElementById('lang').textContent = T[lang].lang;
    if (statusKey) say(statusKey, statusArgs);
    summary();
    results.forEach(function (r) { if (r.labels) r.labels(); });
  }
  document.getElementById('lang').onclick = function () { lang = lang === 'en' ? 'ja' : 'en'; relabel(); };

  // a decoded base64 string's bytes into out from at; returns how many
  function copyInto(s, out, at) {
    for (var i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
    return s.length;
  }
  function bytesOf(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    copyInto(s, out, 0);
    return out;
  }
  // the graph from its base64 parts, each let go once decoded
  function modelBytes() {
    var out = new Uint8Array(window.KENSA_MODEL_BYTES), at = 0, parts = window.KENSA_MODEL_PARTS;
    for (var k = 0; k < parts.length; k++) {
      at += copyInto(atob(parts[k]), out, at);
      parts[k] = null;
    }
    if (at !== out.length) throw new Error('model-K.js: the parts of the graph hold ' + at + ' of its ' + out.length + ' bytes');
    return out;
  }

  // the size the model takes an image at (image/preprocess.ts: geometry)
  function round16(v) { return Math.max(16, Math.round(v / 16) * 16); }
  function geometry(p, width, height) {
    function plain(w, h) { return { rw: w, rh: h, left: 0, top: 0, w: w, h: h, sx: width / w, sy: height / h }; }
    if (p.mode === 'resize') return plain(p.size, p.size);
    if (p.mode === 'fit') { var f = p.size / Math.sqrt(width * height); return plain(Math.min(16384, round16(width * f)), Math.min(16384, round16(height * f))); }
    if (p.mode === 'scale') return plain(round16(width * p.scale), round16(height * p.scale));
    var rw = width <= height ? p.resize : Math.floor(p.resize * width / height);
    var rh = width <= height ? Math.floor(p.resize * height / width) : p.resize;
    return { rw: rw, rh: rh, left: Math.round((rw - p.crop) / 2), top: Math.round((rh - p.crop) / 2), w: p.crop, h: p.crop, sx: width / rw, sy: height / rh };
  }

  async function start() {
    say('loading');
    ort.env.wasm.wasmBinary = bytesOf(window.KENSA_ORT_WASM);
    ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([window.KENSA_ORT_GLUE], { type: 'text/javascript' })) };
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 2, Number(new URLSearchParams(location.search).get('threads')) || 2)) : 1;
    session = await ort.InferenceSession.create(modelBytes(), { executionProviders: ['wasm'] });
    window.KENSA_THREADS = ort.env.wasm.numThreads;
    say('ready', { m: info.method + ' / ' + info.backbone, t: info.threshold.value.toFixed(4), n: info.threshold.name });
    document.body.setAttribute('data-ready', '1');
  }

  async function inspect(file) {
    var bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    var W0 = bitmap.width, H0 = bitmap.height, g = geometry(info.preprocess, W0, H0);
    // a model with one input size (PaDiM) takes no other, as kensa predict refuses it
    if (info.input.width && (g.w !== info.input.width || g.h !== info.input.height))
      throw new Error('after preprocessing this image is ' + g.w + '×' + g.h + ' pixels; the model takes ' + info.input.width + '×' + info.input.height);
    var canvas = document.createElement('canvas');
    canvas.width = g.w; canvas.height = g.h;
    var ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.imageSmoothingEnabled = true; ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, -g.left, -g.top, g.rw, g.rh);
    var px = ctx.getImageData(0, 0, g.w, g.h).data, n = g.w * g.h, rgb = new Uint8Array(n * 3);
    for (var i = 0; i < n; i++) { rgb[i * 3] = px[i * 4]; rgb[i * 3 + 1] = px[i * 4 + 1]; rgb[i * 3 + 2] = px[i * 4 + 2]; }
    var t0 = performance.now();
    var out = await session.run({ image: new ort.Tensor('uint8', rgb, [1, g.h, g.w, 3]) });
    var ms = performance.now() - t0;
    var map = out.anomaly_map.data, score = out.score.data[0], max = -Infinity;
    for (i = 0; i < n; i++) if (map[i] > max) max = map[i];
    var thr = info.threshold.value, scale = max > 0 && score > 0 ? score / max : 1;
    return { bitmap: bitmap, g: g, W0: W0, H0: H0, map: map, score: score, ms: ms, verdict: score > thr ? 'NG' : 'OK',
             normalized: score / thr, regions: regions(map, g, thr / scale, W0, H0) };
  }

  // 8-connected regions of map > level, as boxes in original pixels
  function regions(map, g, level, W0, H0) {
    var w = g.w, h = g.h, label = new Int32Array(w * h), boxes = [], stack = [];
    for (var s = 0; s < w * h; s++) {
      if (map[s] <= level || label[s]) continue;
      var b = { x0: w, y0: h, x1: -1, y1: -1 };
      label[s] = boxes.length + 1; stack.push(s);
      while (stack.length) {
        var p = stack.pop(), x = p % w, y = (p - x) / w;
        b.x0 = Math.min(b.x0, x); b.x1 = Math.max(b.x1, x); b.y0 = Math.min(b.y0, y); b.y1 = Math.max(b.y1, y);
        for (var dy = -1; dy <= 1; dy++) for (var dx = -1; dx <= 1; dx++) {
          var X = x + dx, Y = y + dy;
          if (X < 0 || Y < 0 || X >= w || Y >= h) continue;
          var q = Y * w + X;
          if (!label[q] && map[q] > level) { label[q] = label[s]; stack.push(q); }
        }
      }
      boxes.push(b);
    }
    return boxes.map(function (b) {
      var x = Math.max(0, Math.floor((b.x0 + g.left) * g.sx)), y = Math.max(0, Math.floor((b.y0 + g.top) * g.sy));
      return { x: x, y: y, width: Math.max(1, Math.min(W0, Math.ceil((b.x1 + 1 + g.left) * g.sx)) - x), height: Math.max(1, Math.min(H0, Math.ceil((b.y1 + 1 + g.top) * g.sy)) - y) };
    });
  }

  function draw(r) {
    var side = 600, k = Math.min(1, side / Math.max(r.W0, r.H0));
    var c = document.createElement('canvas');
    c.width = Math.max(1, Math.round(r.W0 * k)); c.height = Math.max(1, Math.round(r.H0 * k));
    var ctx = c.getContext('2d');
    ctx.drawImage(r.bitmap, 0, 0, c.width, c.height);
    var heat = document.createElement('canvas'); heat.width = r.g.w; heat.height = r.g.h;
    var hctx = heat.getContext('2d'), img = hctx.createImageData(r.g.w, r.g.h), lo = info.display[0], hi = info.display[1];
    for (var i = 0; i < r.map.length; i++) {
      var v = Math.max(0, Math.min(255, Math.round((r.map[i] - lo) / (hi - lo || 1) * 255)));
      img.data[i * 4] = LUT[v * 3]; img.data[i * 4 + 1] = LUT[v * 3 + 1]; img.data[i * 4 + 2] = LUT[v * 3 + 2]; img.data[i * 4 + 3] = 255;
    }
    hctx.putImageData(img, 0, 0);
    ctx.globalAlpha = 0.5;
    ctx.drawImage(heat, r.g.left * r.g.sx * k, r.g.top * r.g.sy * k, r.g.w * r.g.sx * k, r.g.h * r.g.sy * k);
    ctx.globalAlpha = 1;
    r.regions.forEach(function (b) {
      ctx.lineWidth = 4; ctx.strokeStyle = '#fff'; ctx.strokeRect(b.x * k - 2, b.y * k - 2, b.width * k + 4, b.height * k + 4);
      ctx.lineWidth = 2; ctx.strokeStyle = '#ff1744'; ctx.strokeRect(b.x * k - 2, b.y * k - 2, b.width * k + 4, b.height * k + 4);
    });
    return c;
  }

  function summary() {
    var done = results.filter(function (r) { return r.verdict; });
    var ng = done.filter(function (r) { return r.verdict === 'NG'; }).length;
    document.getElementById('summary').textContent = done.length ? t('done', { n: done.length, ng: ng, ok: done.length - ng }) : '';
  }

  async function run(files) {
    if (!session) return;
    for (var i = 0; i < files.length; i++) {
      say('working', { i: i + 1, n: files.length });
      var file = files[i], box = document.createElement('div'), entry = { file: file.name };
      box.className = 'result'; box.setAttribute('data-file', file.name);
      document.getElementById('results').appendChild(box);
      results.push(entry);
      try {
        var r = await inspect(file);
        Object.assign(entry, { verdict: r.verdict, score: r.score, normalized: r.normalized, regions: r.regions, ms: r.ms });
        box.classList.add(r.verdict);
        box.setAttribute('data-verdict', r.verdict); box.setAttribute('data-score', String(r.score)); box.setAttribute('data-ms', String(r.ms));
        var head = document.createElement('div'), name = document.createElement('div');
        name.className = 'name'; name.textContent = file.name;
        entry.labels = function () {
          head.innerHTML = '';
          var v = document.createElement('span'); v.className = 'verdict'; v.textContent = r.verdict;
          var s = document.createElement('div');
          s.textContent = t('score') + ' ' + r.score.toFixed(4) + ' · ' + t('norm') + ' ' + r.normalized.toFixed(3) + ' · ' + t('regions') + ' ' + r.regions.length;
          head.appendChild(v); head.appendChild(s);
        };
        entry.labels();
        box.appendChild(head); box.appendChild(name); box.appendChild(draw(r));
      } catch (e) {
        entry.error = String(e && e.message || e);
        box.setAttribute('data-error', entry.error);
        box.innerHTML = '<div class="error"></div><div class="name"></div>';
        box.firstChild.textContent = t('failed') + ': ' + entry.error; box.lastChild.textContent = file.name;
      }
      summary();
    }
    say('ready', { m: info.method + ' / ' + info.backbone, t: info.threshold.value.toFixed(4), n: info.threshold.name });
    document.body.setAttribute('data-done', String(results.length));
  }
  window.KENSA_RESULTS = results;

  var drop = document.getElementById('drop');
  drop.addEventListener('dragover', function (e) { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', function () { drop.classList.remove('over'); });
  drop.addEventListener('drop', function (e) { e.preventDefault(); drop.classList.remove('over'); run(Array.from(e.dataTransfer.files)); });
  document.getElementById('files').addEventListener('change', function (e) { run(Array.from(e.target.files)); e.target.value = ''; });
  relabel();
  start().catch(function (e) { document.getElementById('status').textContent = String(e && e.message || e); document.body.setAttribute('data-failed', '1'); });
})();
</script>
</body>
</html>
`;
}
