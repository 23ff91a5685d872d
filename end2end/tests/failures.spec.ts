// Failure triage in a real browser, JavaScript on and off: failures of a window grouped by error signature (the
// counts add up to what the CLI finds), the window selector, a group's drill-down and its runs, the failure rate
// per pipeline, a bad window refused with a 400. Each test serves a database of its own.
import * as path from 'node:path';

import { expect, Page, test } from '@playwright/test';

import { OwnServer, startOwnServer } from '../support/own-server';

type Run = { run_id: string; status: string; updated_at: string | null };
type RunsJson = { runs: Run[] };

const jsOn = (info: { project: { use: { javaScriptEnabled?: boolean } } }) =>
  info.project.use.javaScriptEnabled !== false;

let server: OwnServer;

test.afterEach(async () => {
  await server?.stop();
});

async function ready(page: Page, on: boolean) {
  if (on) await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
}

/// Failed runs (by last update) within `hours` before the instant the page read its figures, as the CLI sees them.
async function failedWithin(page: Page, hours: number): Promise<Run[]> {
  const readAt = Date.parse((await page.locator('.read-at time').getAttribute('datetime')) ?? '');
  const runs = (server.cli(['failed', '--hours', String(hours + 1), '--limit', '1000']) as RunsJson).runs;
  return runs.filter((r) => r.updated_at !== null && Date.parse(r.updated_at) >= readAt - hours * 3600_000);
}

/// The groups on the page: their keys and counts.
async function groups(page: Page): Promise<{ key: string; count: number }[]> {
  return page.locator('[data-group]').evaluateAll((els) =>
    els.map((e) => ({ key: e.getAttribute('data-group') ?? '', count: Number(e.getAttribute('data-count')) })),
  );
}

test('failures of the last 24 h are grouped by error and the counts add up', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 21 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${server.url}/failures`);
  await ready(page, jsOn(info));
  await expect(page.getByRole('heading', { level: 1, name: 'Failures' })).toBeVisible();
  await expect(page).toHaveTitle('Failures · flowstate');
  const picker = page.getByRole('navigation', { name: 'Time window' });
  await expect(picker.getByRole('link', { name: 'Last 24 h' })).toHaveAttribute('aria-current', 'page');

  const failed = await failedWithin(page, 24);
  expect(failed.length, 'the demo has failures in the last 24 h').toBeGreaterThan(0);
  await expect(page.getByTestId('total-failed')).toHaveAttribute('data-value', String(failed.length));
  const found = await groups(page);
  expect(found.reduce((n, g) => n + g.count, 0)).toBe(failed.length);
  // Largest first; each group shows its signature, an example, pipelines, first and last seen, sample runs.
  expect(found.map((g) => g.count)).toEqual([...found.map((g) => g.count)].sort((a, b) => b - a));
  const first = page.locator('.failure-group').first();
  await expect(first.getByRole('heading', { level: 3 })).toBeVisible();
  await expect(first.getByText('Example:')).toBeVisible();
  await expect(first.getByText('First seen')).toBeVisible();
  await expect(first.getByText('Last seen')).toBeVisible();
  await expect(first.locator('time').first()).toHaveAttribute('datetime', /Z$/);
  // Every failed run of the window is a sample of some group (samples are the 5 newest of each group).
  const samples = await page.locator('.samples a').evaluateAll((as) => as.map((a) => a.textContent?.trim()));
  for (const run of failed.slice(0, 1)) expect(samples).toContain(run.run_id);

  // The failure rate per pipeline: a row per pipeline with runs in the window.
  const rates = page.getByTestId('failure-rates');
  await expect(rates).toBeVisible();
  await expect(rates.locator('tbody tr').first()).toContainText('%');

  expect(errors, 'no errors in the console (hydration matched the server HTML)').toEqual([]);

  // A sample opens its run.
  const sample = first.locator('.samples a').first();
  const id = (await sample.textContent())?.trim() ?? '';
  await sample.click();
  await expect(page).toHaveURL(new RegExp(`/runs/${id}$`));
  await expect(page.getByRole('heading', { level: 1 })).toContainText(id);
});

test('the window selector changes the window', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 21 });
  await page.goto(`${server.url}/failures?window=24h`);
  await ready(page, jsOn(info));
  const picker = page.getByRole('navigation', { name: 'Time window' });
  for (const [label, window, hours] of [
    ['Last 7 d', '7d', 7 * 24],
    ['Last 1 h', '1h', 1],
    ['Last 30 d', '30d', 30 * 24],
  ] as const) {
    await picker.getByRole('link', { name: label }).click();
    await expect(page).toHaveURL(new RegExp(`/failures\\?window=${window}$`));
    await expect(picker.getByRole('link', { name: label })).toHaveAttribute('aria-current', 'page');
    const failed = await failedWithin(page, hours);
    await expect(page.getByTestId('total-failed')).toHaveAttribute('data-value', String(failed.length));
    // The groups are read until they add up: the previous window's cards may still be shown for a moment.
    await expect.poll(async () => (await groups(page)).reduce((n, g) => n + g.count, 0), { message: window }).toBe(failed.length);
  }
});

test('a group drill-down lists its runs and opens them in the runs list', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 21 });
  await page.goto(`${server.url}/failures?window=30d`);
  await ready(page, jsOn(info));
  const [biggest] = await groups(page);
  const card = page.locator(`[data-group="${biggest.key}"]`);
  await card.getByRole('link', { name: /^Show (all \d+ of the group's runs|the group's 50 newest runs|the group's run)$/ }).click();
  await expect(page).toHaveURL(new RegExp(`/failures\\?window=30d&group=${biggest.key}$`));
  const table = page.getByTestId('group-samples');
  await expect(table.locator('tbody tr')).toHaveCount(Math.min(biggest.count, 50));
  await expect(page.locator('[data-group]')).toHaveCount(1);
  const ids = await table.locator('tbody a').evaluateAll((as) => as.map((a) => a.textContent?.trim() ?? ''));

  // The runs list of the group: failed runs of the window whose error contains the signature's constant part.
  await page.getByRole('link', { name: 'Open this group in the runs list' }).click();
  await expect(page).toHaveURL(/\/runs\?status=failed&error=[^&]+&updated_after=/);
  await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
  await expect(page.getByRole('link', { name: ids[0] })).toBeVisible();

  await page.goBack();
  await page.getByRole('link', { name: /All groups of the last 30 d/ }).click();
  await expect(page).toHaveURL(/\/failures\?window=30d$/);
});

test('a bad window is a 400 naming the parameter, an unknown group a 404', async ({ page }) => {
  server = await startOwnServer({ runs: 100, seed: 2 });
  let response = await page.goto(`${server.url}/failures?window=bogus`);
  expect(response?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('“window”');
  await expect(page.getByRole('alert')).toContainText('1h, 24h, 7d, 30d');
  response = await page.goto(`${server.url}/failures?window=24h&group=0123456789abcdef`);
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('alert')).toContainText('There is no failure group');
});

test('screenshots of the failures page, light and dark', async ({ page }, info) => {
  test.skip(!jsOn(info), 'one set of screenshots is enough (the pages are the same without JavaScript)');
  server = await startOwnServer({ runs: 1000, seed: 42 });
  for (const theme of ['light', 'dark']) {
    await page.context().addCookies([{ name: 'flowstate_theme', value: theme, url: server.url }]);
    await page.goto(`${server.url}/failures?window=7d`);
    await ready(page, true);
    await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', `failures-${theme}.png`), fullPage: true });
  }
});
