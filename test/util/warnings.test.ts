/** Warnings said once per kind: the text without the file it names and without its numbers. */
import { describe, expect, it } from 'vitest';
import { setLanguage } from '../../src/i18n.js';
import { groupWarnings, warningKind } from '../../src/util/warnings.js';

describe('warnings by kind', () => {
  it('a kind is the text without its file and numbers', () => {
    expect(
      warningKind(
        '/d/ground_truth/crack/001_mask.png: the mask is not binary (312 pixels neither 0 nor 255)',
      ),
    ).toBe('the mask is not binary (# pixels neither # nor #)');
    expect(warningKind('drift: 30 of 30 images above 2.5')).toBe('drift: # of # images above #');
  });

  it('25 masks that are not binary give one line and a count; other kinds stay', () => {
    const masks = Array.from(
      { length: 25 },
      (_, i) => `/d/gt/c/${i}_mask.png: the mask is not binary (${i + 3} pixels neither 0 nor 255)`,
    );
    const lines = groupWarnings([...masks, '/d/test/x.png: left out: cannot decode the image']);
    expect(lines).toEqual([
      masks[0],
      '/d/test/x.png: left out: cannot decode the image',
      '24 more like that (the mask is not binary (3 pixels neither 0 nor 255))',
    ]);
    // in Japanese a number can be part of a word (2 値: binary): the first one's words are shown as they are
    setLanguage('ja');
    try {
      const ja = Array.from(
        { length: 3 },
        (_, i) => `/d/gt/${i}.png: マスクが 2 値ではありません（${i + 1} 個）`,
      );
      expect(groupWarnings(ja)).toEqual([
        ja[0],
        '同じ種類がほかに 2 件（マスクが 2 値ではありません（1 個））',
      ]);
    } finally {
      setLanguage('en');
    }
  });
});
