import * as path from 'node:path';

import { expect, Page, test } from '@playwright/test';

import { OwnServer, startOwnServer } from '../support/own-server';

const base = () => {
  const url = process.env.FLOWSTATE_E2E_URL;
  if (!url) throw new Error('FLOWSTATE_E2E_URL is not set: run through playwright.config.ts (globalSetup)');
  return url;
};

/// What `flowstate stats --json` read from the same database before the server started.
const stats = (): { total_workflows: number; status_counts: Record<string, number> } =>
  JSON.parse(process.env.FLOWSTATE_E2E_STATS ?? '{}');

const jsOn = (info: { project: { use: { javaScriptEnabled?: boolean } } }) =>
  info.project.use.javaScriptEnabled !== false;

test('the overview shows the real figures', async ({ page }) => {
  await page.goto(`${base()}/`);
  await expect(page.getByRole('heading', { level: 1, name: 'Overview' })).toBeVisible();
  await expect(page).toHaveTitle('Overview · flowstate');

  const expected = stats();
  expect(expected.total_workflows).toBe(500);
  await expect(page.getByTestId('total')).toHaveAttribute('data-value', String(expected.total_workflows));
  await expect(page.getByTestId('total')).toHaveText('500');
  for (const status of ['running', 'paused', 'completed', 'failed', 'cancelled']) {
    const count = expected.status_counts[status] ?? 0;
    const row = page.locator(`li[data-status="${status}"]`);
    await expect(row.locator('.figure')).toHaveAttribute('data-value', String(count));
    await expect(row.getByRole('link')).toHaveAttribute('href', `/runs?status=${status}`);
  }
  await expect(page.getByText('Figures read at')).toBeVisible();
});

