/** Result files: CSV (RFC 4180 quoting) and JSON, each written atomically. */
import { writeFileAtomic } from './atomic.js';

type Cell = string | number | boolean | null | undefined;

const quote = (v: Cell): string => {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? String(Number.isInteger(v) ? v : Number(v.toPrecision(8))) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export type { Cell };

/** CSV lines of rows, each ending in a line break (to append to a file that has its header). */
export function csvLines(rows: Cell[][]): string {
  return rows.map((r) => r.map(quote).join(',') + '\n').join('');
}

export function toCsv(header: string[], rows: Cell[][]): string {
  return csvLines([header, ...rows]);
}

export async function writeCsv(path: string, header: string[], rows: Cell[][]): Promise<void> {
  await writeFileAtomic(path, toCsv(header, rows));
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
