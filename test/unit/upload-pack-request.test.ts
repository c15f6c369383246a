import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  encodeRequest,
  parseUploadPackRequest,
  protocolVersion,
  requestKey,
  substituteOids,
} from '../../src/git/upload-pack-request.js';
import { pkt } from '../support/test-registry.js';

const TIP = '1'.repeat(40);
const OLD = '2'.repeat(40);

function v2Fetch(lines: { caps?: string[]; args: string[] }): Buffer {
  const caps = lines.caps ?? ['agent=git/2.39.5', 'object-format=sha1'];
  return Buffer.from(
    `${pkt('command=fetch\n')}${caps.map((c) => pkt(`${c}\n`)).join('')}0001${lines.args.map((a) => pkt(`${a}\n`)).join('')}0000`,
  );
}

const BASE_ARGS = ['thin-pack', 'ofs-delta', 'deepen 1', `want ${TIP}`, `have ${OLD}`, 'done'];

function keyOf(body: Buffer, version: 0 | 1 | 2 = 2, tip = TIP): string {
  const parsed = parseUploadPackRequest(body);
  assert.ok(parsed, 'the body parses');
  return requestKey(version, tip, 'upload-pack', parsed.packets);
}

describe('upload-pack request keys', () => {
  test('the client agent and a trailing LF do not change the key; a v2 session-id does', () => {
    const base = keyOf(v2Fetch({ args: BASE_ARGS }));
    assert.equal(keyOf(v2Fetch({ caps: ['agent=other/1.0', 'object-format=sha1'], args: BASE_ARGS })), base);
    // git refuses a session-id it did not advertise (transfer.advertiseSID): another answer.
    assert.notEqual(
      keyOf(v2Fetch({ caps: ['agent=x', 'session-id=abc', 'object-format=sha1'], args: BASE_ARGS })),
      base,
    );
    const noLf = Buffer.from(
      `${pkt('command=fetch')}${pkt('object-format=sha1')}0001${BASE_ARGS.map((a) => pkt(a)).join('')}0000`,
    );
    assert.equal(keyOf(noLf), base);
  });

  test('one want, one have, one capability, the tip or the version each change the key', () => {
    const base = keyOf(v2Fetch({ args: BASE_ARGS }));
    const variants = [
      BASE_ARGS.map((a) => (a.startsWith('want') ? `want ${'3'.repeat(40)}` : a)),
      BASE_ARGS.map((a) => (a.startsWith('have') ? `have ${'4'.repeat(40)}` : a)),
      BASE_ARGS.filter((a) => a !== 'thin-pack'),
      [...BASE_ARGS.slice(0, -1), 'no-progress', 'done'],
      BASE_ARGS.map((a) => (a === 'deepen 1' ? 'deepen 2' : a)),
    ];
    const keys = new Set([base, ...variants.map((args) => keyOf(v2Fetch({ args })))]);
    assert.equal(keys.size, variants.length + 1);
    assert.notEqual(keyOf(v2Fetch({ args: BASE_ARGS }), 2, OLD), base);
    assert.notEqual(keyOf(v2Fetch({ args: BASE_ARGS }), 0), base);
    assert.notEqual(keyOf(v2Fetch({ caps: ['object-format=sha256'], args: BASE_ARGS })), base);
  });

  test('v0: capabilities on the first want count, its agent does not', () => {
    const v0 = (caps: string) =>
      Buffer.from(`${pkt(`want ${TIP} ${caps}\n`)}${pkt('deepen 1\n')}0000${pkt('done\n')}`);
    const base = keyOf(v0('multi_ack_detailed side-band-64k ofs-delta agent=git/2.39.5'), 0);
    assert.equal(keyOf(v0('multi_ack_detailed side-band-64k ofs-delta agent=git/2.40.0'), 0), base);
    assert.notEqual(keyOf(v0('multi_ack_detailed side-band-64k agent=git/2.39.5'), 0), base);
  });

  test("v0: capabilities are split on whitespace as git's isspace knows it, on every want", () => {
    const v0 = (...wants: string[]) =>
      Buffer.from(`${wants.map((w) => pkt(`${w}\n`)).join('')}${pkt('deepen 1\n')}0000${pkt('done\n')}`);
    const base = keyOf(v0(`want ${TIP} thin-pack ofs-delta`), 0);
    assert.equal(keyOf(v0(`want ${TIP} thin-pack\tofs-delta agent=a`), 0), base);
    assert.equal(keyOf(v0(`want ${TIP}\tthin-pack  ofs-delta\tsession-id=1`), 0), base);
    // git's isspace knows no \v or \f: there they glue two words into one capability.
    assert.notEqual(keyOf(v0(`want ${TIP} thin-pack\vofs-delta`), 0), base);
    assert.notEqual(keyOf(v0(`want ${TIP} thin-pack\fofs-delta`), 0), base);
    // An agent glued to a capability by a tab must not take the capability with it.
    assert.notEqual(keyOf(v0(`want ${TIP} agent=a\tthin-pack`), 0), keyOf(v0(`want ${TIP} agent=a`), 0));
    // git reads capabilities on later wants too.
    assert.notEqual(
      keyOf(v0(`want ${TIP} ofs-delta`, `want ${OLD} thin-pack`), 0),
      keyOf(v0(`want ${TIP} ofs-delta`, `want ${OLD}`), 0),
    );
    // A lookalike `agent` without its `=` is a capability like any other.
    assert.notEqual(keyOf(v0(`want ${TIP} thin-pack ofs-delta agent`), 0), base);
  });

  test('v2: agent lines are left out only among the capabilities', () => {
    const base = keyOf(v2Fetch({ args: BASE_ARGS }));
    // In the arguments git reads them as arguments (and refuses them): never the same answer.
    assert.notEqual(keyOf(v2Fetch({ args: ['agent=x', ...BASE_ARGS] })), base);
    assert.notEqual(keyOf(v2Fetch({ args: [...BASE_ARGS.slice(0, -1), 'session-id=1', 'done'] })), base);
  });

  test('the protocol version is read exactly as git reads Git-Protocol', () => {
    assert.equal(protocolVersion(undefined), 0);
    assert.equal(protocolVersion('version=2'), 2);
    assert.equal(protocolVersion('version=1'), 1);
    assert.equal(protocolVersion('object-format=sha1:version=2'), 2);
    assert.equal(protocolVersion('version=2:version=1'), 2);
    // git's parse_protocol_version knows "0", "1" and "2" only.
    assert.equal(protocolVersion('version=02'), 0);
    assert.equal(protocolVersion('version=2 '), 0);
    assert.equal(protocolVersion('version=3'), 0);
    assert.equal(protocolVersion('version=3:version=1'), 1);
  });

  test('no payload passes for a special packet, and packets cannot be re-split', () => {
    const flush = keyOf(Buffer.from(`${pkt('command=ls-refs\n')}0000`));
    const lookalike = keyOf(Buffer.from(`${pkt('command=ls-refs\n')}${pkt('0000')}`));
    assert.notEqual(flush, lookalike);
    const two = keyOf(Buffer.from(`${pkt('ab')}${pkt('c')}0000`));
    const one = keyOf(Buffer.from(`${pkt('abc')}0000`));
    assert.notEqual(two, one);
    // Bytes that are not UTF-8 stay distinct (no replacement character folds them together).
    const a = keyOf(Buffer.concat([Buffer.from('0006'), Buffer.from([0xff, 0xfe]), Buffer.from('0000')]));
    const b = keyOf(Buffer.concat([Buffer.from('0006'), Buffer.from([0xfe, 0xff]), Buffer.from('0000')]));
    assert.notEqual(a, b);
  });

  test('what cannot be read is not keyed', () => {
    assert.equal(parseUploadPackRequest(Buffer.from('00zz')), undefined);
    assert.equal(parseUploadPackRequest(Buffer.from('0010abc')), undefined);
    assert.equal(parseUploadPackRequest(Buffer.from('0003')), undefined);
  });

  test('a learnt shape is replayed with other object ids, and encodes back to what git reads', () => {
    const parsed = parseUploadPackRequest(v2Fetch({ args: BASE_ARGS }));
    assert.ok(parsed);
    assert.deepEqual([...parsed.oids].sort(), [TIP, OLD]);
    const next = '5'.repeat(40);
    const moved = substituteOids(
      parsed.packets,
      new Map([
        [TIP, next],
        [OLD, TIP],
      ]),
    );
    assert.ok(moved);
    const text = encodeRequest(moved).toString('latin1');
    assert.match(text, new RegExp(`want ${next}\\n`));
    assert.match(text, new RegExp(`have ${TIP}\\n`));
    assert.equal(substituteOids(parsed.packets, new Map([[TIP, next]])), undefined, 'OLD is unknown');
    const roundTrip = parseUploadPackRequest(encodeRequest(parsed.packets));
    assert.deepEqual(roundTrip?.packets, parsed.packets);
  });
});
