/**
 * Results per defect type (metrics.json's by_type, the console lines of kensa test): what each threshold
 * finds of each type, which images the verdicts' threshold misses, and the good images' false alarms.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { setLanguage } from '../../../src/i18n.js';
import { REASONS_JA, typeLines } from '../../../src/cli/test.js';
import { byType, type TestMetrics } from '../../../src/pipeline/verbs/test.js';

const p = (file: string, category: string, label: 0 | 1, score: number) => ({ file, category, label, score });
const predictions = [
  p('/d/test/crack/1.png', 'crack', 1, 9),
  p('/d/test/crack/2.png', 'crack', 1, 4),
  p('/d/test/crack/3.png', 'crack', 1, 2),
  p('/d/test/blowhole/1.png', 'blowhole', 1, 7),
  p('/d/test/good/1.png', 'good', 0, 1),
  p('/d/test/good/2.png', 'good', 0, 5),
];

describe('results per defect type', () => {
  beforeAll(() => setLanguage('en'));
  it('counts each type at each threshold and names what the verdicts’ threshold gets wrong', () => {
    const r = byType(predictions, { fpr0: 4.5, f1: 3, quantile: undefined }, 4.5);
    expect(Object.keys(r)).toEqual(['blowhole', 'crack', 'good']);
    expect(r.crack).toEqual({
      images: 3,
      above: { fpr0: 1, f1: 2 },
      share: { fpr0: 1 / 3, f1: 2 / 3 },
      wrong: ['/d/test/crack/2.png', '/d/test/crack/3.png'],
    });
    expect(r.blowhole.wrong).toEqual([]);
    // the good images: false alarms
    expect(r.good).toMatchObject({ images: 2, above: { fpr0: 1, f1: 1 }, wrong: ['/d/test/good/2.png'] });
  });

  it('says it in one line per type', () => {
    const m = { threshold: { name: 'fpr0', value: 4.5 }, by_type: byType(predictions, { fpr0: 4.5 }, 4.5) };
    expect(typeLines(m as unknown as TestMetrics, 1)).toEqual([
      'blowhole: 1 of 1 found at fpr0',
      'crack: 1 of 3 found at fpr0, 2 missed: 2.png and 1 more',
      'good: 1 false alarm of 2 at fpr0: 2.png',
    ]);
    setLanguage('ja');
    try {
      expect(typeLines(m as unknown as TestMetrics, 1)[1]).toBe(
        'crack: fpr0 で 3 枚中 1 枚を検出、見逃し 2 枚: 2.png ほか 1 枚',
      );
    } finally {
      setLanguage('en');
    }
  });

  it('every reason a metric can be undefined for has Japanese words for the summary', () => {
    const sources = [
      'metrics/classification.ts',
      'metrics/aupro.ts',
      'metrics/pixel-stream.ts',
      'pipeline/verbs/test.ts',
    ]
      .map((f) => readFileSync(new URL(`../../../src/${f}`, import.meta.url), 'utf8'))
      .join('\n');
    const reasons = new Set(
      [
        ...sources.matchAll(/(?:reason(?:s\.\w+)?(?: = reasons\.\w+)?\s*[:=]|\?)\s*'((?:no|only) [^']+)'/g),
      ].map((m) => m[1]),
    );
    expect(reasons.size).toBeGreaterThanOrEqual(6);
    for (const r of reasons) expect(REASONS_JA[r], r).toBeDefined();
  });
});
