/**
 * One error type for everything kensa refuses, and one helper that builds the messages.
 *
 * A message names the file (when there is one), says what is wrong and says what to do:
 *   "weights.pth: refusing to load: the file asks for posix.system. Pass a PyTorch state_dict ..."
 */

export type KensaErrorCode =
  | 'E_ARGUMENT'
  | 'E_FORMAT'
  | 'E_UNSAFE'
  | 'E_NOT_FOUND'
  | 'E_IO'
  | 'E_DOWNLOAD'
  | 'E_CHECKSUM'
  | 'E_SHAPE'
  | 'E_RUNTIME';

export class KensaError extends Error {
  readonly code: KensaErrorCode;
  readonly file?: string;

  constructor(code: KensaErrorCode, message: string, options: { file?: string; cause?: unknown } = {}) {
    super(options.file ? `${options.file}: ${message}` : message, { cause: options.cause });
    this.name = 'KensaError';
    this.code = code;
    this.file = options.file;
  }
}

/** Describes a received value for an "Expected ... but received ..." message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}' of type string`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return `${String(value)} of type ${typeof value}`;
}

/** "Expected <what> for <name> but received <value>", the one wording of every option check. */
export function invalidParameter(name: string, expected: string, value: unknown): KensaError {
  return new KensaError('E_ARGUMENT', `Expected ${expected} for ${name} but received ${describe(value)}`);
}

/** "Unknown <kind> 'x'; choose one of: a, b, c" */
export function unknownChoice(kind: string, value: string, choices: readonly string[]): KensaError {
  return new KensaError('E_ARGUMENT', `unknown ${kind} '${value}'; choose one of: ${choices.join(', ')}`);
}

export function assertInteger(
  name: string,
  value: unknown,
  min: number,
  max: number,
): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidParameter(name, `an integer between ${min} and ${max}`, value);
  }
}
