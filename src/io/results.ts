/** Result files: CSV (RFC 4180 quoting) and JSON, each written atomically. */
import { writeFileAtomic } from './atomic.js';

type Cell = string | number | boolean | null | undefined;

const quote = (v: Cell): string => {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? String(Number.isInteger(v) ? v : Number(v.toPrecision(8))) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function toCsv(header: string[], rows: Cell[][]): string {
  return [header, ...rows].map((r) => r.map(quote).join(',')).join('\n') + '\n';
}

export async function writeCsv(path: string, header: string[], rows: Cell[][]): Promise<void> {
  await writeFileAtomic(path, toCsv(header, rows));
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
