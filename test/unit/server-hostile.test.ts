/**
 * Hostile requests against the server, one table row each, sent over a bare socket so that
 * nothing on the way normalises them. Every row must get a 4xx; no response may carry a byte
 * of the canary files planted outside data/ (or of registry.toml, git's files, /etc/passwd);
 * and afterwards the server still serves archives and clones, with no git left running.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { archiveUrl } from '../../src/core/archive-url.js';
import type { Registry } from '../../src/registry/registry.js';
import { type RunningServer, startServer } from '../../src/server/server.js';
import { git } from '../support/git.js';
import { exchange, formatRequest, type RawRequest } from '../support/raw-http.js';
import {
  archiveBytes,
  CORE,
  CORE_BUILD,
  countUploadPacks,
  createTestRegistry,
  LS_REFS,
  MARKER,
  pkt,
  waitFor,
} from '../support/test-registry.js';

interface Row {
  name: string;
  request: RawRequest | { raw: Buffer | string };
  /** The status, or an inclusive range; every one is a 4xx. */
  expect: number | readonly [number, number];
}

const ANY_4XX = [400, 499] as const;
/** What Node answers itself for a request it cannot parse (400) or whose head is too large (431). */
const NODE_REJECTS = [400, 431] as const;

const get = (target: string, headers?: Array<[string, string]>): RawRequest => ({
  method: 'GET',
  target,
  headers,
});

// ---------------------------------------------------------------------------------------------
// `..` in every encoding, and every separator, under each route that reads something.

const DOT_DOTS: Array<[string, string]> = [
  ['plain', '..'],
  ['%2e%2e', '%2e%2e'],
  ['%2E%2E', '%2E%2E'],
  ['.%2e', '.%2e'],
  ['%2e.', '%2e.'],
  ['double-encoded %252e', '%252e%252e'],
  ['overlong 2-byte UTF-8 %c0%ae', '%c0%ae%c0%ae'],
  ['overlong 3-byte UTF-8 %e0%80%ae', '%e0%80%ae%e0%80%ae'],
  ['overlong 4-byte UTF-8 %f0%80%80%ae', '%f0%80%80%ae%f0%80%80%ae'],
  ['IIS %u002e', '%u002e%u002e'],
  ['fullwidth dot U+FF0E', '%ef%bc%8e%ef%bc%8e'],
  ['one-dot leader U+2024', '%e2%80%a4%e2%80%a4'],
  ['NUL-terminated ..%00', '..%00'],
  ['space-padded ..%20', '..%20'],
  ['four dots', '....'],
  ['Tomcat-style ..;', '..;'],
];

const SEPARATORS: Array<[string, string]> = [
  ['/', '/'],
  ['%2f', '%2f'],
  ['%2F', '%2F'],
  ['%5c', '%5c'],
  ['raw backslash', '\\'],
  ['double-encoded %252f', '%252f'],
  ['overlong 2-byte %c0%af', '%c0%af'],
  ['overlong 3-byte %e0%80%af', '%e0%80%af'],
  ['overlong backslash %c1%9c', '%c1%9c'],
];

/** From data/packages/<owner>/<name>/ four levels up reaches the temp root. */
const up = (dd: string, sep: string, levels = 4) => Array.from({ length: levels }, () => dd + sep).join('');

const traversalRows: Row[] = [
  ...DOT_DOTS.map(
    ([name, dd]): Row => ({
      name: `${name} in a module path`,
      request: get(`/user/${up(dd, '/')}canary.txt`),
      expect: 404,
    }),
  ),
  ...DOT_DOTS.map(
    ([name, dd]): Row => ({
      name: `${name} in an encoded archive path`,
      request: get(`/user/${up(dd, '%2F')}registry.toml%2F1.0.0.zip`),
      expect: 404,
    }),
  ),
  ...SEPARATORS.map(
    ([name, sep]): Row => ({
      name: `.. with separator ${name} in an archive path`,
      request: get(`/user/moonbitlang${sep}${up('..', sep)}canary${sep}1.0.0.zip`),
      expect: 404,
    }),
  ),
  ...SEPARATORS.map(
    ([name, sep]): Row => ({
      name: `.. with separator ${name} under /git/index`,
      request: get(`/git/index/${up('..', sep, 3)}canary.txt`),
      expect: 404,
    }),
  ),
  { name: '.. at the root', request: get('/../canary.txt'), expect: 404 },
  { name: '%2e%2e at the root', request: get('/%2e%2e/%2e%2e/canary.txt'), expect: 404 },
  { name: '.. under /assets', request: get('/assets/../../registry.toml'), expect: 404 },
  {
    name: '.. before info/refs',
    request: get('/git/x/../index/info/refs?service=git-upload-pack'),
    expect: 404,
  },
  { name: '.. into the git dir', request: get('/user/..%2F..%2Findex%2Fconfig'), expect: 404 },
  { name: '.. inside a valid version', request: get(`/user/${CORE}/..%2F0.1.0.zip`), expect: 404 },
  { name: '.. in the query', request: get('/health/../../../canary.txt?x=../../registry.toml'), expect: 404 },
];

