/**
 * What SIGTERM and SIGINT do. By default (main.ts) they remove temporary files and exit at once; a verb
 * that runs until stopped (kensa serve) sets a graceful stop instead: the first signal starts it, a second
 * one exits at once.
 */
let graceful: ((signal: NodeJS.Signals) => void) | undefined;

export function setGracefulStop(stop: ((signal: NodeJS.Signals) => void) | undefined): void {
  graceful = stop;
}

/** Runs the graceful stop if one is set (once); true when it took the signal. */
export function takeSignal(signal: NodeJS.Signals): boolean {
  const stop = graceful;
  if (!stop || signal === 'SIGHUP') return false;
  graceful = undefined;
  stop(signal);
  return true;
}
