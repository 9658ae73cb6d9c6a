/**
 * A real browser for the dashboard's tests: Debian's chromium, driven over CDP by playwright-core
 * (which never downloads a browser of its own), headless, in a fresh profile removed when the test
 * ends. Screenshots go to an artefacts directory that outlives the test run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { onTestFinished } from 'vitest';
import { tempDir } from './cluster.js';

/** The system's chromium, found on PATH (null when it is not installed). */
export function findChromium(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      const file = path.join(dir, name);
      try {
        fs.accessSync(file, fs.constants.X_OK);
        return file;
      } catch {
        // not here
      }
    }
  }
  return null;
}

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Where screenshots are kept: $RAYSUB_TEST_ARTEFACTS, or raysub-test-artefacts in the temp dir. */
export function artefactsDir(): string {
  const dir = process.env.RAYSUB_TEST_ARTEFACTS ?? path.join(os.tmpdir(), 'raysub-test-artefacts', 'dashboard');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export interface Browser {
  context: BrowserContext;
  /** A new page (tab) in this profile; its console errors and page errors are collected. */
  page(viewport?: { width: number; height: number }): Promise<Page>;
  /** Page errors seen so far (a test asserts there were none). */
  errors: string[];
}

/**
 * Launch chromium with a fresh profile; closed (and the profile removed) when the test ends.
 * `trustAnyCertificate`: for a head serving HTTPS with a test CA the browser does not know.
 */
export async function launchBrowser(executablePath: string, opts: { trustAnyCertificate?: boolean } = {}): Promise<Browser> {
  const profile = tempDir('raysub-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: false,
    ignoreHTTPSErrors: opts.trustAnyCertificate ?? false,
  });
  onTestFinished(() => context.close());
  const errors: string[] = [];
  const watch = (p: Page): Page => {
    p.on('pageerror', (e) => errors.push(e.message));
    return p;
  };
  for (const p of context.pages()) watch(p);
  return {
    context,
    errors,
    async page(viewport) {
      const p = watch(await context.newPage());
      if (viewport) await p.setViewportSize(viewport);
      return p;
    },
  };
}

/** A screenshot kept in the artefacts dir (and, with RAYSUB_UPDATE_DOCS_SCREENSHOTS=1, in docs/images). */
export async function screenshot(page: Page, name: string, opts: { fullPage?: boolean; docs?: boolean } = {}): Promise<string> {
  const file = path.join(artefactsDir(), `${name}.png`);
  await page.screenshot({ path: file, fullPage: opts.fullPage ?? false });
  if (opts.docs && process.env.RAYSUB_UPDATE_DOCS_SCREENSHOTS === '1') {
    const docs = path.resolve(import.meta.dirname, '..', '..', 'docs', 'images');
    fs.mkdirSync(docs, { recursive: true });
    fs.copyFileSync(file, path.join(docs, `dashboard-${name}.png`));
  }
  return file;
}