// ---------------------------------------------------------------------------------------------
// NUL, broken or overlong encodings, absolute paths, backslashes, huge targets.

const pathRows: Row[] = [
  { name: '%00 inside a version', request: get(`/user/${CORE}/0.1.0%00.zip`), expect: 404 },
  { name: '%00 inside a module name', request: get('/user/moonbitlang%00/core/0.1.0.zip'), expect: 404 },
  { name: '%00 after .zip', request: get(`/user/${CORE}/0.1.0.zip%00`), expect: 404 },
  { name: '%00 after /health', request: get('/health%00'), expect: 404 },
  { name: '%00 in info/refs', request: get('/git/index/info/refs%00?service=git-upload-pack'), expect: 404 },
  {
    name: 'raw NUL byte in the target',
    request: { raw: 'GET /user/a\0b HTTP/1.1\r\nHost: x\r\n\r\n' },
    expect: 400,
  },
  {
    name: 'raw high bytes in the target',
    request: { raw: Buffer.from('GET /user/\xc0\xae\xc0\xae/x HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1') },
    expect: ANY_4XX,
  },
  { name: 'invalid %-escape %zz', request: get('/user/%zz/x/1.0.0.zip'), expect: 404 },
  { name: 'truncated %-escape', request: get('/user/moonbitlang/core/0.1.0.zip%'), expect: 404 },
  { name: 'lone surrogate %ed%a0%80', request: get('/user/%ed%a0%80/x/1.0.0.zip'), expect: 404 },
  { name: 'invalid UTF-8 %ff', request: get('/user/%ff%fe/x'), expect: 404 },
  { name: 'encoded absolute path', request: get('/user/%2Fetc%2Fpasswd/1.0.0.zip'), expect: 404 },
  { name: 'double slash absolute path', request: get('/user//etc/passwd/1.0.0.zip'), expect: 404 },
  { name: 'leading //', request: get('//etc/passwd'), expect: 404 },
  { name: 'absolute-form target', request: get('http://127.0.0.1/registry.toml'), expect: 400 },
  { name: 'absolute-form target with ..', request: get('http://evil.example/../canary.txt'), expect: 400 },
  { name: 'file: URL target', request: get('file:///etc/passwd'), expect: 400 },
  { name: 'asterisk-form target', request: get('*'), expect: 400 },
  { name: 'relative target', request: get('registry.toml'), expect: 400 },
  { name: 'Windows drive path', request: get('/user/C:%5CWindows%5Cwin.ini/x/1.0.0.zip'), expect: 404 },
  { name: 'raw Windows drive path', request: get('/C:\\Windows\\win.ini'), expect: 404 },
  { name: 'UNC path', request: get('/user/%5c%5cserver%5cshare/x/1.0.0.zip'), expect: 404 },
  { name: 'raw backslashes under /user', request: get('/user/moonbitlang\\core\\0.1.0.zip'), expect: 404 },
  { name: 'raw backslashes under /git', request: get('/git\\index\\config'), expect: 404 },
  { name: 'the registry file', request: get('/registry.toml'), expect: 404 },
  { name: 'the data folder', request: get('/data/index/config'), expect: 404 },
  { name: 'the canary by name', request: get('/canary.txt'), expect: 404 },
  { name: 'dumb-protocol HEAD', request: get('/git/index/HEAD'), expect: 404 },
  { name: 'dumb-protocol objects', request: get('/git/index/objects/info/packs'), expect: 404 },
  { name: 'dumb-protocol info/refs', request: get('/git/index/info/refs'), expect: 404 },
  { name: 'path of 8 KiB', request: get(`/user/${'a/'.repeat(4096)}1.0.0.zip`), expect: 404 },
  { name: 'path of 64 KiB', request: get(`/user/${'a'.repeat(64 * 1024)}`), expect: NODE_REJECTS },
  { name: 'path of 1 MiB', request: get(`/${'x'.repeat(1024 * 1024)}`), expect: NODE_REJECTS },
  {
    name: '10 000 ../ segments',
    request: get(`/user/${'../'.repeat(10_000)}etc/passwd`),
    expect: NODE_REJECTS,
  },
  { name: 'query of 64 KiB', request: get(`/health?${'q=1&'.repeat(16 * 1024)}`), expect: NODE_REJECTS },
];

