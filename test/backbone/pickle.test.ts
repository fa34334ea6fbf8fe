import { describe, expect, it } from 'vitest';
import { unpickle } from '../../src/backbone/pickle.js';

const opts = {
  file: 'p.pkl',
  resolveGlobal: (m: string, n: string) => {
    throw new Error(`global ${m}.${n}`);
  },
  persistentLoad: (pid: unknown) => ({ pid }),
};
const bytes = (...parts: (number | string)[]) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : [p])));

describe('restricted unpickler', () => {
  it('builds dicts, lists, tuples, numbers and strings (protocol 2)', () => {
    // pickle.dumps({'a': [1, 300, -2, 1.5, None, True], 'b': ('x',)}, protocol=2)
    const data = Buffer.from(
      'gAJ9cQAoWAEAAABhcQFdcQIoSwFNLAFK/v///0c/+AAAAAAAAE6IZVgBAAAAYnEDWAEAAAB4cQSFcQV1Lg==',
      'base64',
    );
    const { value, end } = unpickle(data, 0, opts);
    expect(end).toBe(data.length);
    expect(value).toEqual(
      new Map<string, unknown>([
        ['a', [1, 300, -2, 1.5, null, true]],
        ['b', ['x']],
      ]),
    );
  });

  it('reads protocol 4 framing, memoize and big integers', () => {
    // pickle.dumps([2**70, -5, 'é'], protocol=4)
    const data = Buffer.from('gASVGgAAAAAAAABdlCiKCQAAAAAAAAAAQEr7////jALDqZRlLg==', 'base64');
    expect(unpickle(data, 0, opts).value).toEqual([2n ** 70n, -5, 'é']);
  });

  it('refuses opcodes that build arbitrary objects', () => {
    // NEWOBJ (0x81) after an empty tuple
    expect(() => unpickle(bytes(0x80, 2, 0x29, 0x29, 0x81, 0x2e), 0, opts)).toThrow(
      'p.pkl: refusing to load: pickle opcode 0x81 at byte 4 is not part of a PyTorch state_dict',
    );
  });

  it('stops at lengths that exceed the data instead of allocating them', () => {
    // BINUNICODE claiming 4 GB
    expect(() => unpickle(bytes(0x80, 2, 0x58, 0xff, 0xff, 0xff, 0xff, 'ab'), 0, opts)).toThrow(
      /a record needs 4294967295 bytes but 2 are left/,
    );
  });

  it('rejects REDUCE on anything that is not a whitelisted callable', () => {
    // a string "called" with a tuple
    expect(() => unpickle(bytes(0x80, 2, 0x55, 1, 'f', 0x29, 0x52, 0x2e), 0, opts)).toThrow(
      /REDUCE on something that is not a known callable/,
    );
  });

  it('passes GLOBAL names to the resolver', () => {
    expect(() => unpickle(bytes(0x80, 2, 'c', 'os\nsystem\n', 0x2e), 0, opts)).toThrow('global os.system');
  });
});
