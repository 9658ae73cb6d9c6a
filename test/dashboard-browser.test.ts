/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real
 * head with its local agent and real python3 workers: login by link and by form, the live jobs
 * table, a job's log as it is printed, Stop, Resubmit, the other pages, and nothing shown
 * without a session. Screenshots of each page are kept in the artefacts dir (printed below).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { artefactsDir, findChromium, launchBrowser, screenshot } from './helpers/browser.js';
import { processesWith, runCli, startHead, tempDir, type TestHead } from './helpers/cluster.js';

const chromiumPath = findChromium();
if (!chromiumPath) {
  console.warn('dashboard browser tests skipped: no chromium on PATH (.ci/run installs Debian\'s chromium with apt-get)');
} else {
  console.info(`dashboard screenshots: ${artefactsDir()}`);
}

/** A job that prints a line with the time it printed it, on stdout and stderr, until stopped. */
function tickerEntrypoint(marker: string): string {
  return `python3 -c "import sys, time
m = '${marker}'
for i in range(100000):
    print('tick', i, int(time.time() * 1000), flush=True)
    if i % 3 == 0:
        print('oops', i, file=sys.stderr, flush=True)
    time.sleep(0.3)"`;
}

async function loginLink(head: TestHead): Promise<string> {
  const res = await runCli(['dashboard', '--url'], { env: head.env });
  expect(res.code, res.stderr).toBe(0);
  const url = res.stdout.trim();
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/login\?code=[A-Za-z0-9_-]+$/);
  return url;
}

/** The few DOM parts the in-page watcher uses (the tests compile without the DOM library). */
interface PageGlobals {
  ticks: Record<string, [printed: number, shown: number]>;
  document: {
    body: unknown;
    cookie: string;
    activeElement: { textContent: string | null } | null;
    documentElement: { scrollWidth: number };
    querySelectorAll(selector: string): Iterable<{ textContent: string | null }>;
  };
  MutationObserver: new (fn: () => void) => { observe(target: unknown, options: Record<string, boolean>): void };
}

/** Record, in the page, when each "tick N <ms>" line first shows in the log. */
async function watchTicks(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = globalThis as unknown as PageGlobals;
    const seen: PageGlobals['ticks'] = {};
    w.ticks = seen;
    const scan = (): void => {
      for (const el of w.document.querySelectorAll('.log .line')) {
        const m = /tick (\d+) (\d+)/.exec(el.textContent ?? '');
        if (m?.[1] && m[2] && !seen[m[1]]) seen[m[1]] = [Number(m[2]), Date.now()];
      }
    };
    new w.MutationObserver(scan).observe(w.document.body, { childList: true, subtree: true, characterData: true });
    scan();
  });
}

const ticks = (page: Page): Promise<PageGlobals['ticks']> => page.evaluate(() => (globalThis as unknown as PageGlobals).ticks);

