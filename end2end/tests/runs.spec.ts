// The runs list and the run page in a real browser, JavaScript on and off: filtering by status through the
// form, keyset paging with the pager links, opening a run from the list, a large value cut and shown whole, a
// bad parameter refused with a 400. Each test serves a demo database of its own; what the pages show is checked
// against what the CLI reads from the same database.
import * as path from 'node:path';

import { expect, Page, test } from '@playwright/test';

import { OwnServer, startOwnServer } from '../support/own-server';

type Run = {
  run_id: string;
  status: string;
  pipeline_id: string;
  error_message: string | null;
  current_step_index: number;
  total_steps: number;
};
type RunsJson = { runs: Run[]; next_cursor: string | null };
type RunJson = Run & { pipeline_context: unknown };

const jsOn = (info: { project: { use: { javaScriptEnabled?: boolean } } }) =>
  info.project.use.javaScriptEnabled !== false;

let server: OwnServer;

test.afterEach(async () => {
  await server?.stop();
});

async function ready(page: Page, on: boolean) {
  if (on) await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
}

/// Collects page errors and console errors (a hydration mismatch shows up there).
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return errors;
}

/// The run ids of the table's rows, in order.
async function listedIds(page: Page): Promise<string[]> {
  return page.locator('tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id') ?? ''));
}

/// Runs as the CLI lists them (newest first, the same order the page uses).
function cliRuns(args: string[]): Run[] {
  return (server.cli(['runs', ...args]) as RunsJson).runs;
}

/// A marker on `window` survives only if no full page load happens: with JavaScript the router navigates in place.
async function setMarker(page: Page) {
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
}
async function markerSurvived(page: Page): Promise<boolean> {
  return (await page.evaluate(() => (window as unknown as { marker?: number }).marker)) === 42;
}

test('filtering by status through the form lists exactly those runs', async ({ page }, info) => {
  server = await startOwnServer({ runs: 300, seed: 5 });
  const errors = watchErrors(page);
  await page.goto(`${server.url}/runs`);
  await ready(page, jsOn(info));
  await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
  await expect(page).toHaveTitle('Runs · flowstate');
  await expect(page.getByRole('link', { name: 'Runs', exact: true })).toHaveAttribute('aria-current', 'page');
  expect(await listedIds(page)).toEqual(cliRuns(['--limit', '50']).map((r) => r.run_id));

  const form = page.getByRole('form', { name: 'Filter runs' });
  await form.getByRole('checkbox', { name: 'failed' }).check();
  await form.getByRole('checkbox', { name: 'paused' }).check();
  if (jsOn(info)) await setMarker(page);
  await form.getByRole('button', { name: 'Apply filters' }).click();

  // The form sends the boxes in its own order (running, paused, completed, failed, cancelled).
  await expect(page).toHaveURL(/[?&]status=paused&status=failed(&|$)/);
  // Only the fields set: no blank ones, no stray `&=`, with JavaScript (the form drops them) or without (the
  // server redirects to the address without them).
  expect(page.url()).not.toMatch(/(^|[?&])[^=&]*=(&|$)/);
  await expect(page).toHaveTitle('Runs · paused, failed · flowstate');
  const expected = cliRuns(['--status', 'failed,paused', '--limit', '50']).map((r) => r.run_id);
  expect(expected.length, 'the demo has failed and paused runs').toBeGreaterThan(0);
  // The address changes at once with JavaScript while the old list stays up until the new one is read (and both
  // may have 50 rows): wait for the rows themselves, not their count.
  await expect.poll(() => listedIds(page)).toEqual(expected);
  const statuses = await page.locator('tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-status')));
  expect(new Set(statuses)).toEqual(new Set(['failed', 'paused']));
  await expect(page.getByTestId('status-filter')).toHaveText('paused, failed');
  // The form keeps what was chosen; the status is shown as text in each row, not by colour alone.
  await expect(form.getByRole('checkbox', { name: 'failed' })).toBeChecked();
  await expect(form.getByRole('checkbox', { name: 'completed' })).not.toBeChecked();
  await expect(page.locator('tr[data-run-id] .status').first()).toHaveText(/failed|paused/);
  if (jsOn(info)) expect(await markerSurvived(page), 'filtered in place, without a page load').toBe(true);

  // The address is the view: opening it afresh shows the same runs.
  await page.goto(page.url());
  await ready(page, jsOn(info));
  expect(await listedIds(page)).toEqual(expected);

  // A pipeline too, then "Clear filters".
  const pipeline = cliRuns(['--status', 'failed', '--limit', '1'])[0].pipeline_id;
  await form.getByLabel('Pipeline', { exact: true }).selectOption(pipeline);
  await form.getByRole('checkbox', { name: 'paused' }).uncheck();
  await form.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page).toHaveURL(new RegExp(`pipeline=${pipeline}`));
  const both = cliRuns(['--status', 'failed', '--pipeline', pipeline, '--limit', '50']).map((r) => r.run_id);
  await expect.poll(() => listedIds(page)).toEqual(both);
  await form.getByRole('link', { name: 'Clear filters' }).click();
  await expect(page).toHaveURL(/\/runs$/);
  await expect.poll(() => listedIds(page)).toEqual(cliRuns(['--limit', '50']).map((r) => r.run_id));

  expect(errors, 'no errors in the console (hydration matched the server HTML)').toEqual([]);
});

