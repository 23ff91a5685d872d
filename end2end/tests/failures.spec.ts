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
  const runs = (server.cli(['failed', '--hours', String(Math.ceil(hours) + 1), '--limit', '1000']) as RunsJson).runs;
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
  await expect(page).toHaveTitle('Failures · last 24 h · flowstate');
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
  await expect(page.getByRole('alert')).toContainText('1m to 365d');
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

test('any window: a span typed in the free field, or a start in 24-hour UTC', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 21 });
  await page.goto(`${server.url}/failures`);
  await ready(page, jsOn(info));
  // A span: the GET form (no JavaScript needed) sends only its own field.
  await page.getByTestId('window-form').getByRole('textbox').fill('3h');
  await page.getByTestId('window-form').getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/\/failures\?window=3h$/);
  await expect(page).toHaveTitle('Failures · last 3 h · flowstate');
  await expect(page.getByRole('navigation', { name: 'Time window' }).locator('[aria-current="page"]')).toHaveText('Last 3 h');
  const failed = await failedWithin(page, 3);
  await expect(page.getByTestId('total-failed')).toHaveAttribute('data-value', String(failed.length));
  await expect(page.getByTestId('failures-summary')).toContainText('in the last 3 h');

  // A start: typed 24-hour, read as UTC; the page says it back 24-hour, never AM/PM.
  const readAt = Date.parse((await page.locator('.read-at time').getAttribute('datetime')) ?? '');
  const start = new Date(readAt - 30 * 3600_000);
  start.setUTCSeconds(0, 0);
  const typed = start.toISOString().slice(0, 16).replace('T', ' ');
  const since = page.getByTestId('since-form').getByRole('textbox');
  await since.fill(typed);
  await page.getByTestId('since-form').getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/\/failures\?since=\d{4}-\d\d-\d\d(\+|%20)\d\d%3A\d\d$/);
  await expect(page.getByTestId('failures-summary')).toContainText(`since ${typed} UTC`);
  await expect(page).toHaveTitle(`Failures · since ${typed} UTC · flowstate`);
  await expect(page.getByTestId('since-form').getByRole('textbox')).toHaveValue(typed);
  const body = (await page.locator('main').textContent()) ?? '';
  expect(body).not.toMatch(/\b(AM|PM)\b/);
  const hours = (Date.now() - start.getTime()) / 3600_000;
  expect(hours).toBeGreaterThan(29);
  const sinceFailed = await failedWithin(page, (readAt - start.getTime()) / 3600_000);
  await expect(page.getByTestId('total-failed')).toHaveAttribute('data-value', String(sinceFailed.length));
});

test('a group\'s pipeline link keeps the group\'s filter, and the rates come first, over finished runs', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 21 });
  await page.goto(`${server.url}/failures?window=30d`);
  await ready(page, jsOn(info));
  // The rate table is above the groups (it used to sit thousands of pixels down).
  const rates = page.getByTestId('failure-rates');
  const ratesTop = (await rates.boundingBox())?.y ?? 1e9;
  const groupTop = (await page.locator('.failure-group').first().boundingBox())?.y ?? 0;
  expect(ratesTop).toBeLessThan(groupTop);
  await expect(rates.locator('thead')).toContainText('Finished');
  await expect(rates.locator('caption')).toContainText('share of finished runs');
  const row = rates.locator('tbody tr').first();
  const finished = Number(await row.getAttribute('data-finished'));
  const failedN = Number(await row.getAttribute('data-failed'));
  expect(finished).toBeGreaterThanOrEqual(failedN);

  const first = page.locator('.failure-group').first();
  const link = first.locator('.group-facts a').first();
  const pipeline = (await link.textContent())?.trim() ?? '';
  const count = Number(((await link.locator('xpath=following-sibling::span').textContent()) ?? '').replace(/[^0-9]/g, ''));
  await link.click();
  await expect(page).toHaveURL(new RegExp(`/runs\\?status=failed&(error=[^&]+&)?updated_after=[^&]+&pipeline=${encodeURIComponent(pipeline)}$`));
  await expect(page.locator('tr[data-run-id]')).toHaveCount(Math.min(count, 50));
});

test('unknown parameters are named, blank fields leave the address', async ({ page }) => {
  server = await startOwnServer({ runs: 100, seed: 2 });
  await page.goto(`${server.url}/failures?windw=3h`);
  await expect(page.getByTestId('unknown-params')).toContainText('“windw”');
  await expect(page.getByTestId('unknown-params')).toContainText('window, since, group');
  await page.goto(`${server.url}/failures?window=&since=&=`);
  await expect(page).toHaveURL(/\/failures$/);
  await expect(page.getByTestId('unknown-params')).toHaveCount(0);
  await page.goto(`${server.url}/runs?status=failed&pipeline=&error=&created_after=`);
  await expect(page).toHaveURL(/\/runs\?status=failed$/);
});

test('on a phone (390 px) nothing spills sideways and wide tables say they scroll', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 21 });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/failures?window=30d`);
  await ready(page, jsOn(info));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow, 'the page is no wider than the phone').toBeLessThanOrEqual(0);
  // Every count stays inside its card.
  const spilled = await page.locator('.group-count, .figure').evaluateAll((els) =>
    els.filter((e) => {
      const box = e.getBoundingClientRect();
      const card = (e.closest('.failure-group, .figure-card, li') ?? document.body).getBoundingClientRect();
      return box.right > card.right + 1 || box.left < card.left - 1;
    }).length,
  );
  expect(spilled).toBe(0);
  await expect(page.locator('.scroll-hint').first()).toBeVisible();
  if (jsOn(info)) {
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', 'failures-phone.png'), fullPage: false });
  }
  await page.goto(`${server.url}/`);
  const overviewOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overviewOverflow, 'the overview fits the phone').toBeLessThanOrEqual(0);
});
