// Hostile workflow data in a real browser, JavaScript on and off (issue 12): a run id that closes `</title>` and
// opens a `<meta http-equiv="refresh">` or a `<form>` of its own used to redirect every operator who opened the
// run, or capture the page's CSRF token for a cleanup of the attacker's choice. Another writer (as flujo would)
// puts the rows in the database; the browser must show them as text: the title is the id, the page stays where it
// is, and no element the data spelled exists, before and after hydration.
import { execFileSync } from 'node:child_process';

import { expect, Page, test } from '@playwright/test';

import { OwnServer, startOwnServer } from '../support/own-server';

const IDS = [
  `</title><meta http-equiv="refresh" content="0;url=http://127.0.0.1:9/evil"><x-evil>`,
  `</title></head><body><form action="/api/run_cleanup?evil=1" method="post"><input name="days" value="1"><button id="evil-button">x</button><x-evil>`,
  `"><script>window.evil=1</script><img src=x onerror="window.evil=2"><x-evil>`,
  `\u202Egnp.exe\u202C <x-evil>`,
];

// Written as another process writes them: plain SQL, no flowstate in between.
const INSERT = `
import sqlite3, sys, json
db = sqlite3.connect(sys.argv[1], timeout=10)
for i, run_id in enumerate(json.loads(sys.argv[2])):
    db.execute(
        "INSERT OR REPLACE INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, "
        "current_step_index, pipeline_context, last_step_output, step_history, status, created_at, updated_at, "
        "total_steps, error_message) VALUES (?, ?, ?, ?, 0, ?, ?, ?, 'failed', datetime('now'), datetime('now'), 3, ?)",
        (run_id, '<x-evil-pipe onclick="window.evil=3">', '</title><x-evil-name>', '1"><x-evil-ver>',
         json.dumps({"prompt": "</script><x-evil-ctx><script>window.evil=4</script>"}),
         json.dumps("</pre><x-evil-ctx>"), json.dumps([{"step": "<x-evil-ctx>"}]),
         "</pre><x-evil-err><script>window.evil=5</script>"))
db.commit()
`;

let server: OwnServer;

test.beforeAll(async () => {
  server = await startOwnServer({ runs: 40, seed: 5 });
  execFileSync('python3', ['-c', INSERT, server.db, JSON.stringify(IDS)]);
});

test.afterAll(async () => {
  await server?.stop();
});

async function noDataMarkup(page: Page, where: string) {
  for (const tag of ['x-evil', 'x-evil-pipe', 'x-evil-name', 'x-evil-ver', 'x-evil-ctx', 'x-evil-err', 'img']) {
    await expect(page.locator(tag), `${where}: <${tag}>`).toHaveCount(0);
  }
  await expect(page.locator('meta[http-equiv]'), where).toHaveCount(0);
  await expect(page.locator('form[action*="evil"]'), where).toHaveCount(0);
  await expect(page.locator('#evil-button'), where).toHaveCount(0);
  const evil = await page.evaluate(() => (window as unknown as { evil?: number }).evil);
  expect(evil, `${where}: data ran as script`).toBeUndefined();
  const handlers = await page.evaluate(() =>
    [...document.querySelectorAll('*')].flatMap((e) =>
      [...e.attributes].filter((a) => a.name.startsWith('on')).map((a) => `${e.tagName} ${a.name}`),
    ),
  );
  expect(handlers, where).toEqual([]);
}

test('hostile run ids, names, errors and values stay text on every page', async ({ page }, info) => {
  const jsOn = info.project.use.javaScriptEnabled !== false;
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  for (const id of IDS) {
    const url = `${server.url}/runs/${encodeURIComponent(id)}`;
    await page.goto(url);
    if (jsOn) await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
    await expect(page).toHaveTitle(`Run ${id} · flowstate`);
    await expect(page.locator('h1 code.run-id')).toHaveText(id);
    await expect(page.locator('.error-text')).toHaveText('</pre><x-evil-err><script>window.evil=5</script>');
    await noDataMarkup(page, id);
    // The page did not go anywhere (a meta refresh would have), and the only forms are its own.
    await page.waitForTimeout(300);
    expect(page.url()).toBe(url);
    const actions = await page.locator('form').evaluateAll((forms) => forms.map((f) => f.getAttribute('action')));
    for (const action of actions) expect(['/api/delete_run', '/api/logout', '/theme', null, '']).toContain(action);
    // Data text is isolated: a bidi override in an id reorders only the id.
    const bidi = await page.locator('h1 code.run-id').evaluate((e) => getComputedStyle(e).unicodeBidi);
    expect(bidi).toBe('isolate');
  }
  for (const path of ['/', '/runs', '/runs?status=failed', '/failures', '/cleanup']) {
    await page.goto(`${server.url}${path}`);
    if (jsOn) await expect(page.locator('html')).toHaveAttribute('data-hydrated', 'true');
    await noDataMarkup(page, path);
  }
  expect(errors).toEqual([]);
});
