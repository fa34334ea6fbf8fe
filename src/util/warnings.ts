/**
 * Warnings said once per kind: 25 masks that are not binary give one line and a count, not 25 lines.
 * The kind of a warning is its text without the file it names and without its numbers.
 */
import { tr } from '../i18n.js';

/** A warning's text without a leading "path: ". */
function withoutFile(message: string): string {
  const colon = message.indexOf(': ');
  const head = colon > 0 ? message.slice(0, colon) : '';
  return /[\\/]|\.\w{2,5}$/.test(head) ? message.slice(colon + 2) : message;
}

/** A warning's kind: its text without a leading "path: " and with every number as '#'. */
export function warningKind(message: string): string {
  return withoutFile(message).replace(/\d+(\.\d+)?/g, '#');
}

/** Collects warnings: `add` says whether one is the first of its kind; `summary` counts the others. */
export class WarningGroups {
  private readonly kinds = new Map<string, { first: string; more: number }>();

  add(message: string): boolean {
    const kind = warningKind(message);
    const seen = this.kinds.get(kind);
    if (seen) {
      seen.more++;
      return false;
    }
    this.kinds.set(kind, { first: message, more: 0 });
    return true;
  }

  /** One line per kind that came more than once, and forgets them. */
  summary(): string[] {
    const out: string[] = [];
    for (const { first, more } of this.kinds.values()) {
      if (!more) continue;
      // the first one's words without its file: numbers stay, since 'N' reads wrongly where a number is
      // part of a word (2 値, "binary")
      const what = withoutFile(first);
      const short = what.length > 80 ? `${what.slice(0, 77)}...` : what;
      out.push(tr(`${more} more like that (${short})`, `同じ種類がほかに ${more} 件（${short}）`));
    }
    this.kinds.clear();
    return out;
  }
}

/** A list of warnings with each kind said once, followed by how many more of it there were. */
export function groupWarnings(messages: readonly string[]): string[] {
  const groups = new WarningGroups();
  const firsts = messages.filter((m) => groups.add(m));
  return [...firsts, ...groups.summary()];
}
