/**
 * The HTML report: one self-contained report.html in the results folder (inline script and styles; the
 * pictures are the files beside it), which works from file:// with no server and no internet.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readResultsFile, type ResultsFile } from './results-file.js';
import { SCRIPT, STYLES } from './client.js';

export const REPORT_FILE = 'report.html';
/** A classifier's learning curves (loss and accuracy per epoch), shown with the ROC and PR curves. */
export const LEARNING_CURVES = 'learning_curves.png';

/** JSON that can sit inside a <script> element. */
const embed = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

export function reportHtml(
  results: ResultsFile,
  extras: { roc?: boolean; pr?: boolean; learning?: boolean } = {},
): string {
  const curves = [
    extras.roc ? '<img src="roc.png" alt="ROC">' : '',
    extras.pr ? '<img src="pr.png" alt="PR">' : '',
    extras.learning ? `<img src="${LEARNING_CURVES}" alt="learning curves">` : '',
  ].join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kensa report</title>
<style>${STYLES}</style>
</head>
<body>
<header><h1><span data-i18n="title"></span> — <span id="kind"></span></h1>
<label><span data-i18n="language"></span> <select id="lang"><option value="en">English</option><option value="ja">日本語</option></select></label></header>
<main>
<section id="summary"><h2 data-i18n="summary"></h2>
<div class="cards">
<div class="card"><b id="n-images"></b><span data-i18n="images"></span></div>
<div class="card"><b id="n-ng" style="color:var(--ng)"></b><span data-i18n="ng"></span></div>
<div class="card"><b id="n-ok" style="color:var(--ok)"></b><span data-i18n="ok"></span></div>
</div>
<div class="cards" id="metrics" style="margin-top:10px"></div>
${curves ? `<div class="curves" style="margin-top:10px">${curves}</div>` : ''}
</section>
<section id="threshold"><h2 data-i18n="threshold"></h2>
<svg id="hist" viewBox="0 -2 1000 164" preserveAspectRatio="none"></svg>
<div id="legend" class="legend"></div>
<input type="range" id="slider">
<div class="readout">
<div><span data-i18n="threshold"></span>: <b id="t-value"></b></div>
<div><span data-i18n="fpr"></span>: <b id="fpr"></b></div>
<div><span data-i18n="recall"></span>: <b id="recall"></b></div>
<button id="reset" data-i18n="reset"></button>
</div>
<table class="conf" id="confusion">
<tr><th></th><th><span data-i18n="predicted"></span> NG</th><th><span data-i18n="predicted"></span> OK</th></tr>
<tr><th><span data-i18n="actual"></span>: <span data-i18n="defective"></span></th><td id="conf-tp"></td><td id="conf-fn"></td></tr>
<tr><th><span data-i18n="actual"></span>: <span data-i18n="good"></span></th><td id="conf-fp"></td><td id="conf-tn"></td></tr>
</table>
<table class="conf" id="by-type" style="margin-top:10px"></table>
<div class="row"><span data-i18n="use_predict"></span></div>
<div class="row"><input class="cmd" id="cmd-predict" readonly><button data-copy="cmd-predict" data-i18n="copy"></button></div>
<div class="row"><span data-i18n="store_model"></span></div>
<div class="row"><input class="cmd" id="cmd-store" readonly><button data-copy="cmd-store" data-i18n="copy"></button></div>
<div id="ps-rows"><div class="row"><span data-i18n="powershell"></span></div>
<div class="row"><input class="cmd" id="cmd-predict-ps" readonly><button data-copy="cmd-predict-ps" data-i18n="copy"></button></div>
<div class="row"><input class="cmd" id="cmd-store-ps" readonly><button data-copy="cmd-store-ps" data-i18n="copy"></button></div></div>
</section>
<section id="calibration"><h2 data-i18n="calibration"></h2>
<p class="note" id="calibration-note"></p>
<div id="calibration-grid"></div>
<div class="row"><span data-i18n="exclude_hint"></span></div>
<div class="row"><input class="cmd" id="cmd-exclude" readonly><button data-copy="cmd-exclude" data-i18n="copy"></button></div>
</section>
<section id="review"><h2 data-i18n="review"></h2><p class="note" id="review-note"></p>
<textarea id="review-list" readonly rows="4" style="width:100%;font-family:monospace"></textarea>
<div id="update-rows"><div class="row"><span data-i18n="review_update"></span></div>
<div class="row"><input class="cmd" id="cmd-update" readonly><button data-copy="cmd-update" data-i18n="copy"></button></div>
<div class="row"><input class="cmd" id="cmd-update-ps" readonly><button data-copy="cmd-update-ps" data-i18n="copy"></button></div></div>
<div class="row"><span id="review-copy-note"></span></div>
<div class="row"><input class="cmd" id="cmd-review" readonly><button data-copy="cmd-review" data-i18n="copy"></button></div>
<div class="row"><input class="cmd" id="cmd-review-ps" readonly><button data-copy="cmd-review-ps" data-i18n="copy"></button></div>
<div class="row"><a id="review-file" download="review.txt" data-i18n="review_file"></a></div>
</section>
<section><h2 data-i18n="nglist"></h2><ol id="nglist"></ol></section>
<section><h2 data-i18n="grid"></h2><div id="grid"></div></section>
</main>
<div id="modal"><img id="modal-img" alt=""><p id="modal-caption"></p><p data-i18n="close"></p></div>
<script id="kensa-data" type="application/json">${embed(results)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** Writes RESULTS/report.html from RESULTS/results.json; returns its path. */
export async function writeReport(dir: string): Promise<string> {
  const results = await readResultsFile(dir);
  const path = join(dir, REPORT_FILE);
  await writeFileAtomic(
    path,
    reportHtml(results, {
      roc: existsSync(join(dir, 'roc.png')),
      pr: existsSync(join(dir, 'pr.png')),
      learning: existsSync(join(dir, LEARNING_CURVES)),
    }),
  );
  return path;
}
