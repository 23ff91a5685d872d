// A `flowstate serve` of a test's own: a fresh demo database in a temp dir, a free loopback port, waited for
// through /healthz. For tests that change data (the cleanup), so they never disturb the shared server of
// global-setup.ts nor each other. Call `stop()` when done (it also removes the database).
//
// Every server of the browser tests is the built binary copied alone into an empty folder (global-setup.ts puts it
// there, `FLOWSTATE_E2E_BIN`), started with that empty folder as its working directory and no FLOWSTATE_SITE_ROOT:
// the site it serves can only be the one inside it.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface OwnServer {
  url: string;
  db: string;
  /// Runs `flowstate <args> --db <db> --json` against the same database and parses its output.
  cli: (args: string[]) => unknown;
  stop: () => Promise<void>;
}

export interface OwnServerOptions {
  runs?: number;
  seed?: number;
  /// Extra environment (e.g. FLOWSTATE_ADMIN_TOKEN).
  env?: Record<string, string>;
  /// Extra `serve` arguments (e.g. --read-only).
  args?: string[];
}

const root = path.resolve(__dirname, '..', '..');

/// The binary as built (`FLOWSTATE_BIN`, default target/debug/flowstate).
export const builtBinary = (): string =>
  process.env.FLOWSTATE_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug', 'flowstate');

/// The copy of the binary the servers run (see above); the built one when global-setup.ts has not run.
const binary = (): string => process.env.FLOWSTATE_E2E_BIN ?? builtBinary();

/// The environment of a server: this one's, without anything that would point it at a site on disk.
export function serverEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.FLOWSTATE_SITE_ROOT;
  return env;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/// Waits until `url`/healthz answers, and checks the server serves the site inside its binary.
export async function waitForHealth(url: string, exited: () => string | null, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const gone = exited();
    if (gone) throw new Error(`flowstate serve exited before it was ready: ${gone}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) {
        const health = (await res.json()) as { site?: string };
        if (health.site !== 'embedded') {
          throw new Error(`the server serves its site from ${health.site}, not from inside its binary: build it with scripts/build-site.sh`);
        }
        return;
      }
      last = `HTTP ${res.status}`;
    } catch (e) {
      if (String(e).includes('not from inside its binary')) throw e;
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`flowstate serve did not answer ${url}/healthz within ${timeoutMs} ms (last: ${last})`);
}

export async function startOwnServer(options: OwnServerOptions = {}): Promise<OwnServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowstate-e2e-own-'));
  const db = path.join(dir, 'own.db');
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'flowstate-e2e-cwd-'));
  const bin = binary();
  execFileSync(bin, ['demo', '--db', db, '--runs', String(options.runs ?? 300), '--seed', String(options.seed ?? 11)], {
    stdio: 'ignore',
  });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server: ChildProcess = spawn(bin, ['serve', '--db', db, '--bind', `127.0.0.1:${port}`, ...(options.args ?? [])], {
    stdio: ['ignore', 'ignore', 'inherit'],
    cwd,
    env: serverEnv({ FLOWSTATE_LOG: process.env.FLOWSTATE_LOG ?? 'error', ...(options.env ?? {}) }),
  });
  let exit: string | null = null;
  server.on('exit', (code, signal) => {
    exit = `code ${code}, signal ${signal}`;
  });
  await waitForHealth(url, () => exit, 30_000);
  return {
    url,
    db,
    cli: (args: string[]) => JSON.parse(execFileSync(bin, [...args, '--db', db, '--json'], { encoding: 'utf8' })),
    stop: async () => {
      if (exit === null) {
        const done = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await Promise.race([done, new Promise((r) => setTimeout(r, 5_000))]);
        if (exit === null) server.kill('SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(cwd, { recursive: true, force: true });
    },
  };
}