test('the pager walks every run once, older and newer', async ({ page }, info) => {
  server = await startOwnServer({ runs: 110, seed: 8 });
  const errors = watchErrors(page);
  await page.goto(`${server.url}/runs`);
  await ready(page, jsOn(info));
  const form = page.getByRole('form', { name: 'Filter runs' });
  await form.getByLabel('Per page').fill('25');
  await form.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page).toHaveURL(/limit=25/);
  await expect(page.locator('tr[data-run-id]')).toHaveCount(25);

  const pager = page.getByRole('navigation', { name: 'Pages' });
  await expect(pager.getByRole('link', { name: 'Older ›' })).toBeVisible();
  await expect(pager.getByRole('link', { name: '‹ Newer' })).toHaveCount(0);
  const pages: string[][] = [await listedIds(page)];
  while ((await pager.getByRole('link', { name: 'Older ›' }).count()) > 0) {
    const before = pages[pages.length - 1][0];
    await pager.getByRole('link', { name: 'Older ›' }).click();
    await expect(page.locator('tr[data-run-id]').first()).not.toHaveAttribute('data-run-id', before);
    await expect(page).toHaveURL(/cursor=/);
    pages.push(await listedIds(page));
    expect(pages.length).toBeLessThan(10);
  }
  expect(pages.map((p) => p.length)).toEqual([25, 25, 25, 25, 10]);
  const all = cliRuns(['--limit', '1000']).map((r) => r.run_id);
  expect(pages.flat(), 'no gaps, no overlaps, newest first').toEqual(all);

  // Back, newer and newer, to the first page.
  for (let i = pages.length - 2; i >= 0; i--) {
    const before = await page.locator('tr[data-run-id]').first().getAttribute('data-run-id');
    await pager.getByRole('link', { name: '‹ Newer' }).click();
    await expect(page.locator('tr[data-run-id]').first()).not.toHaveAttribute('data-run-id', before ?? '');
    expect(await listedIds(page)).toEqual(pages[i]);
  }
  await expect(pager.getByRole('link', { name: '‹ Newer' })).toHaveCount(0);
  await expect(page).toHaveURL(/limit=25/);
  expect(errors).toEqual([]);
});

