// Starts the built `flowstate` binary on its own fresh database (demo runs written by `flowstate demo`), on a
// free loopback port, and waits until /healthz answers. Tests find the server through FLOWSTATE_E2E_URL and the
// figures the CLI reads from the same database through FLOWSTATE_E2E_STATS.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { freePort, waitForHealth } from './support/own-server';

const DEMO_RUNS = 500;

export default async function globalSetup(): Promise<() => Promise<void>> {
  const root = path.resolve(__dirname, '..');
  const bin = process.env.FLOWSTATE_BIN ?? path.join(root, 'target', 'debug', 'flowstate');
  if (!fs.existsSync(bin)) {
    throw new Error(`${bin} does not exist: run scripts/build-site.sh first`);
  }
  if (!fs.existsSync(path.join(root, 'target', 'site', 'pkg', 'flowstate_bg.wasm'))) {
    throw new Error('target/site/pkg has no wasm bundle: run scripts/build-site.sh first');
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowstate-e2e-'));
  const db = path.join(dir, 'e2e.db');
  execFileSync(bin, ['demo', '--db', db, '--runs', String(DEMO_RUNS), '--seed', '7'], { stdio: 'inherit' });
  const stats = execFileSync(bin, ['stats', '--db', db, '--json'], { encoding: 'utf8' });

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = spawn(bin, ['serve', '--db', db, '--bind', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, FLOWSTATE_LOG: process.env.FLOWSTATE_LOG ?? 'warn' },
  });
  let exit: string | null = null;
  server.on('exit', (code, signal) => {
    exit = `code ${code}, signal ${signal}`;
  });
  await waitForHealth(url, () => exit, 30_000);

  process.env.FLOWSTATE_E2E_URL = url;
  process.env.FLOWSTATE_E2E_STATS = stats;

  return async () => {
    if (exit === null) {
      const done = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 5_000))]);
      if (exit === null) server.kill('SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
}
