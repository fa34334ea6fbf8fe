/** kensa's version (package.json's), recorded in every model and export and printed by kensa --version. */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
export const KENSA_VERSION = pkg.version;
