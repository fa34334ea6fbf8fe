/**
 * The option table (src/options.ts) is the one description of every numeric option: the command line's
 * parsers and the library's checks come from it and say the same thing, and every numeric option of
 * every verb is one of its entries.
 */
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/program.js';
import { language, LANGUAGES, setLanguage } from '../src/i18n.js';
import { parserOf } from '../src/cli/options.js';
import { checkOption, expectation, OPTIONS, type OptionName, type OptionSpec } from '../src/options.js';

const names = Object.keys(OPTIONS) as OptionName[];

/** A value just outside the spec's range, below and above. */
const outside = (spec: OptionSpec) => [spec.min - (spec.kind === 'integer' ? 1 : 1e-9), spec.max + 1];

describe('the option table', () => {
  it.each(names)('%s: the command line and the library refuse the same values in the same words', (name) => {
    const spec: OptionSpec = OPTIONS[name];
    const parse = parserOf(spec);
    for (const v of outside(spec)) {
      expect(() => parse(String(v))).toThrow(
        `Expected ${expectation(spec)} for ${spec.flag} but received '${v}'`,
      );
      expect(() => checkOption(name, v)).toThrow(
        `Expected ${expectation(spec)} for ${name} but received ${v} of type number`,
      );
    }
    // the bounds themselves, unless they are open
    if (!spec.open?.min) expect(parse(String(spec.min))).toBe(spec.min);
    if (!spec.open?.max) expect(parse(String(spec.max))).toBe(spec.max);
    if (spec.kind === 'integer' && spec.max - spec.min >= 2)
      expect(() => parse(String(spec.min + 0.5))).toThrow(`for ${spec.flag}`);
    expect(() => parse('')).toThrow(`for ${spec.flag}`);
    if (spec.default !== undefined) expect(() => checkOption(name, spec.default)).not.toThrow();
  });

  it('every numeric option of every verb is parsed by the table', () => {
    const commands: Command[] = [];
    const walk = (c: Command) => {
      commands.push(c);
      c.commands.forEach(walk);
    };
    walk(buildProgram());
    const flags = new Set(Object.values(OPTIONS).map((s: OptionSpec) => s.flag));
    let numeric = 0;
    for (const c of commands) {
      for (const o of c.options as Option[]) {
        const flag = o.long ?? '';
        if (!flags.has(flag)) continue;
        numeric++;
        const spec = (Object.values(OPTIONS) as OptionSpec[]).find(
          (s) =>
            s.flag === flag &&
            (() => {
              try {
                o.parseArg!(String(s.max + 1), undefined);
                return false;
              } catch (error) {
                return (error as Error).message.includes(expectation(s));
              }
            })(),
        );
        expect(spec, `${c.name()} ${flag}`).toBeDefined();
      }
    }
    expect(numeric).toBeGreaterThan(30);
  });

  it("no option's help tells its default twice, in either language", () => {
    const saved = language();
    for (const lang of LANGUAGES) {
      setLanguage(lang);
      try {
        const texts: string[] = [];
        const walk = (c: Command) => {
          texts.push(c.helpInformation());
          c.commands.forEach(walk);
        };
        walk(buildProgram());
        const all = texts.join('\n').replace(/\s+/g, ' ');
        expect(all, lang).not.toMatch(/\((default|既定)[^()]*\) \(default: /);
        // an option without its own words for the default still shows commander's
        expect(all, lang).toContain('(default: 0)');
      } finally {
        setLanguage(saved);
      }
    }
  });
});
