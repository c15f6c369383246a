/**
 * The web UI in a real browser (Debian's Chromium driven by playwright-core): a registry holding
 * part of the real index snapshot (moonbitlang/*, mizchi/*, illusory0x0/* and their
 * dependencies) from a "public" source, plus an "internal" source with acme/* modules and one
 * hostile module, served by the real CLI. The browser searches, filters, opens modules, follows
 * a dependency, reads the status page, and must never leave loopback. Screenshots of the pages
 * go to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (`npm run docs:screenshots`), to a temp
 * folder otherwise, so that a test run leaves the work tree as it was.
 */
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import semver from 'semver';
import { chromiumOrSkip } from '../support/chromium.js';
import { initRegistryWithSource, type RunningServer, runCliOk, startServe } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, repoRoot } from '../support/fixture.js';

const browserCheck = chromiumOrSkip();
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS
  ? path.join(repoRoot, 'docs', 'screenshots')
  : path.join(os.tmpdir(), `moonbit-registry-screenshots-${process.pid}`);
const REGISTRY_NAME = 'MoonBit Team Registry';
const HOSTILE = 'webtest/hostile';
const HOSTILE_DESCRIPTION = `</p><script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"> "quoted" & 'single'`;

/**
 * Run in the page (a string, as the project compiles without DOM types): the problems found,
 * as a list of strings.
 */
const A11Y_CHECKS = `(() => {
  const found = [];
  if (!document.documentElement.lang) found.push('no lang attribute');
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) found.push(h1 + ' h1 elements');
  for (const landmark of ['header', 'nav', 'main', 'footer']) {
    if (!document.querySelector(landmark)) found.push('no <' + landmark + '>');
  }
  for (const field of document.querySelectorAll('input, select, textarea')) {
    const labelled = field.labels?.length || field.getAttribute('aria-label') || field.getAttribute('aria-labelledby');
    if (!labelled && field.type !== 'hidden') found.push('unlabelled ' + field.outerHTML);
  }
  for (const svg of document.querySelectorAll('svg')) {
    const named =
      svg.getAttribute('aria-hidden') === 'true' ||
      svg.getAttribute('aria-label') ||
      (svg.getAttribute('aria-labelledby') && svg.querySelector(':scope > title'));
    if (!named) found.push('svg without a title or aria-label: ' + svg.outerHTML.slice(0, 80));
  }
  for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) found.push('img without alt');
  for (const control of document.querySelectorAll('button, a')) {
    const name = (control.textContent || '').trim() || control.getAttribute('aria-label');
    if (!name) found.push('control without a name: ' + control.outerHTML.slice(0, 80));
  }
  return found;
})()`;

interface ModuleJson {
  module: string;
  versions: Array<{ version: string; source: string | null; stored: boolean }>;
}

