/**
 * The language of what a person reads: help, summaries, figures' titles and axes. Japanese where
 * `--lang ja` says so or the locale does (LANG=ja_JP.UTF-8, LC_ALL, LC_MESSAGES), else English. The
 * library starts from the locale; the command line sets it from --lang before anything is printed.
 * (Error messages stay in English, so that they can be searched and reported as they are.)
 */
export type Language = 'en' | 'ja';
export const LANGUAGES: readonly Language[] = ['en', 'ja'];

/** The language the locale asks for. */
export function localeLanguage(env: NodeJS.ProcessEnv = process.env): Language {
  const locale = env.LC_ALL || env.LC_MESSAGES || env.LANG || '';
  return /^ja/i.test(locale) ? 'ja' : 'en';
}

let current: Language = localeLanguage();

export function setLanguage(language: Language): void {
  current = language;
}

export function language(): Language {
  return current;
}

/** The text in the current language. */
export const tr = (en: string, ja: string): string => (current === 'ja' ? ja : en);