// ---------------------------------------------------------------------------------------------
// Headers: oversized, malformed, smuggling attempts.

const manyHeaders = Array.from({ length: 2000 }, (_, i): [string, string] => [`X-H${i}`, 'vvvvvvvv']);

const headerRows: Row[] = [
  { name: 'one header of 20 KiB', request: get('/health', [['X-Big', 'a'.repeat(20 * 1024)]]), expect: 431 },
  {
    name: 'one header of 1 MiB',
    request: get('/health', [['Cookie', 'c'.repeat(1024 * 1024)]]),
    expect: 431,
  },
  { name: '2000 small headers', request: get('/health', manyHeaders), expect: 431 },
  {
    name: 'CR LF injected in a header',
    request: { raw: 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n' },
    expect: 400,
  },
  {
    name: 'obsolete line folding',
    request: { raw: 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n' },
    expect: 400,
  },
  {
    name: 'space before the colon',
    request: { raw: 'GET /health HTTP/1.1\r\nHost : x\r\n\r\n' },
    expect: 400,
  },
  {
    name: 'NUL in a header value',
    request: { raw: 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n' },
    expect: 400,
  },
  {
    name: 'header without a colon',
    request: { raw: 'GET /health HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n' },
    expect: 400,
  },
  { name: 'no Host header', request: { raw: 'GET /registry.toml HTTP/1.1\r\n\r\n' }, expect: 400 },
  // Node takes the first Host: the path is what gets refused.
  {
    name: 'two Host headers',
    request: get('/registry.toml', [
      ['Host', 'a'],
      ['Host', 'b'],
    ]),
    expect: 404,
  },
  {
    name: 'Content-Length with Transfer-Encoding',
    request: {
      method: 'POST',
      target: '/git/index/git-upload-pack',
      headers: [
        ['Content-Length', '4'],
        ['Transfer-Encoding', 'chunked'],
      ],
      body: '0\r\n\r\n',
    },
    expect: 400,
  },
  {
    name: 'two different Content-Lengths',
    request: {
      method: 'POST',
      target: '/admin/sync',
      headers: [
        ['Content-Length', '1'],
        ['Content-Length', '2'],
      ],
      body: 'xx',
    },
    expect: 400,
  },
  {
    name: 'non-numeric Content-Length',
    request: { method: 'POST', target: '/admin/sync', headers: [['Content-Length', 'abc']] },
    expect: 400,
  },
  {
    name: 'negative Content-Length',
    request: { method: 'POST', target: '/admin/sync', headers: [['Content-Length', '-1']] },
    expect: 400,
  },
  {
    name: 'bad chunk size',
    request: {
      method: 'POST',
      target: '/git/index/git-upload-pack',
      headers: [['Transfer-Encoding', 'chunked']],
      body: 'zz\r\nhello\r\n0\r\n\r\n',
    },
    expect: 400,
  },
  {
    name: 'unknown Transfer-Encoding',
    request: {
      method: 'POST',
      target: '/git/index/git-upload-pack',
      headers: [['Transfer-Encoding', 'gzip']],
      body: 'x',
    },
    expect: ANY_4XX,
  },
  {
    name: 'bare LF line endings with NUL',
    request: { raw: 'GET /health\0 HTTP/1.1\nHost: x\n\n' },
    expect: 400,
  },
  // Node reads a request line without a version as HTTP/0.9 and answers in HTTP/1.1.
  { name: 'HTTP/0.9-style request line', request: { raw: 'GET /registry.toml\r\n\r\n' }, expect: 404 },
  {
    name: 'garbage request line',
    request: { raw: '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n' },
    expect: 400,
  },
];

// ---------------------------------------------------------------------------------------------
// Methods where they do not belong (405 on a route, 404 off one, 400 when Node cannot parse).

const methodRows: Row[] = [
  ...(
    [
      ['PUT', '/'],
      ['DELETE', '/'],
      ['PATCH', '/health'],
      ['OPTIONS', '/health'],
      ['TRACE', '/'],
      ['PUT', `/user/${CORE}/0.1.0.zip`],
      ['DELETE', `/user/${CORE}/0.1.0.zip`],
      ['POST', `/user/${CORE}/0.1.0.zip`],
      ['PROPFIND', `/user/${CORE}`],
      ['POST', '/health'],
      ['GET', '/git/index/git-upload-pack'],
      ['HEAD', '/git/index/git-upload-pack'],
      ['PUT', '/git/index/git-upload-pack'],
      ['POST', '/git/index/info/refs?service=git-upload-pack'],
      ['DELETE', '/git/index/info/refs?service=git-upload-pack'],
      ['GET', '/admin/sync'],
      ['PUT', '/admin/sync'],
    ] as const
  ).map(
    ([method, target]): Row => ({ name: `${method} ${target}`, request: { method, target }, expect: 405 }),
  ),
  { name: 'MKCOL under /git', request: { method: 'MKCOL', target: '/git/index/evil' }, expect: 404 },
  {
    name: 'PUT the registry file',
    request: { method: 'PUT', target: '/registry.toml', body: 'x' },
    expect: 404,
  },
  { name: 'CONNECT', request: { method: 'CONNECT', target: '127.0.0.1:22' }, expect: 405 },
  { name: 'unknown method', request: { method: 'FOO', target: '/health' }, expect: 400 },
  { name: 'lower-case method', request: { method: 'get', target: '/health' }, expect: 400 },
];

// ---------------------------------------------------------------------------------------------
// git: push refused, and upload-pack bodies that are not what a git client sends.

const UPLOAD_PACK = '/git/index/git-upload-pack';
const PACK_TYPE: [string, string] = ['Content-Type', 'application/x-git-upload-pack-request'];
const V2: [string, string] = ['Git-Protocol', 'version=2'];
const GZIP: [string, string] = ['Content-Encoding', 'gzip'];
const uploadPack = (
  body: Buffer | string,
  headers: Array<[string, string]> = [PACK_TYPE, V2],
): RawRequest => ({
  method: 'POST',
  target: UPLOAD_PACK,
  headers,
  body,
});
const lsRefsWith = (args: string) => `${pkt('command=ls-refs\n')}0001${args}0000`;
const UNKNOWN_SHA = '1'.repeat(40);
/** Far more than the default 10 MiB limit once inflated, yet well-formed: git would read it all. */
const gzipBomb = () =>
  gzipSync(
    Buffer.concat([
      Buffer.from(`${pkt('command=ls-refs\n')}0001`),
      Buffer.alloc(64 * 1024 * 1024, pkt('ref-prefix refs/a\n')),
    ]),
  );
const chunked = (body: Buffer) =>
  Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
const elevenMiB = () => Buffer.from(lsRefsWith(pkt('ref-prefix refs/a\n').repeat(700_000)));

const gitRows: Row[] = [
  {
    name: 'receive-pack advertisement',
    request: get('/git/index/info/refs?service=git-receive-pack'),
    expect: 403,
  },
  {
    name: 'receive-pack POST',
    request: {
      method: 'POST',
      target: '/git/index/git-receive-pack',
      headers: [['Content-Type', 'application/x-git-receive-pack-request']],
      body: '0000',
    },
    expect: 403,
  },
  { name: 'receive-pack GET', request: get('/git/index/git-receive-pack'), expect: 403 },
  {
    name: 'receive-pack first of two services',
    request: get('/git/index/info/refs?service=git-receive-pack&service=git-upload-pack'),
    expect: 403,
  },
  { name: 'receive-pack with an encoded name', request: get('/git/index/git%2dreceive-pack'), expect: 404 },
  {
    name: 'receive-pack under another repository',
    request: { method: 'POST', target: '/git/other/git-receive-pack', body: '0000' },
    expect: 404,
  },
  {
    name: 'service name in upper case',
    request: get('/git/index/info/refs?service=GIT-RECEIVE-PACK'),
    expect: 404,
  },
  {
    name: 'service name with %00',
    request: get('/git/index/info/refs?service=git-upload-pack%00'),
    expect: 404,
  },
  { name: 'upload-pack without Content-Type', request: uploadPack(LS_REFS, [V2]), expect: 415 },
  {
    name: 'upload-pack with the receive-pack type',
    request: uploadPack(LS_REFS, [['Content-Type', 'application/x-git-receive-pack-request'], V2]),
    expect: 415,
  },
  {
    name: 'upload-pack with Content-Encoding br',
    request: uploadPack(LS_REFS, [PACK_TYPE, V2, ['Content-Encoding', 'br']]),
    expect: 415,
  },
  {
    name: 'upload-pack with Content-Encoding gzip, gzip',
    request: uploadPack(gzipSync(gzipSync(LS_REFS)), [PACK_TYPE, V2, ['Content-Encoding', 'gzip, gzip']]),
    expect: 415,
  },
  { name: 'pkt-line: empty body', request: uploadPack(''), expect: 400 },
  { name: 'pkt-line: non-hex length', request: uploadPack('zzzz'), expect: 400 },
  { name: 'pkt-line: NUL bytes', request: uploadPack(Buffer.alloc(16)), expect: 400 },
  { name: 'pkt-line: length 3', request: uploadPack('0003'), expect: 400 },
  { name: 'pkt-line: response-end 0002 from a client', request: uploadPack('0002'), expect: 400 },
  { name: 'pkt-line: length over 65520', request: uploadPack(`fff9${'a'.repeat(65525)}`), expect: 400 },
  { name: 'pkt-line: truncated packet', request: uploadPack('0032want'), expect: 400 },
  { name: 'pkt-line: truncated length', request: uploadPack(`${pkt('command=ls-refs\n')}00`), expect: 400 },
  { name: 'pkt-line: only a flush', request: uploadPack('0000'), expect: 400 },
  { name: 'pkt-line: no final flush', request: uploadPack(pkt('command=ls-refs\n')), expect: 400 },
  {
    name: 'pkt-line: garbage after a valid request',
    request: uploadPack(Buffer.concat([LS_REFS, Buffer.from('garbage')])),
    expect: 400,
  },
  { name: 'pkt-line: unknown v2 command', request: uploadPack(`${pkt('command=bogus\n')}0000`), expect: 400 },
  {
    name: 'pkt-line: v2 fetch of an unknown object',
    request: uploadPack(`${pkt('command=fetch\n')}0001${pkt(`want ${UNKNOWN_SHA}\n`)}${pkt('done\n')}0000`),
    expect: 400,
  },
  {
    name: 'pkt-line: v0 want of an unknown object',
    request: uploadPack(`${pkt(`want ${UNKNOWN_SHA}\n`)}0000${pkt('done\n')}`, [PACK_TYPE]),
    expect: 400,
  },
  { name: 'pkt-line: v2 request as v0', request: uploadPack(LS_REFS, [PACK_TYPE]), expect: 400 },
  {
    name: 'pkt-line: hostile Git-Protocol',
    request: uploadPack(LS_REFS, [PACK_TYPE, ['Git-Protocol', 'version=2;$(touch x)']]),
    expect: 400,
  },
  { name: 'gzip: not gzip', request: uploadPack('definitely not gzip', [PACK_TYPE, V2, GZIP]), expect: 400 },
  {
    name: 'gzip: truncated',
    request: uploadPack(gzipSync(LS_REFS).subarray(0, 20), [PACK_TYPE, V2, GZIP]),
    expect: 400,
  },
  {
    name: 'gzip: bad CRC',
    request: uploadPack(
      (() => {
        const body = Buffer.from(gzipSync(LS_REFS));
        body[body.length - 5] = (body[body.length - 5] ?? 0) ^ 0xff;
        return body;
      })(),
      [PACK_TYPE, V2, GZIP],
    ),
    expect: 400,
  },
  {
    name: 'gzip: of an empty body',
    request: uploadPack(gzipSync(Buffer.alloc(0)), [PACK_TYPE, V2, GZIP]),
    expect: 400,
  },
  {
    name: 'gzip: of malformed pkt-lines',
    request: uploadPack(gzipSync('zzzz0000'), [PACK_TYPE, V2, GZIP]),
    expect: 400,
  },
  {
    name: 'gzip: twice, declared once',
    request: uploadPack(gzipSync(gzipSync(LS_REFS)), [PACK_TYPE, V2, GZIP]),
    expect: 400,
  },
  {
    name: 'gzip: bomb of NUL bytes',
    request: uploadPack(gzipSync(Buffer.alloc(32 * 1024 * 1024)), [PACK_TYPE, V2, GZIP]),
    expect: 400,
  },
  {
    name: 'gzip: bomb of well-formed packets',
    request: uploadPack(gzipBomb(), [PACK_TYPE, V2, GZIP]),
    expect: 413,
  },
  {
    name: 'body: Content-Length over the limit',
    request: {
      raw: formatRequest({
        method: 'POST',
        target: UPLOAD_PACK,
        headers: [PACK_TYPE, V2, ['Content-Length', String(1024 ** 3)]],
      }),
    },
    expect: 413,
  },
  {
    name: 'body: chunked, over the limit',
    request: uploadPack(chunked(elevenMiB()), [PACK_TYPE, V2, ['Transfer-Encoding', 'chunked']]),
    expect: 413,
  },
];

const ROWS: Row[] = [...traversalRows, ...pathRows, ...headerRows, ...methodRows, ...gitRows];

describe('server: hostile requests', () => {
  let root: string;
  let registry: Registry;
  let server: RunningServer;
  const canaries: string[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-hostile-'));
    const registryDir = join(root, 'registry');
    await mkdir(registryDir);
    ({ registry } = await createTestRegistry(registryDir));
    // Outside data/: next to registry.toml, and at the root of the temp dir.
    for (const dir of [registryDir, root]) {
      const canary = `CANARY-${randomUUID()}`;
      canaries.push(canary);
      await writeFile(join(dir, 'canary.txt'), `${canary}\n`);
    }
    server = await startServer(registry, { host: '127.0.0.1', port: 0, logger: false });
  });

  after(async () => {
    await server?.close();
    await rm(root, { recursive: true, force: true });
  });

  test(`the table has at least 100 rows with unique names (${ROWS.length})`, () => {
    assert.ok(ROWS.length >= 100, String(ROWS.length));
    assert.equal(new Set(ROWS.map((row) => row.name)).size, ROWS.length);
  });

  for (const row of ROWS) {
    test(row.name, async () => {
      const bytes = 'raw' in row.request ? row.request.raw : formatRequest(row.request);
      const reply = await exchange(server.port, bytes);
      const [low, high] = typeof row.expect === 'number' ? [row.expect, row.expect] : row.expect;
      assert.ok(low >= 400 && high <= 499, 'rows expect 4xx only');
      assert.ok(
        reply.status >= low && reply.status <= high,
        `expected ${low}-${high}, got ${reply.status} (${reply.end}): ${reply.bytes.toString('latin1', 0, 300)}`,
      );
      const text = reply.bytes.toString('latin1');
      for (const canary of canaries) assert.ok(!text.includes(canary), 'a canary outside data/ leaked');
      assert.ok(!text.includes(MARKER), 'registry.toml leaked');
      assert.ok(!text.includes('repositoryformatversion'), 'git config leaked');
      assert.ok(!text.includes('ref: refs/heads'), 'git HEAD leaked');
      assert.ok(!text.includes('root:x:0:0'), '/etc/passwd leaked');
      // Still serving after every row.
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
    });
  }

  test('afterwards: no git left running, /health, an archive download and a clone work', async () => {
    await waitFor(() => countUploadPacks(registry.layout.indexDir) === 0, 'git upload-pack to exit');
    const health = (await (await fetch(`${server.url}/health`)).json()) as {
      status: string;
      git: { running: number; queued: number };
    };
    assert.equal(health.status, 'ok');
    assert.deepEqual({ running: health.git.running, queued: health.git.queued }, { running: 0, queued: 0 });
    const archive = await fetch(archiveUrl(server.url, CORE, CORE_BUILD));
    assert.equal(archive.status, 200);
    assert.deepEqual(Buffer.from(await archive.arrayBuffer()), archiveBytes(CORE, CORE_BUILD));
    const dir = join(root, 'clone');
    await git(['clone', '--depth', '1', '--single-branch', '--no-tags', `${server.url}/git/index`, dir]);
    assert.ok((await readFile(join(dir, 'user', 'moonbitlang', 'core.index'), 'utf8')).includes(CORE_BUILD));
  });
});