describe('web UI in a browser', { skip: browserCheck.skip }, () => {
  const cleanups: Array<() => Promise<void>> = [];
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  /** Requests the browser tried to send anywhere but the registry. */
  const offsite: string[] = [];
  const pageErrors: string[] = [];

  const getJson = async <T>(urlPath: string): Promise<T> => {
    const response = await fetch(`${server.url}${urlPath}`, { headers: { Accept: 'application/json' } });
    assert.equal(response.status, 200, urlPath);
    return (await response.json()) as T;
  };

  before(async () => {
    const [publicFx, internalFx] = await Promise.all([
      buildFixture(),
      buildFixture({
        flavor: 'internal',
        filter: () => false,
        extraModules: [
          {
            module: 'acme/app',
            version: '0.9.0',
            deps: { 'moonbitlang/x': '0.4.37' },
            fields: { description: 'Our deployment tool', license: 'MIT' },
          },
          {
            module: 'acme/app',
            version: '1.0.0',
            deps: { 'moonbitlang/x': '0.4.38', 'acme/log': '0.1.0' },
            fields: {
              description: 'Our deployment tool',
              license: 'MIT',
              keywords: ['deploy', 'internal'],
              repository: 'https://git.example.com/acme/app',
            },
          },
          { module: 'acme/log', version: '0.1.0', fields: { description: 'Structured logging for acme' } },
          {
            module: HOSTILE,
            version: '0.1.0',
            fields: {
              description: HOSTILE_DESCRIPTION,
              keywords: ['<b>bold</b>', '"><svg onload=alert(1)>'],
              repository: 'javascript:window.__pwned=3',
              homepage: 'data:text/html,<script>alert(1)</script>',
              license: '<i>MIT</i>',
            },
          },
        ],
      }),
    ]);
    cleanups.push(
      () => publicFx.cleanup(),
      () => internalFx.cleanup(),
    );
    const [publicUp, internalUp] = await Promise.all([
      FakeUpstream.start({ fixture: publicFx }),
      FakeUpstream.start({ fixture: internalFx }),
    ]);
    cleanups.push(
      () => publicUp.stop(),
      () => internalUp.stop(),
    );
    const registry = await initRegistryWithSource('public', publicUp.url);
    cleanups.push(registry.remove);
    const cwd = registry.root;
    await runCliOk(['config', 'registry.name', REGISTRY_NAME], { cwd });
    await runCliOk(
      [
        'source',
        'add',
        'internal',
        '--url',
        internalUp.url,
        '--index-url',
        internalUp.indexUrl,
        '--priority',
        '25',
      ],
      { cwd },
    );
    await runCliOk(['mirror', '-q', 'moonbitlang/*', 'mizchi/*', 'illusory0x0/*'], { cwd });
    await runCliOk(['mirror', '-q', '-s', 'internal', 'acme/*', 'webtest/*'], { cwd });
    // Yanked here: the served line is the hosted source's, the bytes still the internal ones.
    await runCliOk(['yank', 'acme/app@0.9.0', '--reason', 'broken deploy'], { cwd });
    server = await startServe(cwd);
    cleanups.push(() => server.stop());

    browser = await chromium.launch({
      executablePath: browserCheck.path as string,
      headless: true,
      args: ['--no-sandbox'],
    });
    cleanups.push(() => browser.close());
    context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
      colorScheme: 'light',
      reducedMotion: 'reduce',
    });
    // Anything not for the registry is recorded and refused: the pages must need nothing else.
    const origin = new URL(server.url).origin;
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (new URL(url).origin === origin) return route.continue();
      offsite.push(url);
      return route.abort();
    });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      // The 404 page is visited on purpose; Chromium logs its status as an error.
      if (message.type() === 'error' && !message.text().includes('status of 404'))
        pageErrors.push(message.text());
    });
    page.on('dialog', (dialog) => {
      pageErrors.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    await mkdir(SCREENSHOTS, { recursive: true });
    if (!process.env.UPDATE_SCREENSHOTS)
      cleanups.push(() => rm(SCREENSHOTS, { recursive: true, force: true }));
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  test('the package list: counts, source badges, search and owner filter', async () => {
    const root = await getJson<{ index: { modules: number; versions: number }; usage: string }>('/');
    await page.goto(`${server.url}/`);
    assert.equal(await page.title(), `Packages · ${REGISTRY_NAME}`);
    const stats = await page.locator('.stats li').allInnerTexts();
    assert.ok(
      stats.some((s) => s.replace(/\s+/g, ' ') === `${root.index.modules} modules`),
      stats.join('|'),
    );
    assert.ok(
      stats.some((s) => s.replace(/\s+/g, ' ') === `${root.index.versions} versions`),
      stats.join('|'),
    );
    assert.equal(await text(page.locator('#results-title')), `All ${root.index.modules} modules`);
    // Every source is shown, with a badge on the modules each one provides; `local` (the
    // hosted source) serves the line of the version yanked here.
    assert.deepEqual(await page.locator('#source option').allInnerTexts(), [
      'All sources',
      expectSourceOption(await text(page.locator('#source option').nth(1)), 'internal'),
      expectSourceOption(await text(page.locator('#source option').nth(2)), 'local'),
      expectSourceOption(await text(page.locator('#source option').nth(3)), 'public'),
    ]);
    // The how-to-use line is this server's own URL, as the JSON answer says.
    assert.equal(await text(page.locator('#use-cmd')), `MOONCAKES_REGISTRY=${server.url} moon update`);
    assert.equal(await text(page.locator('#use-cmd')), root.usage);
    // The README's picture: one owner's modules (the test's hostile module stays out of it).
    await page.goto(`${server.url}/?owner=moonbitlang`);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'packages.png') });
    await page.goto(`${server.url}/`);

    // Search is a GET form: typing and Enter load /?q=...
    await page.fill('#q', 'json');
    await Promise.all([page.waitForURL(/[?&]q=json/), page.press('#q', 'Enter')]);
    const found = await page.locator('.module-item').allInnerTexts();
    assert.ok(found.length > 3, `few results for json: ${found.length}`);
    for (const item of found) assert.match(item.toLowerCase(), /json/);
    assert.match(await text(page.locator('#results-title')), /^\d+ modules? found for “json”$/);

    // The owner filter submits on change (script) and keeps the query.
    await Promise.all([page.waitForURL(/owner=mizchi/), page.selectOption('#owner', 'mizchi')]);
    assert.match(page.url(), /q=json/);
    const owners = await page.locator('.module-item .meta li:first-child a').allInnerTexts();
    assert.ok(owners.length > 0);
    for (const owner of owners) assert.equal(owner, 'mizchi');

    // Filtering by source shows that source's modules, each with its badge.
    await page.goto(`${server.url}/?source=internal`);
    const names = await page.locator('.module-item h3 a').allInnerTexts();
    assert.deepEqual(names.sort(), ['acme/app', 'acme/log', HOSTILE]);
    for (const item of await page.locator('.module-item').all()) {
      // acme/app also shows `local`: the line of its version yanked here.
      assert.ok((await item.locator('.badge.source').allInnerTexts()).includes('internal'));
    }
  });

  test('search works without JavaScript', async () => {
    const plain = await browser.newContext({ javaScriptEnabled: false });
    try {
      await plain.route('**/*', (route) => {
        if (new URL(route.request().url()).origin === new URL(server.url).origin) return route.continue();
        offsite.push(route.request().url());
        return route.abort();
      });
      const p = await plain.newPage();
      await p.goto(`${server.url}/`);
      // No script: the copy buttons stay hidden, the command stays readable.
      assert.equal(await p.locator('button[data-copy]').first().isVisible(), false);
      await p.fill('#q', 'deployment');
      await p.selectOption('#owner', 'acme');
      await Promise.all([p.waitForURL(/owner=acme/), p.click('button[type=submit]')]);
      assert.deepEqual(await p.locator('.module-item h3 a').allInnerTexts(), ['acme/app']);
    } finally {
      await plain.close();
    }
  });

  test('a module page: versions, dependencies, dependents, install line', async () => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await page.goto(`${server.url}/`);
    await page.fill('#q', 'acme/app');
    await Promise.all([page.waitForURL(/q=acme/), page.press('#q', 'Enter')]);
    await Promise.all([
      page.waitForURL(/\/user\/acme\/app$/),
      page.click('.module-item h3 a >> text=acme/app'),
    ]);

    assert.equal(await text(page.locator('h1')), 'acme/app');
    assert.equal(await text(page.locator('#add-cmd')), 'moon add acme/app@1.0.0');
    await page.click('button[data-copy="add-cmd"]');
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), 'moon add acme/app@1.0.0');

    // Versions newest first, each with its date, source and stored archive; 0.9.0 is yanked.
    const info = await getJson<ModuleJson>('/user/acme/app');
    const rows = page.locator('#versions tbody tr');
    const versions = await rows.locator('td:first-child').allInnerTexts();
    assert.deepEqual(versions, info.versions.map((v) => v.version).sort(semver.rcompare));
    for (const [i, row] of (await rows.all()).entries()) {
      assert.match(await text(row.locator('td').nth(1)), /^\d{4}-\d\d-\d\d$/);
      assert.equal(await text(row.locator('.badge.source')), i === 1 ? 'local' : 'internal');
      assert.equal(await text(row.locator('td').nth(3)), 'stored');
    }
    assert.equal(await text(rows.nth(1).locator('.badge.yanked')), 'yanked');
    assert.equal(await rows.nth(1).locator('.badge.yanked').getAttribute('title'), 'broken deploy');
    assert.equal(await page.locator('.facts a[href^="https://git.example.com"]').count(), 1);
    assert.match(await text(page.locator('.facts')), /License\s*MIT/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'module.png') });

    // A dependency link leads to the version `moon` would pick; there, acme/app is a dependent.
    const deps = await page.locator('#dependencies a').allInnerTexts();
    assert.deepEqual(deps.sort(), ['acme/log', 'moonbitlang/x']);
    await Promise.all([
      page.waitForURL(/\/user\/moonbitlang\/x\?version=0\.4\.38$/),
      page.click('#dependencies a >> text=moonbitlang/x'),
    ]);
    assert.equal(await text(page.locator('h1')), 'moonbitlang/x');
    assert.equal(await text(page.locator('#add-cmd')), 'moon add moonbitlang/x@0.4.38');
    assert.equal(await text(page.locator('tr.selected td:first-child')), '0.4.38');
    const dependents = await page.locator('#dependents a').allInnerTexts();
    assert.ok(dependents.includes('acme/app'), dependents.join(', '));
    assert.ok(dependents.length > 5, 'moonbitlang/x has many dependents among the mirrored modules');

    // Deprecated modules say so, with the index line's message.
    await page.goto(`${server.url}/user/mizchi/git`);
    assert.match(await text(page.locator('.notice.deprecated')), /Deprecated\. .*mizchi\/bit/);
    // Unicode names round-trip through links.
    await page.goto(`${server.url}/?owner=illusory0x0`);
    const camel = page.locator('.module-item h3 a', { hasText: '🐫' });
    await Promise.all([page.waitForURL(/\/user\/illusory0x0\//), camel.first().click()]);
    assert.match(await text(page.locator('h1')), /^illusory0x0\/.*🐫/);
  });

  test('hostile index lines are shown as text, never run or linked', async () => {
    await page.goto(`${server.url}/user/${HOSTILE}`);
    assert.equal(await text(page.locator('.lead')), HOSTILE_DESCRIPTION);
    assert.equal(await page.evaluate('window.__pwned'), undefined);
    assert.equal(await page.locator('main script, main img, main b, main i, main svg').count(), 0);
    assert.equal(await page.locator('a[href^="javascript:"], a[href^="data:"]').count(), 0);
    // The repository is still readable as text.
    assert.match(await text(page.locator('.facts')), /javascript:window\.__pwned=3/);
    await page.goto(`${server.url}/?q=${encodeURIComponent('"><script>')}`);
    assert.equal(await page.locator('#q').inputValue(), '"><script>');
    assert.equal(await page.evaluate('window.__pwned'), undefined);
  });

  test('the status page: sources, mirror runs and the downloads chart', async () => {
    // A few downloads for the chart.
    const info = await getJson<ModuleJson>('/user/acme/log');
    for (const v of info.versions) {
      const response = await fetch(`${server.url}/user/acme%2Flog%2F${v.version}.zip`);
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    }
    const report = await getJson<{ sources: Array<{ name: string }>; downloads: unknown[] }>('/status');
    await page.goto(`${server.url}/status`);
    assert.equal(await text(page.locator('h1')), 'Status');
    const sources = await page.locator('#sources tbody th').allInnerTexts();
    for (const s of report.sources)
      assert.ok(
        sources.some((text) => text.startsWith(s.name)),
        s.name,
      );
    assert.ok((await page.locator('#mirror-runs tbody tr').count()) >= 2, 'both mirror runs are listed');
    const chart = page.locator('svg#downloads-chart');
    assert.equal(await chart.getAttribute('role'), 'img');
    assert.equal(await text(chart.locator('title').first()), 'Archive downloads per hour (UTC)');
    const bars = await chart.locator('rect.bar').count();
    assert.equal(bars, report.downloads.length);
    assert.equal(await page.locator('#downloads-table tbody tr').count(), bars);
    assert.equal(await text(page.locator('#use-cmd')), `MOONCAKES_REGISTRY=${server.url} moon update`);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'status.png') });
  });

  test('accessibility basics on every page', async () => {
    for (const urlPath of [
      '/',
      '/?q=json',
      '/user/acme/app',
      '/user/moonbitlang/x',
      '/status',
      '/user/no/such',
    ]) {
      await page.goto(`${server.url}${urlPath}`);
      const problems = (await page.evaluate(A11Y_CHECKS)) as string[];
      assert.deepEqual(problems, [], urlPath);
      // The first Tab reaches the skip link, which moves focus to the content.
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate('document.activeElement?.className'), 'skip-link', urlPath);
      await page.keyboard.press('Enter');
      assert.equal(await page.evaluate('document.activeElement?.id'), 'main', urlPath);
    }
  });

  test('a phone-sized screen scrolls only vertically', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 1,
      isMobile: true,
      hasTouch: true,
      colorScheme: 'light',
    });
    try {
      await phone.route('**/*', (route) => {
        if (new URL(route.request().url()).origin === new URL(server.url).origin) return route.continue();
        offsite.push(route.request().url());
        return route.abort();
      });
      const p = await phone.newPage();
      for (const urlPath of ['/', '/user/acme/app', '/user/moonbitlang/x', '/status', `/user/${HOSTILE}`]) {
        await p.goto(`${server.url}${urlPath}`);
        const [scrollWidth, width] = (await p.evaluate(
          '[document.documentElement.scrollWidth, window.innerWidth]',
        )) as number[];
        assert.ok(scrollWidth !== undefined && width === 390, `${urlPath}: width ${width}`);
        assert.ok(
          scrollWidth <= width,
          `${urlPath}: the page is ${scrollWidth} px wide, the screen ${width}`,
        );
      }
      await p.goto(`${server.url}/?owner=moonbitlang`);
      await p.screenshot({ path: path.join(SCREENSHOTS, 'phone.png') });
    } finally {
      await phone.close();
    }
  });

  test('browsers get HTML; other clients keep the JSON answers', async () => {
    for (const urlPath of ['/', '/user/acme/app']) {
      const json = await fetch(`${server.url}${urlPath}`);
      assert.match(json.headers.get('content-type') ?? '', /^application\/json/);
      const htmlAnswer = await fetch(`${server.url}${urlPath}`, { headers: { Accept: 'text/html' } });
      assert.match(htmlAnswer.headers.get('content-type') ?? '', /^text\/html/);
      assert.equal(htmlAnswer.headers.get('vary'), 'Accept');
      assert.match(htmlAnswer.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    }
    const css = await fetch(`${server.url}/static/style.css`);
    assert.equal(css.status, 200);
    const etag = css.headers.get('etag') ?? '';
    assert.ok(etag);
    const again = await fetch(`${server.url}/static/style.css`, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
    assert.equal((await fetch(`${server.url}/static/../registry.toml`)).status, 404);
    assert.equal((await fetch(`${server.url}/static/nope.css`)).status, 404);
  });

  test('the browser never left the registry and no page logged an error', () => {
    assert.deepEqual(offsite, []);
    assert.deepEqual(pageErrors, []);
  });
});

/** A node's text; the empty string when it has none. */
async function text(locator: Locator): Promise<string> {
  return (await locator.textContent()) ?? '';
}

/** `<name> (<count>)` for the expected name; returns the text so deepEqual shows it on failure. */
function expectSourceOption(text: string, name: string): string {
  assert.match(text, new RegExp(`^${name} \\(\\d+\\)$`));
  return text;
}
