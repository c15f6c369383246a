import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { ConfigSchema } from '../../src/config/schema.js';
import { generateToken, matchToken, presentedSecret, tokenSha256 } from '../../src/core/access-token.js';
import { AddressList, parseAddressBlock } from '../../src/core/ip-address.js';
import { AccessControl } from '../../src/server/access-control.js';

function request(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage;
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

test('address blocks: addresses and CIDR blocks parse; anything else is refused', () => {
  for (const good of ['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', '0.0.0.0/0', '192.168.1.7/32']) {
    assert.ok(parseAddressBlock(good), good);
  }
  for (const bad of [
    '10.0.0.0/33',
    '::1/129',
    'example.com',
    '10.0.0/8',
    '10.0.0.0/',
    '10.0.0.0/8/1',
    '',
    '1.2.3.4/-1',
  ]) {
    assert.equal(parseAddressBlock(bad), undefined, bad);
  }
});

test('address lists match IPv4 clients of dual-stack sockets and never match non-addresses', () => {
  const list = new AddressList(['10.0.0.0/8', 'fd00::/8', '192.168.1.7']);
  assert.ok(list.has('10.200.3.4'));
  assert.ok(list.has('::ffff:10.200.3.4'));
  assert.ok(list.has('fd12::1'));
  assert.ok(list.has('192.168.1.7'));
  assert.ok(!list.has('192.168.1.8'));
  assert.ok(!list.has('11.0.0.1'));
  assert.ok(!list.has('::1'));
  assert.ok(!list.has('not-an-address'));
  assert.ok(!list.has(''));
});

test('presented secrets: bearer, Basic password, or Basic user name alone', () => {
  assert.equal(presentedSecret('Bearer abc'), 'abc');
  assert.equal(presentedSecret('bearer  abc '), 'abc');
  assert.equal(presentedSecret(basic('ci', 'tok:with:colons')), 'tok:with:colons');
  assert.equal(presentedSecret(basic('tok', '')), 'tok');
  for (const none of [
    undefined,
    '',
    'Bearer',
    'Bearer a b',
    'Basic !!!',
    basic('', ''),
    'Digest x',
    `Basic ${Buffer.from('nocolon').toString('base64')}`,
  ]) {
    assert.equal(presentedSecret(none), undefined, String(none));
  }
});

test('tokens: generated with 256 random bits, matched by hash, never by a near miss', () => {
  const a = generateToken();
  const b = generateToken();
  assert.notEqual(a, b);
  assert.match(a, /^mbr_[A-Za-z0-9_-]{43}$/);
  const stored = [
    { name: 'ci', sha256: tokenSha256(a) },
    { name: 'alice', sha256: tokenSha256(b) },
  ];
  assert.equal(matchToken(a, stored), 'ci');
  assert.equal(matchToken(b, stored), 'alice');
  assert.equal(matchToken(`${a}x`, stored), undefined);
  assert.equal(matchToken(a.slice(0, -1), stored), undefined);
  assert.equal(matchToken('', stored), undefined);
  assert.equal(matchToken(a, []), undefined);
});

test('credentials mode: a stored token lets in; allow, when set, limits where from', () => {
  const token = generateToken();
  const tokens = [{ name: 'ci', sha256: tokenSha256(token) }];
  const open = new AccessControl({ mode: 'credentials', allow: [], tokens }, []);
  assert.deepEqual(open.check(request('203.0.113.9', { authorization: basic('x', token) })), {
    client: '203.0.113.9',
    addressAllowed: true,
    authenticated: true,
    user: 'ci',
  });
  assert.equal(open.check(request('203.0.113.9')).authenticated, false);
  assert.equal(open.check(request('203.0.113.9', { authorization: 'Bearer nope' })).authenticated, false);
  const limited = new AccessControl({ mode: 'credentials', allow: ['10.0.0.0/8'], tokens }, []);
  const outside = limited.check(request('203.0.113.9', { authorization: `Bearer ${token}` }));
  assert.equal(outside.addressAllowed, false);
  const inside = limited.check(request('10.0.0.9', { authorization: `Bearer ${token}` }));
  assert.ok(inside.addressAllowed && inside.authenticated);
});

test('allowlist and open modes ignore credentials; update() swaps the rules', () => {
  const control = new AccessControl({ mode: 'allowlist', allow: ['127.0.0.0/8'], tokens: [] }, []);
  assert.deepEqual(control.check(request('127.0.0.1')), {
    client: '127.0.0.1',
    addressAllowed: true,
    authenticated: true,
  });
  assert.equal(control.check(request('10.0.0.1')).addressAllowed, false);
  control.update({ mode: 'open', allow: [], tokens: [] }, []);
  assert.equal(control.check(request('10.0.0.1')).addressAllowed, true);
});

test('client address: X-Forwarded-For only from trusted proxies, read from the right', () => {
  const control = new AccessControl({ mode: 'open', allow: [], tokens: [] }, ['127.0.0.1', '10.9.0.0/16']);
  const cases: Array<[string, string | undefined, string]> = [
    ['203.0.113.9', '10.1.1.1', '203.0.113.9'], // not a proxy: header ignored
    ['127.0.0.1', undefined, '127.0.0.1'],
    ['127.0.0.1', '198.51.100.4', '198.51.100.4'],
    ['::ffff:127.0.0.1', '198.51.100.4', '198.51.100.4'],
    ['127.0.0.1', '10.1.1.1, 198.51.100.4', '198.51.100.4'], // the left entry is the client's own claim
    ['127.0.0.1', '198.51.100.4, 10.9.3.3', '198.51.100.4'], // a chain of trusted proxies
    ['127.0.0.1', '10.9.3.3, 10.9.3.4', '10.9.3.3'], // all trusted: the farthest one
    ['127.0.0.1', 'garbage', 'garbage'],
  ];
  for (const [peer, xff, expected] of cases) {
    const headers: Record<string, string> = xff === undefined ? {} : { 'x-forwarded-for': xff };
    assert.equal(control.clientAddress(request(peer, headers)), expected, `${peer} / ${xff}`);
  }
});

test('[server.access] validation: allowlist needs addresses, open takes none, names are unique', () => {
  const parse = (access: unknown) => ConfigSchema.safeParse({ server: { access } });
  assert.ok(parse({}).success);
  assert.equal(parse({ mode: 'allowlist' }).success, false);
  assert.equal(parse({ mode: 'open', allow: ['10.0.0.0/8'] }).success, false);
  assert.equal(parse({ mode: 'allowlist', allow: ['10.0.0.0/99'] }).success, false);
  const sha256 = tokenSha256('x');
  assert.equal(
    parse({
      mode: 'credentials',
      tokens: [
        { name: 'a', sha256 },
        { name: 'a', sha256 },
      ],
    }).success,
    false,
  );
  assert.equal(parse({ mode: 'credentials', tokens: [{ name: 'a', sha256: 'ABC' }] }).success, false);
  assert.equal(ConfigSchema.safeParse({ server: { tls_cert: 'c.pem' } }).success, false, 'cert without key');
  assert.equal(ConfigSchema.safeParse({ server: { base_url: 'https://u:p@x' } }).success, false);
  assert.equal(ConfigSchema.safeParse({ server: { base_url: 'https://x/?a' } }).success, false);
});
