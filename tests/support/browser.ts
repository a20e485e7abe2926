/**
 * A real headless Chromium for the browser tests, driven by playwright-core: Debian's
 * `/usr/bin/chromium` (CI installs it; see .ci/run), a fresh empty profile per browser, no
 * network but the servers the test starts. Not exported from mod.ts, so only the browser tests
 * load playwright.
 *
 * @module
 */

import { type BrowserContext, chromium } from "playwright-core";

/** Where Debian's chromium package puts the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Flags for a quiet, offline, sandbox-free (root in CI) headless Chromium. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A running browser with its own profile; disposing it closes the browser and removes both. */
export interface TestBrowser extends AsyncDisposable {
  /** The browser context (one profile: storage persists across pages and reloads). */
  readonly context: BrowserContext;
  /** The profile directory. */
  readonly profileDir: string;
}

/**
 * Starts Chromium with a new empty profile. Throws (the test fails, it is not skipped) when
 * Chromium is not installed.
 *
 * @example
 * ```ts ignore
 * await using browser = await launchChromium();
 * const page = await browser.context.newPage();
 * ```
 */
export async function launchChromium(
  options: { viewport?: { width: number; height: number } } = {},
): Promise<TestBrowser> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch (cause) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: run \`apt-get install -y chromium\` as root ` +
        `(.ci/run does it when it is missing)`,
      { cause },
    );
  }
  const profileDir = await Deno.makeTempDir({ prefix: "socp_test_chromium_" });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      acceptDownloads: true,
      viewport: options.viewport ?? { width: 1280, height: 800 },
    });
  } catch (error) {
    await Deno.remove(profileDir, { recursive: true }).catch(() => {});
    throw error;
  }
  let disposed = false;
  return {
    context,
    profileDir,
    async [Symbol.asyncDispose](): Promise<void> {
      if (disposed) return;
      disposed = true;
      await context.close().catch(() => {});
      await Deno.remove(profileDir, { recursive: true }).catch(() => {});
    },
  };
}