describe.skipIf(!chromiumPath)('the dashboard in chromium', () => {
  it('logs in by link, shows a CLI-submitted job, a new job within a second, its log as printed, and stops it', async () => {
    const head = await startHead({ numCpus: 2 });
    const browser = await launchBrowser(chromiumPath as string);
    const marker = `dash-ticker-${crypto.randomBytes(4).toString('hex')}`;
    const fromCli = await runCli(['job', 'submit', '--no-wait', '--submission-id', 'from-the-cli', '--metadata-json', '{"team": "vision", "sweep": "lr=0.1"}', '--', 'echo hello from the CLI'], { env: head.env });
    expect(fromCli.code, fromCli.stderr).toBe(0);
    // A few more, so the table shows what a cluster's does: a failure, an array job, a job queued for capacity.
    await head.client.submitJob({ submission_id: 'eval-nlp', entrypoint: 'python3 -c "import sys; print(\'loss: nan\'); sys.exit(3)"', metadata: { team: 'nlp' } });
    await head.client.submitJob({ submission_id: 'sweep-lr', entrypoint: 'python3 -c pass', metadata: { team: 'vision', sweep: 'lr' }, raysub: { parallel: 3 } });
    await head.client.submitJob({ submission_id: 'train-big', entrypoint: 'python3 train.py', entrypoint_num_cpus: 8, metadata: { team: 'speech' }, raysub: { wait_for_capacity: true } });
    await head.client.waitForJob('eval-nlp');
    await head.client.waitForJob('sweep-lr');

    const page = await browser.page();
    await page.goto(await loginLink(head));
    await page.getByRole('heading', { name: 'Jobs' }).waitFor();
    await page.locator('table.jobs a', { hasText: 'from-the-cli' }).waitFor();
    // The login link became an HttpOnly, SameSite=Strict cookie (not readable by the page's script).
    const [cookie] = await browser.context.cookies();
    expect(cookie).toMatchObject({ name: 'raysub_session', httpOnly: true, sameSite: 'Strict', secure: false });
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie)).toBe('');
    await page.locator('table.jobs tr', { hasText: 'from-the-cli' }).getByText('SUCCEEDED').waitFor();

    // A job submitted now shows in the open table within a second of the head accepting it.
    // Its stderr a stream of its own (one ordered stream is the default: docs/logs.md), so it is marked.
    await head.client.submitJob({ submission_id: 'the-ticker', entrypoint: tickerEntrypoint(marker), metadata: { team: 'vision' }, runtime_env: { sandbox: { separate_stderr: true } } });
    const accepted = Date.now();
    await page.locator('table.jobs a', { hasText: 'the-ticker' }).waitFor({ timeout: 10_000 });
    const appeared = Date.now() - accepted;
    expect(appeared).toBeLessThan(1000);
    await page.locator('table.jobs tr', { hasText: 'the-ticker' }).getByText('RUNNING').waitFor();
    // The queued job says why it waits; the failed one says so.
    await page.locator('table.jobs tr', { hasText: 'train-big' }).getByText(/no node can ever provide 8 CPUs/).waitFor();
    await page.locator('table.jobs tr', { hasText: 'eval-nlp' }).getByText('FAILED').waitFor();
    await screenshot(page, 'jobs', { docs: true });

    // Its page shows each line within a second of the job printing it, stderr marked as such.
    await page.locator('table.jobs a', { hasText: 'the-ticker' }).click();
    await page.getByRole('heading', { name: 'the-ticker' }).waitFor();
    await watchTicks(page);
    await page.locator('.log .line', { hasText: /tick \d+/ }).first().waitFor({ timeout: 60_000 });
    const start = Object.keys(await ticks(page)).length;
    await expect.poll(async () => Object.keys(await ticks(page)).length, { timeout: 30_000 }).toBeGreaterThanOrEqual(start + 6);
    const seen = Object.entries(await ticks(page)).filter(([i]) => Number(i) >= start + 1);
    const delays = seen.slice(0, 5).map(([, [printed, shown]]) => shown - printed);
    console.info(`job appeared in the table ${appeared} ms after submission; log lines shown ${delays.join(', ')} ms after being printed`);
    for (const d of delays) expect(d).toBeLessThan(1000);
    await expect.poll(() => page.locator('.log .line.stderr').count()).toBeGreaterThan(0);
    expect(await page.locator('.log .line.stderr').first().textContent()).toMatch(/^stderr oops \d+/);
    await page.getByRole('button', { name: 'Stop job' }).waitFor();
    await screenshot(page, 'job', { docs: true, fullPage: true });

    // The full log downloads as text.
    const download = await page.request.get(new URL('/api/jobs/the-ticker/logs/download', head.url).toString());
    expect(download.status()).toBe(200);
    expect(download.headers()['content-disposition']).toBe('attachment; filename="the-ticker.log"');
    expect(await download.text()).toMatch(/^tick 0 \d+\n/);

    // Stop from the page stops it: the badge, the head, and the process.
    expect(processesWith(marker).length).toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Stop job' }).click();
    await page.getByRole('button', { name: 'Yes, stop it' }).click();
    await page.locator('.section-head .badge', { hasText: 'STOPPED' }).waitFor({ timeout: 30_000 });
    expect((await head.client.getJob('the-ticker')).status).toBe('STOPPED');
    await expect.poll(() => processesWith(marker).length, { timeout: 15_000 }).toBe(0);
    await page.getByText('complete', { exact: true }).waitFor();

    // Resubmit: the same job under a new id, on its own page.
    await page.getByRole('button', { name: 'Resubmit as a new job' }).click();
    await page.waitForURL((u) => u.pathname.startsWith('/jobs/') && !u.pathname.endsWith('/the-ticker'));
    const newId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2] as string);
    const again = await head.client.getJob(newId);
    expect(again).toMatchObject({ submission_id: newId, entrypoint: tickerEntrypoint(marker), metadata: { team: 'vision' } });
    await head.client.stopJob(newId);
    expect(browser.errors).toEqual([]);
  });

  it('logs in by form, logs out, and shows nothing of the cluster without a session', async () => {
    const head = await startHead({ numCpus: 1 });
    await head.client.submitJob({ submission_id: 'private-job-7', entrypoint: 'echo private', entrypoint_num_cpus: 100, raysub: { wait_for_capacity: true } });
    const user = await head.client.createToken({ kind: 'user', name: 'alice' });
    const browser = await launchBrowser(chromiumPath as string);
    const page = await browser.page();

    // Ending on '/': after logging in, the page shown is the one asked for (here the jobs).
    for (const url of ['/jobs/private-job-7', '/nodes', '/']) {
      await page.goto(new URL(url, head.url).toString());
      await page.getByLabel('Token').waitFor();
      const html = await page.content();
      expect(html).not.toContain('private-job-7');
      expect(await page.locator('table, .node, .log').count()).toBe(0);
    }
    await screenshot(page, 'login');

    // A wrong token: a clear message, still nothing shown.
    await page.getByLabel('Token').fill('rsu_not-a-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor();
    expect(await page.content()).not.toContain('private-job-7');

    await page.getByLabel('Token').fill(user.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('table.jobs a', { hasText: 'private-job-7' }).waitFor();
    await page.getByText('alice').waitFor();
    // The token itself is nowhere in the page once used.
    expect(await page.content()).not.toContain(user.token);

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Token').waitFor();
    expect(await page.content()).not.toContain('private-job-7');
    await page.reload();
    await page.getByLabel('Token').waitFor();
    expect(await page.content()).not.toContain('private-job-7');
    expect(browser.errors).toEqual([]);
  });

  it('shows nodes, schedules and their history, and the cluster, at 1280x800 and on a phone', async () => {
    const head = await startHead({ numCpus: 2 });
    await head.client.createSchedule({ name: 'nightly-eval', cron: '0 3 * * *', timezone: 'UTC', job: { entrypoint: 'echo nightly' } });
    await head.client.createSchedule({ name: 'hourly-sync', cron: '17 * * * *', suspend: true, job: { entrypoint: 'echo sync' } });
    const run = await head.client.triggerSchedule('nightly-eval');
    await head.client.waitForJob(run.job_id as string);
    await head.client.submitJob({ submission_id: 'busy-1', entrypoint: 'sleep 30', entrypoint_num_cpus: 1 });
    const browser = await launchBrowser(chromiumPath as string);
    const page = await browser.page();
    await page.goto(await loginLink(head));
    await page.getByRole('heading', { name: 'Jobs' }).waitFor();

    await page.getByRole('link', { name: 'Nodes' }).click();
    await page.locator('.node').first().waitFor();
    await expect.poll(() => page.locator('.node [role="meter"][aria-label="CPUs"]').first().getAttribute('aria-valuenow')).toBe('1');
    await screenshot(page, 'nodes', { docs: true });

    await page.getByRole('link', { name: 'Schedules' }).click();
    await page.getByRole('link', { name: 'nightly-eval', exact: true }).waitFor();
    await screenshot(page, 'schedules', { docs: true });
    await page.getByRole('link', { name: 'nightly-eval', exact: true }).click();
    await page.getByRole('heading', { name: 'History' }).waitFor();
    await page.locator('table', { hasText: run.job_id as string }).waitFor();
    // Pause from the page, then resume.
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    expect((await head.client.getSchedule('nightly-eval')).suspended).toBe(true);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    expect((await head.client.getSchedule('nightly-eval')).suspended).toBe(false);
    await screenshot(page, 'schedule');

    await page.getByRole('link', { name: 'Cluster' }).click();
    await page.locator('figure.chart').first().waitFor();
    await screenshot(page, 'cluster');

    // Keyboard: the skip link, then the navigation, reach their targets.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.textContent)).toBe('Skip to content');

    // A phone: the jobs table becomes cards, nothing wider than the screen.
    const phone = await browser.page({ width: 390, height: 844 });
    await phone.goto(new URL('/jobs', head.url).toString());
    await phone.locator('table.jobs a', { hasText: 'busy-1' }).waitFor();
    expect(await phone.evaluate(() => (globalThis as unknown as PageGlobals).document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await screenshot(phone, 'jobs-phone');
    await head.client.stopJob('busy-1');
    expect(browser.errors).toEqual([]);
  });

  it('works behind TLS: a __Host- Secure cookie, and Stop passes the origin checks over HTTPS', async () => {
    const dir = path.join(tempDir('raysub-tls-'), 'tls');
    const made = await runCli(['cert', 'create', '--dir', dir]);
    expect(made.code, made.stderr).toBe(0);
    const head = await startHead({ numCpus: 1, tls: { cert: path.join(dir, 'head.pem'), key: path.join(dir, 'head-key.pem'), ca: path.join(dir, 'ca.pem') } });
    await head.client.submitJob({ submission_id: 'over-https', entrypoint: 'sleep 60' });
    const browser = await launchBrowser(chromiumPath as string, { trustAnyCertificate: true });
    const page = await browser.page();
    const link = await runCli(['dashboard', '--url'], { env: head.env });
    expect(link.stdout.trim()).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/login\?code=[A-Za-z0-9_-]+$/);
    await page.goto(link.stdout.trim());
    await page.locator('table.jobs a', { hasText: 'over-https' }).click();
    const [cookie] = await browser.context.cookies();
    expect(cookie).toMatchObject({ name: '__Host-raysub_session', httpOnly: true, sameSite: 'Strict', secure: true, path: '/' });
    await page.locator('.section-head .badge', { hasText: 'RUNNING' }).waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Stop job' }).click();
    await page.getByRole('button', { name: 'Yes, stop it' }).click();
    await page.locator('.section-head .badge', { hasText: 'STOPPED' }).waitFor({ timeout: 30_000 });
    expect((await head.client.getJob('over-https')).status).toBe('STOPPED');
    expect(browser.errors).toEqual([]);
  });
});
