// The runs list's orders, time / memory / version filters and total, and the run page's previous / next run of
// the list it was opened from (issue 15), in a real browser with JavaScript on and off, and at a phone's width.
// What the pages show is checked against what the CLI reads from the same database.
import * as path from 'node:path';

import { expect, Page, test } from '@playwright/test';

import { OwnServer, startOwnServer } from '../support/own-server';

type Run = { run_id: string; execution_time_ms: number | null; memory_usage_mb: number | null };
type RunsJson = { runs: Run[]; next_cursor: string | null; total: { count: number; exact: boolean } };

const jsOn = (info: { project: { use: { javaScriptEnabled?: boolean } } }) =>
  info.project.use.javaScriptEnabled !== false;

let server: OwnServer;

test.afterEach(async () => {
  await server?.stop();
});

async function ready(page: Page, on: boolean) {
  if (on) await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
}

function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return errors;
}

async function listedIds(page: Page): Promise<string[]> {
  return page.locator('tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id') ?? ''));
}

/// Memory as the pages show it (app/src/format.rs `memory_mb`).
const mb = (v: number) => (v < 1000 ? `${v.toFixed(1)} MB` : `${Math.round(v).toLocaleString('en-US')} MB`);

function cli(args: string[]): RunsJson {
  return server.cli(['runs', ...args]) as RunsJson;
}

test('an order and time and memory bounds through the form list what the CLI lists, with the total', async ({ page }, info) => {
  server = await startOwnServer({ runs: 400, seed: 15 });
  const errors = watchErrors(page);
  await page.goto(`${server.url}/runs`);
  await ready(page, jsOn(info));
  const all = cli(['--limit', '50']);
  await expect(page.getByTestId('runs-total')).toContainText(`${all.total.count} runs`);

  const form = page.getByRole('form', { name: 'Filter runs' });
  await form.getByLabel('Order').selectOption('slowest');
  await form.getByLabel('Took at least').fill('1s');
  await form.getByLabel('Memory at least (MB)').fill('20');
  await form.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page).toHaveURL(/min_duration=1s/);
  await expect(page).toHaveURL(/min_memory=20/);
  await expect(page).toHaveURL(/sort=slowest/);
  const want = cli(['--sort', 'slowest', '--min-duration', '1s', '--min-memory', '20', '--limit', '50']);
  expect(want.runs.length).toBeGreaterThan(0);
  await expect.poll(() => listedIds(page)).toEqual(want.runs.map((r) => r.run_id));
  await expect(page.getByTestId('runs-total')).toContainText(`${want.total.count.toLocaleString('en-US')} run`);
  // The form keeps what was chosen; the order links keep the filters.
  await expect(form.getByLabel('Order')).toHaveValue('slowest');
  await expect(form.getByLabel('Took at least')).toHaveValue('1s');
  await page.getByRole('navigation', { name: 'Order' }).getByRole('link', { name: 'Most memory' }).click();
  await expect(page).toHaveURL(/sort=heaviest/);
  const heavy = cli(['--sort', 'heaviest', '--min-duration', '1s', '--min-memory', '20', '--limit', '50']);
  await expect.poll(() => listedIds(page)).toEqual(heavy.runs.map((r) => r.run_id));
  // The memory column shows each run's figure.
  const first = heavy.runs[0];
  await expect(page.locator(`tr[data-run-id="${first.run_id}"] [data-field="memory"]`)).toHaveText(mb(first.memory_usage_mb!));

  // A bad bound is a 400 page naming the parameter.
  const bad = await page.goto(`${server.url}/runs?min_memory=lots`);
  expect(bad?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('min_memory');
  expect(errors.filter((e) => !e.includes('400')), 'no errors in the console').toEqual([]);
});

test('the run page steps through the list it was opened from and leads back to it', async ({ page }, info) => {
  server = await startOwnServer({ runs: 200, seed: 21 });
  const list = '/runs?status=completed&sort=slowest';
  await page.goto(`${server.url}${list}`);
  await ready(page, jsOn(info));
  const want = cli(['--status', 'completed', '--sort', 'slowest', '--limit', '50']).runs.map((r) => r.run_id);
  await expect.poll(() => listedIds(page)).toEqual(want);
  await page.locator(`tr[data-run-id="${want[1]}"] a.run-link`).click();
  await expect(page).toHaveURL(new RegExp(`/runs/${want[1]}\\?list=`));
  // The title names the list, as the list's own title does.
  await expect(page).toHaveTitle(`Run ${want[1]} · Runs · completed · slowest first · flowstate`);
  const nav = page.getByRole('navigation', { name: 'Runs of the list' });
  await expect(nav.getByRole('link', { name: '‹ Previous run' })).toHaveAttribute('title', want[0]);
  await expect(nav.getByRole('link', { name: 'Next run ›' })).toHaveAttribute('title', want[2]);
  await nav.getByRole('link', { name: 'Next run ›' }).click();
  await expect(page).toHaveURL(new RegExp(`/runs/${want[2]}\\?list=`));
  await expect(page.getByRole('heading', { level: 1 })).toContainText(want[2]);
  await expect(page).toHaveTitle(`Run ${want[2]} · Runs · completed · slowest first · flowstate`);
  await expect(nav.getByRole('link', { name: 'Next run ›' })).toHaveAttribute('title', want[3]);
  // The breadcrumb goes back to the list with its filter and order.
  await page.getByTestId('breadcrumb-runs').click();
  await expect(page).toHaveURL(new RegExp(`/runs\\?status=completed&sort=slowest$`));
  await expect.poll(() => listedIds(page)).toEqual(want);
});

test('at a phone width the memory and execution columns can be reached', async ({ page }, info) => {
  server = await startOwnServer({ runs: 120, seed: 3 });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/runs?sort=heaviest&limit=20`);
  await ready(page, jsOn(info));
  const top = cli(['--sort', 'heaviest', '--limit', '1']).runs[0];
  const cell = page.locator(`tr[data-run-id="${top.run_id}"] [data-field="memory"]`);
  await cell.scrollIntoViewIfNeeded();
  await expect(cell).toBeVisible();
  await expect(cell).toHaveText(mb(top.memory_usage_mb!));
  // The page itself does not scroll sideways: a wide table scrolls inside its own region.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(1);
  if (jsOn(info)) {
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', 'runs-heaviest-phone.png'), fullPage: false });
  }
});