test('a run opens from the list with its error first and every field', async ({ page }, info) => {
  server = await startOwnServer({ runs: 200, seed: 9 });
  const errors = watchErrors(page);
  await page.goto(`${server.url}/runs?status=failed`);
  await ready(page, jsOn(info));
  const run = cliRuns(['--status', 'failed', '--limit', '1'])[0];
  const row = page.locator(`tr[data-run-id="${run.run_id}"]`);
  await expect(row).toBeVisible();
  await expect(row.locator('.error-snippet')).toHaveAttribute('title', run.error_message ?? '');
  await row.getByRole('link', { name: run.run_id }).click();

  // The link carries the list it came from (the run page steps through it: run_lists.spec.ts).
  await expect(page).toHaveURL(new RegExp(`/runs/${run.run_id}\\?list=%2Fruns%3Fstatus%3Dfailed$`));
  await ready(page, jsOn(info));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Run ${run.run_id}`);
  // The title names the list it was opened from.
  await expect(page).toHaveTitle(`Run ${run.run_id} · Runs · failed · flowstate`);
  const error = page.getByTestId('run-error');
  await expect(error).toContainText(run.error_message ?? 'no error?');
  // The error comes before the fields.
  const order = await page.evaluate(() => {
    const e = document.querySelector('[data-testid="run-error"]');
    const s = document.querySelector('[data-field="status"]');
    return !!e && !!s && !!(e.compareDocumentPosition(s) & Node.DOCUMENT_POSITION_FOLLOWING);
  });
  expect(order, 'the error is shown first').toBe(true);
  await expect(page.locator('[data-field="status"] .status')).toHaveText('failed');
  const shown = Math.min(run.current_step_index + 1, run.total_steps);
  await expect(page.locator('[data-field="step"]')).toContainText(`step ${shown} of ${run.total_steps}`);
  await expect(page.locator('[data-field="pipeline"]')).toContainText(run.pipeline_id);
  await expect(page.locator('[data-field="created"] time')).toHaveAttribute('datetime', /Z$/);
  await expect(page.locator('[data-field="updated"]')).toContainText(/UTC/);
  await expect(page.locator('[data-field="updated"]')).toContainText(/ago|just now/);

  // Collapsible JSON blocks: the step history starts closed and opens with a click (no JavaScript needed).
  const history = page.locator('#history details');
  await expect(history).not.toHaveAttribute('open', /.*/);
  await page.getByRole('heading', { level: 2, name: 'Step history' }).click();
  await expect(history).toHaveAttribute('open', /.*/);
  await expect(history.locator('pre')).toBeVisible();
  await expect(page.locator('#context pre')).toBeVisible();

  // The guarded delete form is on the page (its guards are tested with the cleanup and guards specs).
  await expect(page.getByRole('heading', { level: 2, name: 'Delete this run' })).toBeVisible();

  // Back to the list it came from, its filter kept, through the breadcrumbs.
  await page.getByRole('navigation', { name: 'Breadcrumbs' }).getByRole('link', { name: 'Runs' }).click();
  await expect(page).toHaveURL(/\/runs\?status=failed$/);
  await expect(page.getByRole('heading', { level: 1, name: 'Runs' })).toBeVisible();
  expect(errors).toEqual([]);
});

test('a large context is cut and "Show all" shows it whole', async ({ page }, info) => {
  server = await startOwnServer({ runs: 200, seed: 9 });
  let big: RunJson | undefined;
  for (const r of cliRuns(['--limit', '1000'])) {
    const run = server.cli(['show', r.run_id]) as RunJson;
    if (JSON.stringify(run.pipeline_context, null, 2).length > 20 * 1024) {
      big = run;
      break;
    }
  }
  expect(big, 'the demo has a run with a context over 20 KB').toBeDefined();
  const id = big!.run_id;
  await page.goto(`${server.url}/runs/${id}`);
  await ready(page, jsOn(info));
  const context = page.locator('#context');
  await expect(context.getByText(/Showing the first [\d.]+ KB of [\d.]+ KB/)).toBeVisible();
  const cutLength = (await context.locator('pre').textContent())?.length ?? 0;
  await context.getByRole('link', { name: 'Show all' }).click();
  await expect(page).toHaveURL(new RegExp(`/runs/${id}\\?full=context#context$`));
  await expect(context.getByText(/Showing the first/)).toHaveCount(0);
  const whole = (await context.locator('pre').textContent()) ?? '';
  expect(whole.length).toBeGreaterThan(cutLength);
  expect(JSON.parse(whole), 'the whole value, valid JSON').toEqual(big!.pipeline_context);
});

test('bad parameters get a 400 page naming them; an unknown run a 404', async ({ page }) => {
  server = await startOwnServer({ runs: 20, seed: 3 });
  for (const [query, param] of [
    ['limit=0', 'limit'],
    ['status=done', 'status'],
    ['cursor=garbage', 'cursor'],
    ['created_after=yesterday', 'created_after'],
  ]) {
    const response = await page.goto(`${server.url}/runs?${query}`);
    expect(response?.status(), query).toBe(400);
    await expect(page.getByRole('alert')).toContainText(`The parameter “${param}” is not valid`);
    await expect(page.getByRole('link', { name: 'Show every run' })).toBeVisible();
  }
  const response = await page.goto(`${server.url}/runs/run_that_never_was`);
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1, name: /Not found/ })).toBeVisible();
  await expect(page.getByRole('alert')).toContainText('run_that_never_was');
});

test('screenshots of the runs list and a run page, light and dark', async ({ page }, info) => {
  test.skip(!jsOn(info), 'one set of screenshots is enough (the pages are the same without JavaScript)');
  server = await startOwnServer({ runs: 1000, seed: 42 });
  const failed = cliRuns(['--status', 'failed', '--limit', '1'])[0].run_id;
  for (const theme of ['light', 'dark']) {
    await page.context().addCookies([{ name: 'flowstate_theme', value: theme, url: server.url }]);
    await page.goto(`${server.url}/runs?limit=20`);
    await ready(page, true);
    await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', `runs-${theme}.png`), fullPage: true });
    await page.goto(`${server.url}/runs/${failed}`);
    await ready(page, true);
    await expect(page.getByTestId('run-error')).toBeVisible();
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', `run-${theme}.png`), fullPage: true });
  }
});
