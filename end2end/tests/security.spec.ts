// The Content-Security-Policy in a real browser: every page hydrates under it (the inline scripts Leptos writes
// carry the response's nonce) and the browser reports no violation, of scripts or of styles.
import { expect, test } from '@playwright/test';

const base = () => {
  const url = process.env.FLOWSTATE_E2E_URL;
  if (!url) throw new Error('FLOWSTATE_E2E_URL is not set: run through playwright.config.ts (globalSetup)');
  return url;
};

const PAGES = [
  '/',
  '/runs?status=failed',
  '/failures?window=30d',
  '/cleanup?preview=1&days=30&status=completed&status=failed&status=cancelled',
  '/login',
  '/runs/no-such-run',
];

test('every page works under the CSP without a single violation', async ({ page }, info) => {
  const jsOn = info.project.use.javaScriptEnabled !== false;
  const violations: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) {
      violations.push(message.text());
    }
  });
  if (jsOn) {
    // Injected by the browser's debugging protocol, so the policy does not apply to this listener itself.
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
  }
  for (const path of PAGES) {
    const response = await page.goto(`${base()}${path}`);
    const csp = response?.headers()['content-security-policy'] ?? '';
    expect(csp, path).toContain("frame-ancestors 'none'");
    expect(csp, path).toMatch(/script-src 'self' 'nonce-[0-9a-f]{32}'/);
    expect(csp, path).not.toContain('unsafe-inline');
    if (jsOn) {
      // The hydration script ran (it carries the nonce) and the wasm compiled ('wasm-unsafe-eval').
      await expect(page.locator('html'), path).toHaveAttribute('data-hydrated', 'true');
    }
  }
  if (jsOn) {
    // Hydrated pages still act: the theme switches in place, without a navigation.
    await page.goto(`${base()}/`);
    await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
    await page.getByRole('group', { name: 'Colour theme' }).getByRole('link', { name: 'Dark' }).click();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
  }
  expect(violations).toEqual([]);
});
