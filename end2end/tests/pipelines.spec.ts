// The Pipelines page in a real browser, JavaScript on and off: the table per pipeline over a window (its counts
// add up to what the CLI finds; each number opens the runs behind it), the window picker, the trend with its
// period and pipeline pickers, its charts and data table, a bad parameter refused with a 400, and the page at a
// phone's width (390 px: the tables scroll sideways with a visible hint, the counts stay in their cards).
import * as path from 'node:path';

import { expect, Page, test } from '@playwright/test';

import { OwnServer, startOwnServer } from '../support/own-server';

type Run = { run_id: string; pipeline_id: string; status: string; updated_at: string | null };
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

test('the table counts each pipeline over the window, and its numbers open the runs behind them', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 15 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${server.url}/`);
  await ready(page, jsOn(info));
  await page.getByRole('navigation').getByRole('link', { name: 'Pipelines' }).click();
  await expect(page).toHaveURL(/\/pipelines$/);
  await ready(page, jsOn(info));
  await expect(page.getByRole('heading', { level: 1, name: 'Pipelines' })).toBeVisible();
  await expect(page).toHaveTitle('Pipelines, last 24 h · trend over 7 days · flowstate');

  // The runs counted: last updated since the window's start (rounded down to the hour), as the CLI lists them.
  const since = Date.parse((await page.getByTestId('window-start').getAttribute('datetime')) ?? '');
  const all = (server.cli(['runs', '--limit', '1000']) as RunsJson).runs;
  const inWindow = all.filter((r) => r.updated_at !== null && Date.parse(r.updated_at) >= since);
  expect(inWindow.length, 'the demo has runs in the last 24 h').toBeGreaterThan(0);
  await expect(page.getByTestId('total-runs')).toHaveText(inWindow.length.toLocaleString('en-US'));
  const table = page.getByTestId('pipelines-table');
  const first = table.locator('tbody tr').first();
  const pipeline = (await first.getAttribute('data-pipeline')) ?? '';
  const ofPipeline = inWindow.filter((r) => r.pipeline_id === pipeline);
  await expect(first.locator('td').first()).toHaveText(ofPipeline.length.toLocaleString('en-US'));
  const failed = ofPipeline.filter((r) => r.status === 'failed').length;
  const finished = ofPipeline.filter((r) => ['completed', 'failed', 'cancelled'].includes(r.status)).length;
  if (finished > 0) {
    const shown = (await first.getByTestId('failure-rate').textContent()) ?? '';
    expect(Math.abs(parseFloat(shown) - (100 * failed) / finished)).toBeLessThan(0.06);
  }

  // The failed count opens those runs.
  await first.locator('td').nth(2).getByRole('link').click();
  await expect(page).toHaveURL(/\/runs\?pipeline=[^&]+&updated_after=[^&]+&status=failed$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
  await page.goBack();

  // The window picker: a shortcut, then a span of our own.
  await page.getByRole('navigation', { name: 'Time window' }).getByRole('link', { name: 'Last 7 d' }).click();
  await expect(page).toHaveURL(/\/pipelines\?window=7d$/);
  await expect(page).toHaveTitle(/^Pipelines, last 7 d/);
  await page.getByTestId('window-form').getByRole('textbox').fill('90m');
  await page.getByTestId('window-form').getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/\/pipelines\?window=90m$/);
  await expect(page).toHaveTitle(/^Pipelines, last 90 min/);
  // A start instant, typed as a date and a 24-hour time in UTC (a text field: no AM/PM whatever the locale).
  const sinceField = page.getByTestId('since-form').getByRole('textbox');
  await expect(sinceField).toHaveAttribute('type', 'text');
  await sinceField.fill('2026-03-14 13:45');
  await page.getByTestId('since-form').getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(/\/pipelines\?since=2026-03-14(\+|%20)13(%3A|:)45$/);
  await expect(page).toHaveTitle(/^Pipelines, since 2026-03-14 13:45 UTC/);
  await expect(page.getByTestId('since-form').getByRole('textbox')).toHaveValue('2026-03-14 13:45');
  expect(errors, 'no errors in the console (hydration matched the server HTML)').toEqual([]);
});

test('the trend of one pipeline over 30 days: charts, the data as a table, this period against the previous', async ({ page }, info) => {
  server = await startOwnServer({ runs: 800, seed: 7 });
  await page.goto(`${server.url}/pipelines`);
  await ready(page, jsOn(info));
  const trend = page.getByTestId('trend');
  await expect(trend.getByRole('heading', { level: 2 })).toHaveText('Trend of all pipelines over 7 days');
  await trend.getByRole('link', { name: '30 days' }).click();
  await expect(page).toHaveURL(/\/pipelines\?days=30$/);
  await ready(page, jsOn(info));
  const pipeline = (await page.getByTestId('pipelines-table').locator('tbody tr').first().getAttribute('data-pipeline')) ?? '';
  await page.getByTestId('trend-form').getByRole('combobox').selectOption(pipeline);
  await page.getByTestId('trend-form').getByRole('button', { name: 'Show' }).click();
  await expect(page).toHaveURL(new RegExp(`/pipelines\\?days=30&pipeline=`));
  await expect(page.getByTestId('trend').getByRole('heading', { level: 2 })).toHaveText(`Trend of ${pipeline} over 30 days`);
  await expect(page.getByTestId('trend-table').locator('tbody tr')).toHaveCount(30);
  for (const id of ['trend-runs-chart', 'trend-rate-chart', 'trend-p95-chart']) {
    await expect(page.getByTestId(id).locator('svg[role="img"]')).toBeVisible();
  }
  await expect(page.getByTestId('periods').locator('tbody tr')).toHaveCount(3);
  // A regression or none, said in words.
  await expect(page.getByTestId('trend').getByRole('note').first()).toContainText(/Regression|No regression/);
});

test('a bad parameter is a 400 naming it', async ({ page }) => {
  server = await startOwnServer({ runs: 50, seed: 3 });
  let response = await page.goto(`${server.url}/pipelines?days=14`);
  expect(response?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('“days”');
  response = await page.goto(`${server.url}/pipelines?window=bogus`);
  expect(response?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('“window”');
});

test('at a phone width the tables scroll sideways with a hint, and the counts stay in their cards', async ({ page }, info) => {
  server = await startOwnServer({ runs: 600, seed: 15 });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/pipelines?window=7d`);
  await ready(page, jsOn(info));
  const region = page.getByRole('region', { name: 'Pipelines', exact: true });
  await expect(region).toBeVisible();
  const widths = await region.evaluate((e) => ({ scroll: e.scrollWidth, client: e.clientWidth }));
  expect(widths.scroll, 'the table is wider than the phone and scrolls').toBeGreaterThan(widths.client);
  expect(widths.client).toBeLessThanOrEqual(390);
  await expect(page.locator('.scroll-hint').first()).toBeVisible();
  const page_width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(page_width, 'the page itself does not scroll sideways').toBeLessThanOrEqual(390);
  const spill = await page.locator('.pl-card').evaluateAll((cards) =>
    cards.filter((c) => {
      const v = c.querySelector('.pl-card-value') as HTMLElement;
      return v.scrollWidth > c.clientWidth || v.getBoundingClientRect().right > c.getBoundingClientRect().right + 0.5;
    }).length,
  );
  expect(spill, 'no count spills out of its card').toBe(0);
});

test('screenshots of the pipelines page, light and dark', async ({ page }, info) => {
  test.skip(!jsOn(info), 'one set of screenshots is enough (the pages are the same without JavaScript)');
  server = await startOwnServer({ runs: 1000, seed: 42 });
  for (const theme of ['light', 'dark']) {
    await page.context().addCookies([{ name: 'flowstate_theme', value: theme, url: server.url }]);
    await page.goto(`${server.url}/pipelines?window=7d&days=30`);
    await ready(page, true);
    await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', `pipelines-${theme}.png`), fullPage: true });
  }
});
