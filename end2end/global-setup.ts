// Copies the built `flowstate` binary alone into an empty folder (FLOWSTATE_E2E_BIN: every server of the tests runs
// that copy, from an empty working directory, so the site it serves can only be the one inside it), starts it on its
// own fresh database (demo runs written by `flowstate demo`), on a free loopback port, and waits until /healthz
// answers and says the site is embedded. Tests find the server through FLOWSTATE_E2E_URL and the figures the CLI
// reads from the same database through FLOWSTATE_E2E_STATS.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { builtBinary, freePort, serverEnv, waitForHealth } from './support/own-server';

const DEMO_RUNS = 500;

export default async function globalSetup(): Promise<() => Promise<void>> {
  const built = builtBinary();
  if (!fs.existsSync(built)) {
    throw new Error(`${built} does not exist: run scripts/build-site.sh first`);
  }

  const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowstate-e2e-bin-'));
  const bin = path.join(binDir, 'flowstate');
  fs.copyFileSync(built, bin);
  fs.chmodSync(bin, 0o755);
  process.env.FLOWSTATE_E2E_BIN = bin;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowstate-e2e-'));
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'flowstate-e2e-cwd-'));
  const db = path.join(dir, 'e2e.db');
  execFileSync(bin, ['demo', '--db', db, '--runs', String(DEMO_RUNS), '--seed', '7'], { stdio: 'inherit' });
  const stats = execFileSync(bin, ['stats', '--db', db, '--json'], { encoding: 'utf8' });

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = spawn(bin, ['serve', '--db', db, '--bind', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
    cwd,
    env: serverEnv({ FLOWSTATE_LOG: process.env.FLOWSTATE_LOG ?? 'warn' }),
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
    for (const d of [dir, cwd, binDir]) fs.rmSync(d, { recursive: true, force: true });
  };
}