test('a status link opens the runs list filtered by that status', async ({ page }) => {
  await page.goto(`${base()}/`);
  const failed = stats().status_counts['failed'] ?? 0;
  await page.getByRole('link', { name: `${failed} failed runs` }).click();
  await expect(page).toHaveURL(/\/runs\?status=failed$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
  await expect(page.getByTestId('status-filter')).toHaveText('failed');
  await expect(page.getByRole('link', { name: 'Runs', exact: true })).toHaveAttribute('aria-current', 'page');
});

test('the theme toggle switches to dark and back', async ({ page }, info) => {
  await page.goto(`${base()}/`);
  const html = page.locator('html');
  await expect(html).not.toHaveAttribute('data-theme', /.*/);
  const toggle = page.getByRole('group', { name: 'Colour theme' });

  if (jsOn(info)) {
    // Hydrated: the click switches in place. A value set on the window survives only if no navigation happens.
    await expect(html).toHaveAttribute('data-hydrated', 'true');
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await toggle.getByRole('link', { name: 'Dark' }).click();
    await expect(html).toHaveAttribute('data-theme', 'dark');
    await expect(toggle.getByRole('link', { name: 'Dark' })).toHaveAttribute('aria-current', 'true');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
  } else {
    // No JavaScript: the link sets the cookie on the server and comes back to this page.
    await toggle.getByRole('link', { name: 'Dark' }).click();
    await expect(page).toHaveURL(`${base()}/`);
    await expect(html).toHaveAttribute('data-theme', 'dark');
  }

  // The choice is remembered (cookie) across a reload, rendered by the server.
  await page.reload();
  await expect(html).toHaveAttribute('data-theme', 'dark');

  await toggle.getByRole('link', { name: 'System' }).click();
  await expect(html).not.toHaveAttribute('data-theme', /.*/);
  await page.reload();
  await expect(html).not.toHaveAttribute('data-theme', /.*/);
});

test('the page hydrates only when JavaScript runs', async ({ page }, info) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${base()}/`);
  if (jsOn(info)) {
    await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
  } else {
    await expect(page.getByTestId('total')).toBeVisible();
    await expect(page.locator('html')).not.toHaveAttribute('data-hydrated', /.*/);
  }
  expect(errors, 'no errors in the console').toEqual([]);
});

test('an unknown address shows the 404 page', async ({ page }) => {
  const response = await page.goto(`${base()}/no/such/page`);
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1, name: /Not found/ })).toBeVisible();
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
});

// ---- Failures in the last 24 h, stuck runs, execution times, charts, auto-refresh (each on its own database) ----

type Run = { run_id: string; status: string; updated_at: string | null };
type RunsJson = { runs: Run[] };

let own: OwnServer | undefined;

test.afterEach(async () => {
  await own?.stop();
  own = undefined;
});

/// Waits until the page can be used: hydrated with JavaScript, loaded without.
async function ready(page: Page, on: boolean) {
  if (on) await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
}

/// The instant the page's figures were read.
async function readAt(page: Page): Promise<number> {
  return Date.parse((await page.getByTestId('read-at').getAttribute('datetime')) ?? '');
}

const figure = async (page: Page, id: string) => Number(await page.getByTestId(id).getAttribute('data-value'));

test('the overview shows failures and stuck runs of the last day, execution times and charts', async ({ page }, info) => {
  own = await startOwnServer({ runs: 400, seed: 5 });
  await page.goto(`${own.url}/`);
  await ready(page, jsOn(info));
  const at = await readAt(page);

  // What the CLI reads from the same database, counted at the page's instant.
  const failed = (own.cli(['failed', '--hours', '48', '--limit', '1000']) as RunsJson).runs.filter(
    (r) => r.updated_at !== null && Date.parse(r.updated_at) >= at - 24 * 3600_000,
  ).length;
  expect(failed, 'the demo has failures in the last 24 h').toBeGreaterThan(0);
  await expect(page.getByTestId('failed-24h')).toHaveAttribute('data-value', String(failed));
  const live = (own.cli(['runs', '--status', 'running,paused', '--limit', '1000']) as RunsJson).runs;
  const stuck = live.filter((r) => r.updated_at !== null && Date.parse(r.updated_at) < at - 3600_000);
  expect(await figure(page, 'stuck-count')).toBe(stuck.length);
  await expect(page.getByTestId('stuck-threshold')).toHaveText('1 h');
  if (stuck.length > 0) {
    const list = page.getByTestId('stuck-runs');
    await expect(list.getByRole('link')).toHaveCount(Math.min(stuck.length, 10));
  }
  for (const id of ['average-execution', 'p50', 'p95', 'p99']) {
    await expect(page.getByTestId(id)).toHaveText(/\d+(\.\d)? (ms|s)|min|h /);
  }

  // Three charts, each an image with a summary in words and its data in a table.
  await expect(page.getByRole('img', { name: /^Runs created per hour over the last 24 hours/ })).toBeVisible();
  await expect(page.getByRole('img', { name: /^Runs created per day over the last 30 days/ })).toBeVisible();
  await expect(page.getByRole('img', { name: /^Execution-time percentiles/ })).toBeVisible();
  const hourly = page.getByTestId('chart-hourly');
  await expect(hourly.getByRole('table')).toBeHidden();
  await hourly.getByText('The data as a table').click();
  await expect(hourly.getByRole('table')).toBeVisible();
  await expect(hourly.getByRole('table').locator('tbody tr')).toHaveCount(24);
  for (const status of ['running', 'paused', 'completed', 'failed', 'cancelled']) {
    await expect(page.locator('.chart-legend li', { hasText: status }).first()).toBeVisible();
  }

  // The failed figure opens the failures of the last 24 h.
  await page.getByRole('link', { name: `${failed} failed in the last 24 h: see the failures` }).click();
  await expect(page).toHaveURL(/\/failures\?window=24h$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Failures' })).toBeVisible();
  await expect(page.getByTestId('total-failed')).toHaveAttribute('data-value', String(failed));
});

test('the stuck threshold comes from the address and the form, and stuck runs open', async ({ page }, info) => {
  own = await startOwnServer({ runs: 400, seed: 5 });
  await page.goto(`${own.url}/?stuck=2h`);
  await ready(page, jsOn(info));
  await expect(page.getByTestId('stuck-threshold')).toHaveText('2 h');
  await expect(page.getByLabel('Stuck after')).toHaveValue('2h');

  await page.getByLabel('Stuck after').fill('10m');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/[?&]stuck=10m$/);
  await expect(page.getByTestId('stuck-threshold')).toHaveText('10 min');
  const at = await readAt(page);
  const live = (own.cli(['runs', '--status', 'running,paused', '--limit', '1000']) as RunsJson).runs;
  const stuck = live.filter((r) => r.updated_at !== null && Date.parse(r.updated_at) < at - 600_000);
  expect(await figure(page, 'stuck-count')).toBe(stuck.length);
  expect(stuck.length, 'the demo has runs idle for more than 10 minutes').toBeGreaterThan(0);

  const first = page.getByTestId('stuck-runs').getByRole('link').first();
  const id = (await first.textContent())?.trim() ?? '';
  await first.click();
  await expect(page).toHaveURL(new RegExp(`/runs/${id}$`));
  await expect(page.getByRole('heading', { level: 1 })).toContainText(id);

  const response = await page.goto(`${own.url}/?stuck=soon`);
  expect(response?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('“stuck”');
});

test('the overview refreshes itself every 10 s with JavaScript, and the refresh can be paused', async ({ page }, info) => {
  own = await startOwnServer({ runs: 200, seed: 3 });
  const control = page.getByRole('group', { name: 'Auto-refresh' });
  if (!jsOn(info)) {
    // Without JavaScript nothing refreshes and no control pretends to.
    await page.goto(`${own.url}/`);
    await expect(page.getByTestId('total')).toBeVisible();
    await expect(control).toHaveCount(0);
    return;
  }
  // The page's timers run on Playwright's clock, so ten seconds pass without waiting for them.
  await page.clock.install();
  const refreshes: number[] = [];
  page.on('response', (r) => {
    if (new URL(r.url()).pathname === '/api/overview') refreshes.push(r.status());
  });
  await page.goto(`${own.url}/`);
  await ready(page, true);
  const state = page.getByTestId('refresh-state');
  await expect(state).toHaveText('Auto-refresh on: every 10 s');
  await expect(control.getByRole('button', { name: 'Pause auto-refresh' })).toBeVisible();
  await page.clock.pauseAt(new Date(Date.now() + 2_000));

  // Ten seconds later the figures are read again through the overview server function.
  const first = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/overview');
  await page.clock.runFor(10_000);
  expect((await first).status()).toBe(200);
  await expect(state).toHaveText('Auto-refresh on: every 10 s');

  // Paused: a minute passes without a single call.
  await control.getByRole('button', { name: 'Pause auto-refresh' }).click();
  await expect(state).toHaveText('Auto-refresh paused');
  await expect(state).toHaveAttribute('data-paused', 'true');
  await page.clock.runFor(60_000);

  // Resumed: the next call comes, and it is only the second one (events arrive in order, so a call made while
  // paused would have been counted before it).
  await control.getByRole('button', { name: 'Resume auto-refresh' }).click();
  await expect(state).toHaveAttribute('data-paused', 'false');
  const second = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/overview');
  await page.clock.runFor(10_000);
  await second;
  expect(refreshes, 'one refresh before the pause, none during it, one after').toEqual([200, 200]);
  await expect(page.getByTestId('total')).toHaveAttribute('data-value', '200');
});

test('screenshots of the overview, light and dark', async ({ page }, info) => {
  test.skip(!jsOn(info), 'one set of screenshots is enough (the pages are the same without JavaScript)');
  own = await startOwnServer({ runs: 1000, seed: 42 });
  for (const theme of ['light', 'dark']) {
    await page.context().addCookies([{ name: 'flowstate_theme', value: theme, url: own.url }]);
    await page.goto(`${own.url}/`);
    await ready(page, true);
    await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
    await page.getByRole('button', { name: 'Pause auto-refresh' }).click();
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', `overview-${theme}.png`), fullPage: true });
  }
});
