import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IndexEntry } from '../../src/index/index-file.js';
import { buildCatalog, lineFacts } from '../../src/web/catalog.js';
import { escapeHtml, html, safeHttpUrl } from '../../src/web/html.js';
import { renderModulePage, type VersionRow } from '../../src/web/pages/module-page.js';
import type { WebContext } from '../../src/web/web-context.js';

test('html escapes every interpolation and keeps nested html as is', () => {
  const hostile = `<script>alert("x")</script> & 'q'`;
  assert.equal(escapeHtml(hostile), '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;');
  const out = html`<p title="${hostile}">${hostile}${html`<b>${'<i>'}</b>`}${[1, '<', null, undefined, false]}</p>`;
  assert.equal(
    out.value,
    `<p title="${escapeHtml(hostile)}">${escapeHtml(hostile)}<b>&lt;i&gt;</b>1&lt;</p>`,
  );
  // A plain object is text, not markup, even when it claims to be.
  assert.equal(html`${{ value: '<x>' } as unknown as string}`.value, '[object Object]');
});

test('safeHttpUrl keeps only absolute http(s) URLs without credentials', () => {
  assert.equal(safeHttpUrl('https://github.com/moonbitlang/x'), 'https://github.com/moonbitlang/x');
  assert.equal(safeHttpUrl(' http://example.com/a"b '), 'http://example.com/a%22b');
  for (const bad of [
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    'data:text/html,<script>',
    'git@github.com:a/b.git',
    'github.com/a/b',
    '/user/a/b',
    'https://user:secret@example.com/',
    'https:://github.com/x',
    42,
    undefined,
  ]) {
    assert.equal(safeHttpUrl(bad), undefined, String(bad));
  }
});

test('a hostile index line renders as text on the module page', async () => {
  const raw = JSON.stringify({
    name: 'evil/mod',
    version: '1.0.0',
    checksum: 'a'.repeat(64),
    description: '<script>alert(1)</script>',
    keywords: ['"><img src=x onerror=alert(1)>'],
    license: "<b>MIT</b>' onmouseover='x",
    repository: 'javascript:alert(1)',
    homepage: 'https://ok.example/"><script>',
    deprecated: '</p><script>bad()</script>',
    created_at: '2026-01-02T03:04:05+00:00',
  });
  const entry: IndexEntry = { module: 'evil/mod', version: '1.0.0', checksum: 'a'.repeat(64), deps: [], raw };
  const ctx: WebContext = {
    registryName: '<Reg & "co">',
    publicUrl: 'http://127.0.0.1:1',
    mode: 'mirror',
    snapshot: async () => ({ commit: 'c', modules: new Map([['evil/mod', new Map([['1.0.0', entry]])]]) }),
    sourceOf: async () => '<src>',
    isStored: async () => true,
    status: async () => {
      throw new Error('unused');
    },
  };
  const catalog = await buildCatalog(ctx, await ctx.snapshot());
  const row: VersionRow = { entry, facts: lineFacts(raw), source: '<src>', stored: true };
  const page = renderModulePage(ctx, catalog, 'evil/mod', [row], row).value;
  assert.doesNotMatch(page, /<script>|<img|<b>|href="javascript:|onmouseover='/);
  assert.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(page, /&lt;Reg &amp; &quot;co&quot;&gt;/);
  // The homepage is an http(s) URL, so it is linked, percent-encoded by the URL parser.
  assert.match(page, /href="https:\/\/ok\.example\/%22%3E%3Cscript%3E"/);
});
