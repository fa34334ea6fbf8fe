/** kensa serve from the command line (built dist/), for the service's tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;

export const kensa = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
};

export interface Server {
  child: ChildProcess;
  url: string;
  log: () => string;
  exit: Promise<number | null>;
}

/** Starts `kensa serve --model MODEL --port 0 …` and waits until it says it is ready. */
export async function serve(model: string, ...args: string[]): Promise<Server> {
  const child = spawn(process.execPath, [BIN, 'serve', '--model', model, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m && log.includes('ready:')) {
        clearInterval(timer);
        resolve(m[1]);
      }
      if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`kensa serve exited ${child.exitCode}: ${log}`));
      }
    }, 50);
  });
  return { child, url, log: () => log, exit };
}

export const post = (url: string, body: BodyInit | undefined, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', body, headers });
