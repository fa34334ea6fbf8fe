/**
 * A restricted unpickler: just enough of Python's pickle (protocols 0-5) to read PyTorch state_dict files.
 *
 * It builds plain values (null, booleans, numbers, strings, bytes, arrays for lists and tuples, Maps for
 * dicts) and never executes anything from the file. A GLOBAL opcode is resolved through `resolveGlobal`,
 * which knows a short whitelist; anything else is refused with an error that names the global, e.g.
 * "refusing to load: the file asks for posix.system". REDUCE only calls the JavaScript functions the
 * whitelist returned. Every length read from the file is checked against the bytes left before use.
 */
import { KensaError } from '../util/errors.js';

/** A whitelisted Python callable, implemented in JavaScript. */
export interface PyCallable {
  readonly kind: 'callable';
  readonly qualname: string;
  call(args: unknown[]): unknown;
}

export interface UnpickleOptions {
  file: string;
  /** Returns the value a GLOBAL stands for, or throws (refusal). */
  resolveGlobal(module: string, name: string): unknown;
  /** Resolves a persistent id (BINPERSID); PyTorch uses it for tensor storages. */
  persistentLoad(pid: unknown): unknown;
}

export function isCallable(v: unknown): v is PyCallable {
  return typeof v === 'object' && v !== null && (v as PyCallable).kind === 'callable';
}

/**
 * Unpickles one object starting at `offset`. Returns the value and the offset just after its STOP opcode
 * (legacy PyTorch files hold several pickles back to back).
 */
export function unpickle(
  bytes: Uint8Array,
  offset: number,
  options: UnpickleOptions,
): { value: unknown; end: number } {
  const { file } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = offset;
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');

  const bad = (message: string): never => {
    throw new KensaError(
      'E_FORMAT',
      `not a readable PyTorch checkpoint: ${message} at byte ${pos}. The file may be truncated or not a checkpoint`,
      { file },
    );
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > bytes.length) bad(`a record needs ${n} bytes but ${bytes.length - pos} are left`);
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) bad(`a length of ${v} bytes exceeds the file`);
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) bad('a text record has no end of line');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]))
      bad('the stack is empty');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) bad('the stack is empty');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) bad('a MARK is missing');
    return stack.splice(m as number);
  };
  const decodeLong = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Map)) bad('SETITEM on something that is not a dict');
    if (items.length % 2) bad('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (target as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target)) bad('APPEND on something that is not a list');
    (target as unknown[]).push(...items);
  };
  const decodeUtf8 = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return bad('a string is not valid UTF-8');
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) bad('unknown pickle protocol');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) bad('the pickle ends with an unbalanced stack');
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x49: {
        // INT (text)
        const s = line();
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else if (/^-?\d+$/.test(s)) stack.push(Number(s));
        else bad('an INT record is not a number');
        break;
      }
      case 0x8a: // LONG1
        stack.push(decodeLong(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        stack.push(decodeLong(take(n)));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(decodeUtf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(decodeUtf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(decodeUtf8(take(u64())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1.decode(take(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64()).slice());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x64: {
        // DICT
        const m = new Map();
        setItems(m, popMark());
        stack.push(m);
        break;
      }
      case 0x6c: // LIST
      case 0x74: // TUPLE
      case 0x91: // FROZENSET
        stack.push(op === 0x91 ? new Set(popMark()) : popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: // APPEND
        appendItems(top(), [pop()]);
        break;
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) bad('ADDITEMS on something that is not a set');
        for (const it of items) (s as Set<unknown>).add(it);
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: {
        // PUT (text)
        const k = Number(line());
        memo.set(k, top());
        break;
      }
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET (text)
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) bad(`memo entry ${k} is missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(options.resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL needs two strings');
        stack.push(options.resolveGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!isCallable(fn)) bad('REDUCE on something that is not a known callable');
        if (!Array.isArray(args)) bad('REDUCE arguments are not a tuple');
        stack.push((fn as PyCallable).call(args as unknown[]));
        break;
      }
      case 0x62: {
        // BUILD: sets an object's state. State dicts carry only `_metadata` here, which kensa does not need.
        pop();
        top();
        break;
      }
      case 0x51: // BINPERSID
        stack.push(options.persistentLoad(pop()));
        break;
      case 0x50: // PERSID (text)
        stack.push(options.persistentLoad(line()));
        break;
      default:
        throw new KensaError(
          'E_UNSAFE',
          `refusing to load: pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${pos - 1} is not part of a PyTorch state_dict`,
          { file },
        );
    }
  }
}
