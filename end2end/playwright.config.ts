import { defineConfig } from '@playwright/test';

// Debian's Chromium, never a downloaded browser (only the package registries are reachable here).
const chromium = {
  browserName: 'chromium' as const,
  launchOptions: {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  },
};

export default defineConfig({
  testDir: './tests',
  // globalSetup starts `flowstate serve` on a fresh database and a free port, and waits for /healthz.
  globalSetup: './global-setup.ts',
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: 2,
  timeout: 30_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  use: {
    trace: 'retain-on-failure',
  },
  projects: [
    { name: 'js-on', use: { ...chromium, javaScriptEnabled: true } },
    { name: 'js-off', use: { ...chromium, javaScriptEnabled: false } },
  ],
});
