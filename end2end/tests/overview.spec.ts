import { expect, test } from '@playwright/test';

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
