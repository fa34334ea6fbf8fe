/**
 * The report page's own script and styles, inlined into report.html (no network, works from file://).
 * Plain ES2018; it reads the data block, draws the score histogram, and keeps the counts, confusion
 * matrix, NG list and grid badges in step with the threshold slider. English and Japanese.
 */

export const STYLES = `
:root { --ng: #c62828; --ok: #2e7d32; --muted: #666; --line: #ddd; font-family: system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP", sans-serif; }
body { margin: 0; background: #fafafa; color: #222; }
header { display: flex; align-items: center; justify-content: space-between; padding: 12px 20px; background: #263238; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
main { padding: 16px 20px; max-width: 1400px; margin: 0 auto; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 14px 16px; margin-bottom: 16px; }
h2 { font-size: 16px; margin: 0 0 10px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 110px; }
.card b { display: block; font-size: 20px; }
.card span { color: var(--muted); font-size: 12px; }
.curves img { height: 260px; margin-right: 10px; border: 1px solid var(--line); }
#hist { width: 100%; height: 160px; display: block; }
#slider { width: 100%; }
.readout { display: flex; flex-wrap: wrap; gap: 18px; margin: 8px 0; font-size: 14px; }
.readout b { font-variant-numeric: tabular-nums; }
table.conf { border-collapse: collapse; font-size: 13px; }
table.conf td, table.conf th { border: 1px solid var(--line); padding: 4px 10px; text-align: right; }
.cmd { width: 100%; font-family: ui-monospace, monospace; font-size: 12px; padding: 4px; box-sizing: border-box; }
.row { display: flex; gap: 8px; align-items: center; margin-top: 6px; }
#nglist { max-height: 220px; overflow: auto; font-family: ui-monospace, monospace; font-size: 12px; margin: 0; padding-left: 4.5em; }
#nglist li { cursor: pointer; } #nglist li:hover { text-decoration: underline; }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.tile { position: relative; border: 2px solid transparent; border-radius: 6px; background: #fff; cursor: pointer; overflow: hidden; }
.tile img { width: 100%; aspect-ratio: 1; object-fit: contain; display: block; background: #eee; }
.tile .cap { font-size: 11px; padding: 3px 5px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tile .badge { position: absolute; top: 4px; left: 4px; color: #fff; font-size: 11px; font-weight: bold; padding: 1px 6px; border-radius: 3px; }
.tile.ng { border-color: var(--ng); } .tile.ng .badge { background: var(--ng); }
.tile.ok .badge { background: var(--ok); }
.tile.missed { border-color: #ef6c00; border-style: dashed; } .tile.missed .badge { background: #ef6c00; }
.tile.false-alarm { border-style: dashed; }
.tile .mark { position: absolute; top: 4px; right: 4px; font-size: 11px; padding: 1px 6px; border-radius: 3px; border: 1px solid #90a4ae; background: #fff; cursor: pointer; }
.tile .mark.on { background: #ffb300; border-color: #ff8f00; font-weight: bold; }
#modal { position: fixed; inset: 0; background: rgba(0,0,0,.75); display: none; align-items: center; justify-content: center; flex-direction: column; z-index: 10; }
#modal.open { display: flex; }
#modal img { max-width: 96vw; max-height: 80vh; background: #fff; }
#modal p { color: #fff; font-family: ui-monospace, monospace; font-size: 13px; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
.legend span.outline { background: none; border: 2px solid #1565c0; width: 7px; height: 7px; }
.note { color: var(--muted); font-size: 13px; margin: 0 0 8px; }
#calibration-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
#calibration-grid .tile { cursor: default; border-color: #90caf9; }
#calibration-grid .tile img { object-fit: contain; }
#calibration-grid .cap { white-space: normal; }
button { white-space: nowrap; }
`;

