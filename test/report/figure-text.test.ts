/**
 * The figures' language: Japanese where the user reads it and the machine has a font that draws it
 * (figuresCanShowJapanese), else English — never a figure of boxes where kana and kanji should be.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { setLanguage } from '../../src/i18n.js';
import { figuresCanShowJapanese, figureText, japaneseFontFiles } from '../../src/report/figures.js';

const saved = process.env.KENSA_FIGURE_FONTS;
afterEach(() => {
  setLanguage('en');
  if (saved === undefined) delete process.env.KENSA_FIGURE_FONTS;
  else process.env.KENSA_FIGURE_FONTS = saved;
});

describe('figure text', () => {
  it('is Japanese only where the user reads Japanese and a Japanese font is there', () => {
    setLanguage('ja');
    process.env.KENSA_FIGURE_FONTS = 'ja';
    expect(figureText('Recall', '再現率')).toBe('再現率');
    process.env.KENSA_FIGURE_FONTS = 'none';
    expect(figureText('Recall', '再現率')).toBe('Recall');
    setLanguage('en');
    process.env.KENSA_FIGURE_FONTS = 'ja';
    expect(figureText('Recall', '再現率')).toBe('Recall');
  });

  it('follows what fontconfig lists for Japanese on Linux', () => {
    delete process.env.KENSA_FIGURE_FONTS;
    if (process.platform !== 'linux') {
      expect(figuresCanShowJapanese()).toBe(true);
      return;
    }
    const r = spawnSync('fc-list', [':lang=ja', 'family'], { encoding: 'utf8' });
    expect(figuresCanShowJapanese()).toBe(r.status === 0 && r.stdout.trim() !== '');
  });

  it('without fontconfig, looks for font files named for Japanese', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kensa-fonts-'));
    mkdirSync(join(dir, 'truetype', 'dejavu'), { recursive: true });
    writeFileSync(join(dir, 'truetype', 'dejavu', 'DejaVuSans.ttf'), '');
    expect(japaneseFontFiles([dir, join(dir, 'missing')])).toBe(false);
    mkdirSync(join(dir, 'opentype', 'noto'), { recursive: true });
    writeFileSync(join(dir, 'opentype', 'noto', 'NotoSansCJK-Regular.ttc'), '');
    expect(japaneseFontFiles([dir])).toBe(true);
  });
});
