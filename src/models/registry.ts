/** The methods kensa knows, by the name a model file stores (`meta.method`). */
import { unknownChoice } from '../util/errors.js';
import type { Method, MethodState } from './method.js';
import { classifier } from './classifier/method.js';
import { patchClassifier } from './classifier/patch-method.js';
import { ensemble } from './ensemble/method.js';
import { padim } from './padim/method.js';
import { patchcore } from './patchcore/method.js';

export const METHODS: readonly Method[] = [
  patchcore,
  padim,
  ensemble,
  classifier,
  patchClassifier,
] as unknown as readonly Method[];
export const METHOD_NAMES = METHODS.map((m) => m.name);
/** The methods kensa train fits on good images only. */
export const UNSUPERVISED_METHODS = METHODS.filter((m) => m.learning === 'unsupervised').map((m) => m.name);

export function getMethod(name: string): Method<MethodState> {
  const method = METHODS.find((m) => m.name === name);
  if (!method) throw unknownChoice('method', name, METHOD_NAMES);
  return method;
}