export const SCRIPT = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('kensa-data').textContent);
  var T = {
    en: {
      title: 'kensa inspection report', summary: 'Summary', images: 'images', ng: 'NG', ok: 'OK', threshold: 'Threshold',
      fpr: 'False-positive rate', recall: 'Recall (defects found)', good: 'good', defective: 'defective', unlabelled: 'unlabelled',
      confusion: 'Confusion matrix', actual: 'actual', predicted: 'predicted', nglist: 'NG images', grid: 'All images (highest score first)',
      copy: 'Copy', copied: 'Copied', use_predict: 'Use this threshold when predicting:', store_model: 'Or store it in the model:', powershell: 'In PowerShell:',
      reset: 'Back to fpr0', fpr0: 'fpr0: no false alarm on known-good images', f1: 'f1: best F1 on this test set',
      quantile: 'quantile', custom: 'stored', none: 'No NG image at this threshold.', close: 'Close (Esc)',
      image_auroc: 'Image AUROC', pixel_auroc: 'Pixel AUROC', aupro: 'AUPRO', image_ap: 'Average precision', image_f1_max: 'F1 max',
      kind_test: 'kensa test results', kind_predict: 'kensa predict results', language: 'Language', score: 'score',
      calibration: 'Calibration: the good images behind the thresholds', calibration_scores: 'calibration (good, not seen by the model)',
      calibration_note: 'The thresholds come from {n} good images, each scored by a model that had not seen it ({mode}); fpr0 is the highest. The highest are shown: if one is not a normal good part, leave it out without re-training.',
      calibration_excluded: ' {k} image(s) are left out already.', above_next: 'above the next', above_next_odds: 'odds above the next', exclude_hint: 'Leave the highest out of fpr0 (no re-training):',
      mode_loo: 'leave-one-out', mode_kfold: 'k-fold', mode_holdout: 'hold-out',
      missed: 'OK · missed (defective)', false_alarm: 'NG · false alarm (good)', type: 'Defect type', false_alarms: 'false alarms',
      review: 'Review', mark_good: 'actually good?', mark_ng: 'actually NG?', marked_good: 'marked good', marked_ng: 'marked NG',
      review_note: 'Mark the NG images that are good parts and the OK images that are defective (the buttons on the pictures). {n} marked. The commands below add the good ones to the model at once (kensa update: no re-training; the model it replaces is kept as NAME.previous.kensa), and copy them into the data set: the good ones into its folder of good training images (train/good, or the name it uses) for later trainings, the NG ones into its test folder of NG images (test/NG, or the name it uses) for the next kensa test.',
      review_update: 'Add the images marked good to the model (POSIX shell, then PowerShell; or save the list and give it: kensa update --model MODEL --add review.txt):',
      review_copy: 'Copy the marked images into the data set (POSIX shell, then PowerShell):', review_copy_data: 'Copy the marked images into the data set (replace DATA with its folder; POSIX shell, then PowerShell):', review_file: 'Save the list (review.txt)'
    },
    ja: {
      title: 'kensa 検査レポート', summary: '概要', images: '枚', ng: 'NG', ok: 'OK', threshold: 'しきい値',
      fpr: '誤検出率', recall: '検出率（欠陥を見つけた割合）', good: '良品', defective: '不良品', unlabelled: 'ラベルなし',
      confusion: '混同行列', actual: '実際', predicted: '判定', nglist: 'NG 画像', grid: 'すべての画像（スコアの高い順）',
      copy: 'コピー', copied: 'コピーしました', use_predict: '推論でこのしきい値を使う:', store_model: 'またはモデルに保存する:', powershell: 'PowerShell では:',
      reset: 'fpr0 に戻す', fpr0: 'fpr0: 既知の良品で誤検出ゼロ', f1: 'f1: このテストセットで F1 最大',
      quantile: '分位点', custom: '保存済み', none: 'このしきい値では NG 画像はありません。', close: '閉じる（Esc）',
      image_auroc: '画像 AUROC', pixel_auroc: '画素 AUROC', aupro: 'AUPRO', image_ap: '平均適合率', image_f1_max: 'F1 最大値',
      kind_test: 'kensa test の結果', kind_predict: 'kensa predict の結果', language: '言語', score: 'スコア',
      calibration: '校正: しきい値のもとになった良品画像', calibration_scores: '校正（モデルが見ていない良品）',
      calibration_note: 'しきい値は良品 {n} 枚から決まります。各画像はその画像を見ていないモデルで採点しました（{mode}）。fpr0 はその最大値です。スコアの高いものを示します。正常な良品でないものがあれば、再学習せずに除外できます。',
      calibration_excluded: ' すでに {k} 枚を除外しています。', above_next: '次の画像より高い', above_next_odds: 'オッズが次の画像より高い', exclude_hint: '最も高い画像を fpr0 から除く（再学習なし）:',
      mode_loo: '1 枚ずつ除外（leave-one-out）', mode_kfold: 'k 分割', mode_holdout: '取り分け',
      missed: 'OK・見逃し（不良品）', false_alarm: 'NG・誤検出（良品）', type: '欠陥の種類', false_alarms: '誤検出',
      review: '見直し', mark_good: '実は良品?', mark_ng: '実は NG?', marked_good: '良品と判定', marked_ng: 'NG と判定',
      review_note: '良品なのに NG になった画像と、不良なのに OK になった画像に印を付けてください（画像のボタン）。印: {n} 枚。下のコマンドで、良品はすぐにモデルへ追加でき（kensa update: 再学習なし。置き換えたモデルは NAME.previous.kensa として残ります）、データセットにもコピーできます: 良品は今後の学習用に学習用良品フォルダ（train/good、またはデータセットでの名前）へ、NG は次の kensa test 用にテストの NG フォルダ（test/NG、またはデータセットでの名前）へ。',
      review_update: '良品と印を付けた画像をモデルに追加（POSIX シェル、次に PowerShell。または一覧を保存して指定: kensa update --model MODEL --add review.txt）:',
      review_copy: '印を付けた画像をデータセットにコピー（POSIX シェル、次に PowerShell）:', review_copy_data: '印を付けた画像をデータセットにコピー（DATA をそのフォルダに。POSIX シェル、次に PowerShell）:', review_file: '一覧を保存（review.txt）'
    }
  };
  var lang = (navigator.language || 'en').toLowerCase().indexOf('ja') === 0 ? 'ja' : 'en';
  var $ = function (id) { return document.getElementById(id); };
  var images = data.images.slice().sort(function (a, b) { return b.score - a.score; });
  var labelled = images.some(function (im) { return im.label === 0 || im.label === 1; });
  var scores = images.map(function (im) { return im.score; });
  var calib = data.calibration && data.calibration.scores && data.calibration.scores.length ? data.calibration : null;
  var lo = Math.min.apply(null, scores), hi = Math.max.apply(null, scores);
  if (calib) { lo = Math.min(lo, Math.min.apply(null, calib.scores)); hi = Math.max(hi, Math.max.apply(null, calib.scores)); }
  var marks = data.model.thresholds || {};
  Object.keys(marks).forEach(function (k) { if (typeof marks[k] === 'number') { lo = Math.min(lo, marks[k]); hi = Math.max(hi, marks[k]); } });
  var pad = (hi - lo) * 0.05 || 1; lo -= pad; hi += pad;
  var slider = $('slider');
  slider.min = lo; slider.max = hi; slider.step = (hi - lo) / 2000; slider.value = data.threshold;
  var threshold = data.threshold;
  var esc = function (v) { return String(v).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); };
  // a relative path as a URL: every segment encoded, so that '#', '?' or '%' in a file name stay part of it
  var url = function (p) { return String(p || '').split('/').map(encodeURIComponent).join('/'); };
  // an argument quoted for POSIX shells ('...', a quote as '\''), and for PowerShell ('...', a quote
  // doubled: PowerShell takes the typographic quotes U+2018-U+201B for ' too, so each is doubled as well)
  var shq = function (v) { return /^[A-Za-z0-9_\/.,:=+@%-]+$/.test(v) ? v : "'" + String(v).replace(/'/g, "'\\''") + "'"; };
  var psq = function (v) { return /^[A-Za-z0-9_\/.,:=+@%-]+$/.test(v) ? v : "'" + String(v).replace(/['\u2018-\u201b]/g, '$&$&') + "'"; };
  var fmt = function (v, d) { return v === null || v === undefined ? 'n/a' : Number(v).toFixed(d === undefined ? 3 : d); };

  function t(key) { return (T[lang] && T[lang][key]) || T.en[key] || key; }
  function translate() {
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-i18n]').forEach(function (el) { el.textContent = t(el.getAttribute('data-i18n')); });
    $('lang').value = lang;
    $('kind').textContent = t('kind_' + data.kind);
    drawHistogram();
    update();
  }

  // summary metrics (test only)
  var m = data.metrics || {};
  var mk = ['image_auroc', 'pixel_auroc', 'aupro', 'image_ap', 'image_f1_max'].filter(function (k) { return k in m; });
  $('metrics').innerHTML = mk.map(function (k) {
    return '<div class="card"><b>' + fmt(m[k], 4) + '</b><span data-i18n="' + k + '"></span></div>';
  }).join('');

  // review marks: what the engineer says a part really is, kept in the browser for this report
  var marksKey = 'kensa-review:' + location.pathname;
  var review = {};
  try { review = JSON.parse(localStorage.getItem(marksKey) || '{}') || {}; } catch (e) { review = {}; }
  function saveMarks() { try { localStorage.setItem(marksKey, JSON.stringify(review)); } catch (e) { /* private mode */ } }
  function drawReview() {
    var good = [], ng = [];
    Object.keys(review).forEach(function (k) { if (images[Number(k)]) (review[k] === 'good' ? good : ng).push(images[Number(k)].file); });
    $('review-note').textContent = t('review_note').replace('{n}', good.length + ng.length);
    var text = good.map(function (f) { return 'good\t' + f; }).concat(ng.map(function (f) { return 'ng\t' + f; })).join('\n');
    $('review-list').value = text;
    // the data set's folder where kensa test ran on one, else DATA for the user to replace
    var root = data.data || 'DATA';
    var sep = /^[A-Za-z]:\\|^\\\\/.test(root) ? '\\' : '/';
    var into = function (a, b) { return root + sep + a + sep + b; };
    // the data set's own folder names (train/良品, test/不良, …), so that the next kensa train finds one good folder
    var folders = data.folders || { good: 'good', ng: 'NG' };
    var sh = [], ps = [];
    if (good.length) {
      sh.push('mkdir -p ' + shq(into('train', folders.good)) + ' && cp ' + good.map(shq).join(' ') + ' ' + shq(into('train', folders.good)) + '/');
      ps.push('New-Item -ItemType Directory -Force -Path ' + psq(into('train', folders.good)) + ' | Out-Null; Copy-Item -LiteralPath ' + good.map(psq).join(',') + ' -Destination ' + psq(into('train', folders.good)));
    }
    if (ng.length) {
      sh.push('mkdir -p ' + shq(into('test', folders.ng)) + ' && cp ' + ng.map(shq).join(' ') + ' ' + shq(into('test', folders.ng)) + '/');
      ps.push('New-Item -ItemType Directory -Force -Path ' + psq(into('test', folders.ng)) + ' | Out-Null; Copy-Item -LiteralPath ' + ng.map(psq).join(',') + ' -Destination ' + psq(into('test', folders.ng)));
    }
    $('cmd-review').value = sh.join(' && ');
    $('cmd-review-ps').value = ps.join('; ');
    $('review-copy-note').textContent = t(data.data ? 'review_copy' : 'review_copy_data');
    var model = data.model.path || 'MODEL';
    $('cmd-update').value = good.length ? 'kensa update --model ' + shq(model) + ' --add ' + good.map(shq).join(' ') : '';
    $('cmd-update-ps').value = good.length ? 'kensa update --model ' + psq(model) + ' --add ' + good.map(psq).join(' ') : '';
    $('update-rows').style.display = good.length ? '' : 'none';
    $('review-file').href = 'data:text/plain;charset=utf-8,' + encodeURIComponent(text + (text ? '\n' : ''));
  }

  // grid, built once; badges follow the threshold
  var grid = $('grid');
  var tiles = images.map(function (im, i) {
    var d = document.createElement('div');
    d.className = 'tile';
    d.setAttribute('data-index', i);
    d.innerHTML = '<span class="badge"></span><img loading="lazy" decoding="async" alt="" src="' + esc(url(im.thumb || im.overlay)) + '">' +
      '<div class="cap" title="' + esc(im.file) + '">' + im.score.toFixed(2) + ' · ' + esc(im.name) + '</div>' +
      '<button class="mark" type="button"></button>';
    d.onclick = function () { openImage(i); };
    d.querySelector('.mark').onclick = function (e) {
      e.stopPropagation();
      // the part is the opposite of its verdict at the threshold shown; a second click takes the mark back
      if (review[i]) delete review[i];
      else review[i] = images[i].score > threshold ? 'good' : 'ng';
      saveMarks();
      update();
    };
    grid.appendChild(d);
    return d;
  });

  function openImage(i) {
    var im = images[i];
    $('modal-img').src = url(im.figure || im.overlay || im.thumb);
    $('modal-caption').textContent = im.file + ' — ' + t('score') + ' ' + im.score.toFixed(3);
    $('modal').classList.add('open');
  }
  $('modal').onclick = function () { $('modal').classList.remove('open'); };
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') $('modal').classList.remove('open'); });

  function counts(th) {
    var c = { ng: 0, ok: 0, tp: 0, fp: 0, tn: 0, fn: 0 };
    images.forEach(function (im) {
      var ng = im.score > th;
      if (ng) c.ng++; else c.ok++;
      if (im.label === 1) { if (ng) c.tp++; else c.fn++; }
      else if (im.label === 0) { if (ng) c.fp++; else c.tn++; }
    });
    c.fpr = c.fp + c.tn ? c.fp / (c.fp + c.tn) : null;
    c.recall = c.tp + c.fn ? c.tp / (c.tp + c.fn) : null;
    return c;
  }

  var W = 1000, H = 160;
  var xOf = function (v) { return ((v - lo) / (hi - lo)) * W; };
  function drawHistogram() {
    var bins = 50, width = (hi - lo) / bins, series = { good: [], defective: [], unlabelled: [] };
    Object.keys(series).forEach(function (k) { for (var i = 0; i < bins; i++) series[k].push(0); });
    images.forEach(function (im) {
      var b = Math.min(bins - 1, Math.max(0, Math.floor((im.score - lo) / width)));
      series[im.label === 1 ? 'defective' : im.label === 0 ? 'good' : 'unlabelled'][b]++;
    });
    var top = 1;
    Object.keys(series).forEach(function (k) { series[k].forEach(function (v) { top = Math.max(top, v); }); });
    var colours = { good: 'rgba(46,125,50,.55)', defective: 'rgba(198,40,40,.55)', unlabelled: 'rgba(96,125,139,.6)' };
    var svg = '';
    Object.keys(series).forEach(function (k) {
      series[k].forEach(function (v, i) {
        if (!v) return;
        var h = (v / top) * (H - 30);
        svg += '<rect x="' + (i * W / bins + 1) + '" y="' + (H - 14 - h) + '" width="' + (W / bins - 2) + '" height="' + h + '" fill="' + colours[k] + '"/>';
      });
    });
    var row = 0;
    ['fpr0', 'f1', 'quantile', 'custom'].forEach(function (k) {
      if (typeof marks[k] !== 'number') return;
      var x = xOf(marks[k]);
      svg += '<line x1="' + x + '" x2="' + x + '" y1="0" y2="' + (H - 14) + '" stroke="#555" stroke-dasharray="4 3"/>' +
        '<text x="' + (x + 3) + '" y="' + (10 + 12 * row++) + '" font-size="11" fill="#333">' + k + '</text>';
    });
    if (calib) {
      // the calibration scores as an outline, scaled to its own highest bin (their number differs)
      var cb = []; for (var i = 0; i < bins; i++) cb.push(0);
      calib.scores.forEach(function (v) { cb[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]++; });
      var ctop = Math.max.apply(null, cb) || 1, path = 'M0 ' + (H - 14);
      cb.forEach(function (v, i) {
        var y = H - 14 - (v / ctop) * (H - 30);
        path += ' L' + (i * W / bins) + ' ' + y + ' L' + ((i + 1) * W / bins) + ' ' + y;
      });
      svg += '<path id="calib-outline" d="' + path + ' L' + W + ' ' + (H - 14) + '" fill="none" stroke="#1565c0" stroke-width="1.5" stroke-dasharray="5 2"/>';
    }
    svg += '<line id="tline" x1="0" x2="0" y1="0" y2="' + (H - 14) + '" stroke="#1565c0" stroke-width="3"/>';
    svg += '<text x="0" y="' + (H - 2) + '" font-size="11" fill="#666">' + lo.toFixed(2) + '</text><text x="' + W + '" y="' + (H - 2) + '" font-size="11" fill="#666" text-anchor="end">' + hi.toFixed(2) + '</text>';
    $('hist').innerHTML = svg;
    $('legend').innerHTML = (labelled ? ['good', 'defective'] : ['unlabelled']).map(function (k) {
      return '<span style="background:' + colours[k] + '"></span>' + t(k);
    }).join('') + (calib ? '<span class="outline"></span>' + t('calibration_scores') : '') +
      ' &nbsp; ' + ['fpr0', 'f1'].filter(function (k) { return typeof marks[k] === 'number'; }).map(function (k) { return t(k); }).join(' · ');
    drawCalibration();
  }

  // the highest calibration images: what sets fpr0, with a command to leave one out
  function drawCalibration() {
    if (!calib) { $('calibration').style.display = 'none'; return; }
    $('calibration-note').textContent = t('calibration_note').replace('{n}', calib.scores.length).replace('{mode}', t('mode_' + calib.mode)) +
      (calib.excluded ? t('calibration_excluded').replace('{k}', calib.excluded) : '');
    $('calibration-grid').innerHTML = calib.highest.map(function (h) {
      var name = String(h.file).split(/[\\/]/).pop();
      return '<div class="tile" title="' + esc(h.file) + '">' + (h.thumb ? '<img alt="" src="' + esc(url(h.thumb)) + '">' : '') +
        '<div class="cap">' + h.score.toFixed(3) + (h.above !== null && h.above !== undefined ? ' (+' + (100 * h.above).toFixed(1) + ' % ' + t(calib.measure === 'odds' ? 'above_next_odds' : 'above_next') + ')' : '') + '</div>' +
        '<div class="cap">' + esc(name) + '</div></div>';
    }).join('');
    var model = data.model.path || 'MODEL';
    var first = calib.highest[0];
    $('cmd-exclude').value = first ? 'kensa threshold --model ' + shq(model) + ' --exclude ' + shq(first.file) : '';
    $('cmd-exclude').parentNode.style.display = $('cmd-exclude').parentNode.previousElementSibling.style.display = first ? '' : 'none';
  }

  // per defect type (the folder under test/): found at this threshold, and the good images' false alarms
  function drawTypes() {
    var table = $('by-type');
    if (!labelled) { table.style.display = 'none'; return; }
    var groups = {};
    images.forEach(function (im) {
      if (im.label !== 0 && im.label !== 1) return;
      var k = im.label === 0 ? '' : (im.category || t('defective'));
      (groups[k] = groups[k] || { n: 0, above: 0 });
      groups[k].n++;
      if (im.score > threshold) groups[k].above++;
    });
    var keys = Object.keys(groups).filter(function (k) { return k !== ''; }).sort();
    var rows = keys.map(function (k) {
      var g = groups[k];
      return '<tr><th>' + esc(k) + '</th><td>' + g.above + ' / ' + g.n + '</td><td>' + (100 * g.above / g.n).toFixed(1) + ' %</td></tr>';
    });
    if (groups['']) rows.push('<tr><th>' + t('good') + '</th><td>' + groups[''].above + ' / ' + groups[''].n + '</td><td>' + t('false_alarms') + '</td></tr>');
    table.innerHTML = '<tr><th>' + t('type') + '</th><th>NG</th><th>' + t('recall') + '</th></tr>' + rows.join('');
  }

  var pending = false;
  function update() {
    pending = false;
    var c = counts(threshold);
    $('t-value').textContent = fmt(threshold);
    $('n-images').textContent = images.length;
    $('n-ng').textContent = c.ng;
    $('n-ok').textContent = c.ok;
    $('fpr').textContent = c.fpr === null ? 'n/a' : (100 * c.fpr).toFixed(1) + ' %';
    $('recall').textContent = c.recall === null ? 'n/a' : (100 * c.recall).toFixed(1) + ' %';
    drawTypes();
    drawReview();
    $('conf-tp').textContent = c.tp; $('conf-fn').textContent = c.fn; $('conf-fp').textContent = c.fp; $('conf-tn').textContent = c.tn;
    var line = document.getElementById('tline');
    if (line) { line.setAttribute('x1', xOf(threshold)); line.setAttribute('x2', xOf(threshold)); }
    tiles.forEach(function (d, i) {
      var ng = images[i].score > threshold;
      // a defective image judged OK is a miss, not a green OK; a good image judged NG a false alarm
      var missed = !ng && images[i].label === 1, alarm = ng && images[i].label === 0;
      d.className = 'tile ' + (ng ? 'ng' : 'ok') + (missed ? ' missed' : '') + (alarm ? ' false-alarm' : '');
      d.firstChild.textContent = missed ? t('missed') : alarm ? t('false_alarm') : ng ? 'NG' : 'OK';
      var m = d.querySelector('.mark');
      m.className = 'mark' + (review[i] ? ' on' : '');
      m.textContent = review[i] ? t(review[i] === 'good' ? 'marked_good' : 'marked_ng') : t(ng ? 'mark_good' : 'mark_ng');
    });
    var list = images.map(function (im, i) { return [im, i]; }).filter(function (p) { return p[0].score > threshold; });
    $('nglist').innerHTML = list.length ? list.map(function (p) {
      return '<li data-index="' + p[1] + '">' + p[0].score.toFixed(3) + '  ' + esc(p[0].file) + '</li>';
    }).join('') : '<p>' + t('none') + '</p>';
    var model = data.model.path || 'MODEL';
    var t4 = threshold.toFixed(4);
    var verb = 'kensa predict';
    $('cmd-predict').value = verb + ' --model ' + shq(model) + ' --threshold ' + t4 + ' --out RESULTS IMAGES...';
    $('cmd-store').value = 'kensa threshold --model ' + shq(model) + ' --set ' + t4;
    var ps = psq(model) !== shq(model);
    $('ps-rows').style.display = ps ? '' : 'none';
    $('cmd-predict-ps').value = verb + ' --model ' + psq(model) + ' --threshold ' + t4 + ' --out RESULTS IMAGES...';
    $('cmd-store-ps').value = 'kensa threshold --model ' + psq(model) + ' --set ' + t4;
  }
  $('nglist').onclick = function (e) { var li = e.target.closest('li'); if (li) openImage(Number(li.getAttribute('data-index'))); };
  slider.addEventListener('input', function () {
    threshold = Number(slider.value);
    if (!pending) { pending = true; requestAnimationFrame(update); }
  });
  $('reset').onclick = function () { threshold = marks.fpr0; slider.value = threshold; update(); };
  document.querySelectorAll('button[data-copy]').forEach(function (b) {
    b.onclick = function () {
      var input = $(b.getAttribute('data-copy'));
      input.select();
      var done = function () { b.textContent = t('copied'); setTimeout(function () { b.textContent = t('copy'); }, 1200); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand('copy'); done(); });
      else { document.execCommand('copy'); done(); }
    };
  });
  $('lang').onchange = function () { lang = $('lang').value; translate(); };
  if (!labelled) $('confusion').style.display = 'none';
  window.kensaReport = { counts: counts, setThreshold: function (v) { threshold = v; slider.value = v; update(); } };
  translate();
})();
`;
