// The site the browser loads comes from inside the binary: the server under test is the built binary copied alone
// into an empty folder (global-setup.ts), and what it serves is, byte for byte, what scripts/build-site.sh built,
// compressed on the wire for a browser that accepts it.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { expect, test } from '@playwright/test';

import { builtBinary } from '../support/own-server';

const base = () => {
  const url = process.env.FLOWSTATE_E2E_URL;
  if (!url) throw new Error('FLOWSTATE_E2E_URL is not set: run through playwright.config.ts (globalSetup)');
  return url;
};

const site = path.resolve(__dirname, '..', '..', 'target', 'site');

test('the binary alone in an empty folder serves the site it was built with', async ({ request }) => {
  const bin = process.env.FLOWSTATE_E2E_BIN ?? '';
  expect(bin, 'the servers run a copy of the binary').not.toBe('');
  expect(path.resolve(bin)).not.toBe(path.resolve(builtBinary()));
  expect(fs.readdirSync(path.dirname(bin)), 'nothing beside the copy').toEqual(['flowstate']);

  const health = await (await request.get(`${base()}/healthz`)).json();
  expect(health.site).toBe('embedded');

  for (const file of ['pkg/flowstate_bg.wasm', 'pkg/flowstate.js', 'pkg/flowstate.css', 'favicon.svg']) {
    const built = fs.readFileSync(path.join(site, file));
    // Plain, as asked.
    const plain = await request.get(`${base()}/${file}`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.status(), file).toBe(200);
    expect(plain.headers()['content-encoding'], file).toBeUndefined();
    expect(Buffer.compare(await plain.body(), built), `${file}: the bytes served equal the built file`).toBe(0);
    // Compressed with gzip: Playwright's request decompresses it; the bytes are the built file's again.
    const gzip = await request.get(`${base()}/${file}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(gzip.status(), file).toBe(200);
    if (built.length > 1024) expect(gzip.headers()['content-encoding'], file).toBe('gzip');
    expect(Buffer.compare(await gzip.body(), built), `${file}: gzip decompresses to the built file`).toBe(0);
  }
});

test('the page loads the embedded bundle, brotli-compressed, and hydrates', async ({ page }, info) => {
  test.skip(info.project.use.javaScriptEnabled === false, 'hydration needs JavaScript');
  const wasm = page.waitForResponse((r) => r.url().endsWith('/pkg/flowstate_bg.wasm'));
  await page.goto(`${base()}/`);
  const response = await wasm;
  expect(response.status()).toBe(200);
  // Chromium accepts br: the copy compressed when the binary was built.
  expect((await response.allHeaders())['content-encoding']).toBe('br');
  // The browser ran what it got: the page hydrated. The bytes are compared through Playwright's own request with
  // the same `br` (decompressed by it): Chromium's inspector keeps a response body only up to a size, and the
  // debug wasm (~16 MB) is past it, so `response.body()` of the page's own load can be evicted.
  await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
  const built = fs.readFileSync(path.join(site, 'pkg', 'flowstate_bg.wasm'));
  const again = await page.request.get(response.url(), { headers: { 'accept-encoding': 'br' } });
  expect(again.headers()['content-encoding']).toBe('br');
  expect(Buffer.compare(await again.body(), built), 'the br copy decompresses to the built wasm').toBe(0);
});
