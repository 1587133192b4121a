/**
 * Debian Chromium driven by playwright-core (never a downloaded browser). Host names under example.test
 * resolve to 127.0.0.1 inside the browser only, so real Caddy host routing works without DNS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from './argos.ts';

export const CHROMIUM = process.env.ARGOS_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'screenshots');

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: run \`npm test\` as root (its pretest installs the Debian chromium package) or apt-get install chromium`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP *.example.test 127.0.0.1, EXCLUDE localhost',
    ],
    env: { ...process.env, HOME: fs.mkdtempSync(path.join(os.tmpdir(), 'argos-chromium-home-')) },
  });
}

/** Where a screenshot goes: test-artifacts/screenshots/<name>.png (CI keeps them). */
export const shot = (name: string) => path.join(ARTIFACTS, `${name}.png`);

/**
 * A page screenshot (an artifact, never an assertion), retried once: headless Chromium now and then has no
 * compositor frame ready and answers "Unable to capture screenshot"; a moment later it has one.
 */
export async function screenshot(page: Page, opts: NonNullable<Parameters<Page['screenshot']>[0]>): Promise<void> {
  try {
    await page.screenshot(opts);
  } catch (e) {
    if (!(e instanceof Error && e.message.includes('Unable to capture screenshot'))) throw e;
    await new Promise((r) => setTimeout(r, 250));
    await page.screenshot(opts);
  }
}
