// The run page's list of steps in a real browser, JavaScript on and off, and on a phone: the failing step first
// and highlighted, every step with its outcome, duration, attempts and output size, the raw history one click
// away. Screenshots of a failed run's page (light, dark, phone) for the README.
import * as path from 'node:path';

import { expect, Page, test } from '@playwright/test';

import { OwnServer, startOwnServer } from '../support/own-server';

type Run = { run_id: string; status: string; current_step_index: number; total_steps: number };
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

function failedRun(): Run {
  const runs = (server.cli(['runs', '--status', 'failed', '--limit', '20']) as RunsJson).runs;
  const run = runs.find((r) => r.current_step_index > 0) ?? runs[0];
  expect(run, 'the demo has a failed run').toBeTruthy();
  return run;
}

test('a failed run lists its steps with the failing one first', async ({ page }, info) => {
  server = await startOwnServer({ runs: 300, seed: 5 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  const run = failedRun();
  await page.goto(`${server.url}/runs/${encodeURIComponent(run.run_id)}`);
  await ready(page, jsOn(info));
  const steps = page.getByTestId('run-steps');
  await expect(steps.getByRole('heading', { level: 2, name: 'Steps' })).toBeVisible();
  const rows = steps.locator('tbody tr');
  // The demo writes the steps up to the failing one: index + 1 of them, the last failed.
  await expect(rows).toHaveCount(run.current_step_index + 1);
  await expect(rows.last()).toHaveAttribute('data-outcome', 'failed');
  await expect(rows.last()).toHaveClass(/step-row-failed/);
  await expect(rows.first()).toContainText('succeeded');
  // The failing step is called out above the table, with its number (from 1) and why.
  const failing = page.getByTestId('failing-step');
  await expect(failing).toContainText(`Failed at step ${run.current_step_index + 1}`);
  const failingTop = (await failing.boundingBox())?.y ?? 1e9;
  const tableTop = (await page.getByTestId('steps-table').boundingBox())?.y ?? 0;
  expect(failingTop).toBeLessThan(tableTop);
  // Duration, attempts and output size columns hold values.
  await expect(rows.first().locator('td[data-label="Duration"]')).toHaveText(/\d+(\.\d)? (ms|s)|min/);
  await expect(rows.first().locator('td[data-label="Attempts"]')).toHaveText(/^\d+$/);
  await expect(rows.first().locator('td[data-label="Output"]')).toHaveText(/\d+ B|KB/);
  await expect(rows.last().locator('td[data-label="Output"]')).toHaveText('none');
  // The raw JSON one click away (a <details>, no JavaScript needed).
  const raw = page.locator('#history details');
  await expect(raw).not.toHaveAttribute('open', /.*/);
  await page.getByRole('heading', { level: 2, name: 'Step history' }).click();
  await expect(raw).toHaveAttribute('open', /.*/);
  await expect(raw.locator('pre')).toContainText('"latency_s"');
  expect(errors, 'no errors in the console (hydration matched the server HTML)').toEqual([]);
});

test('on a phone (390 px) the steps fit or say they scroll', async ({ page }, info) => {
  server = await startOwnServer({ runs: 300, seed: 5 });
  await page.setViewportSize({ width: 390, height: 844 });
  const run = failedRun();
  await page.goto(`${server.url}/runs/${encodeURIComponent(run.run_id)}`);
  await ready(page, jsOn(info));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow, 'the page is no wider than the phone').toBeLessThanOrEqual(0);
  // The heading: "Run" then the whole id on a line of its own (it used to break in the middle of the id).
  const heading = await page.locator('h1').evaluate((h1) => {
    const id = h1.querySelector('.run-id') as HTMLElement;
    const box = id.getBoundingClientRect();
    const size = parseFloat(getComputedStyle(id).fontSize);
    return { height: box.height, size, left: box.left - h1.getBoundingClientRect().left, right: box.right, width: window.innerWidth };
  });
  expect(heading.height, 'the id is on one line').toBeLessThan(heading.size * 2);
  expect(heading.left, 'the id starts its own line').toBeLessThan(2);
  expect(heading.right).toBeLessThanOrEqual(heading.width);
  await expect(page.getByTestId('failing-step')).toBeVisible();
  await expect(page.getByTestId('run-steps').locator('.scroll-hint')).toBeVisible();
  if (jsOn(info)) {
    await page.getByTestId('run-steps').scrollIntoViewIfNeeded();
    await page.evaluate(() => document.querySelector('[data-testid="run-steps"]')?.scrollIntoView({ block: 'start' }));
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', 'run-steps-phone.png'), fullPage: false });
  }
});

test('screenshots of a failed run with its steps, light and dark', async ({ page }, info) => {
  test.skip(!jsOn(info), 'one set of screenshots is enough (the pages are the same without JavaScript)');
  server = await startOwnServer({ runs: 300, seed: 5 });
  const run = failedRun();
  for (const theme of ['light', 'dark']) {
    await page.context().addCookies([{ name: 'flowstate_theme', value: theme, url: server.url }]);
    await page.goto(`${server.url}/runs/${encodeURIComponent(run.run_id)}`);
    await ready(page, true);
    await expect(page.locator('html')).toHaveAttribute('data-theme', theme);
    await page.screenshot({ path: path.join(__dirname, '..', 'screenshots', `run-steps-${theme}.png`), fullPage: true });
  }
});
