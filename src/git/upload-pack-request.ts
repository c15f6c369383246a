import { createHash } from 'node:crypto';

/**
 * What an upload-pack request asks for, read from its pkt-lines (after gunzip), so identical
 * requests can share one answer (server/upload-pack-cache.ts). git's own words on pack-objects:
 * its output "is a pure function of its input"; the only parts of a request that never change
 * the answer are the client's `agent` (and, in v0, its `session-id`), so they are left out of
 * the key.
 */

/**
 * A data packet's payload (latin1: one char per byte, so no two payloads read alike), or a
 * special packet: 0000 ends a request or section, 0001 separates v2 sections, 0002 ends a v2
 * response.
 */
export type Packet = { data: string } | { special: 0 | 1 | 2 };

export interface UploadPackRequest {
  /** The packets that decide the answer, the client's agent left out, one trailing LF dropped. */
  packets: Packet[];
  /** Object ids the request names as wants, haves and shallows (for warm-up templates). */
  oids: Set<string>;
}

const OID = /\b[0-9a-f]{40}(?:[0-9a-f]{24})?\b/g;

/** The service both the advertisement and the request name. */
export const UPLOAD_PACK_SERVICE = 'git-upload-pack';

/** An advertisement (`info/refs`) or an upload-pack request (`POST git-upload-pack`). */
export type AnswerKind = 'advertise' | 'upload-pack';

export type ProtocolVersion = 0 | 1 | 2;

/**
 * The protocol version git's server side reads from a Git-Protocol header (protocol.c,
 * determine_protocol_version_server): the highest of the colon-separated `version=` keys whose
 * value is exactly 0, 1 or 2; anything else (`version=02`, `version=3`) counts for nothing.
 * git is then given only `version=N`, so what keys the cache is exactly what git reads.
 */
export function protocolVersion(gitProtocol: string | undefined): ProtocolVersion {
  let version: ProtocolVersion = 0;
  for (const item of gitProtocol?.split(':') ?? []) {
    if (item === 'version=1' && version < 1) version = 1;
    else if (item === 'version=2') version = 2;
  }
  return version;
}

/**
 * A v0 capability of the client itself, which git reads only to log it. (git takes a v0
 * `session-id` only when it advertised one, and ignores it otherwise.)
 */
function isV0ClientIdentity(item: string): boolean {
  return item.startsWith('agent=') || item.startsWith('session-id=');
}

/**
 * A v2 capability line of the client itself. Only `agent`: git refuses a `session-id` it did
 * not advertise (transfer.advertiseSID), so that one changes the answer and stays in the key.
 */
function isV2ClientIdentity(line: string): boolean {
  return line.startsWith('agent=');
}

/** A v0 want: its object id, then capabilities that git separates with whitespace. */
const V0_WANT = /^want ([0-9a-f]{40}(?:[0-9a-f]{24})?)(.*)$/s;
/** git's own isspace (ctype.c): not the C library's, which also has \v and \f. */
const GIT_SPACE = /[ \t\n\r]+/;

/**
 * A v0 want line as git reads it (upload-pack.c parses the capabilities of every want line):
 * its capabilities re-joined with single spaces, agent and session-id left out.
 */
function normalizeV0Want(line: string): string {
  const want = V0_WANT.exec(line);
  if (!want) return line;
  const capabilities = (want[2] ?? '')
    .split(GIT_SPACE)
    .filter((item) => item !== '' && !isV0ClientIdentity(item));
  return [`want ${want[1]}`, ...capabilities].join(' ');
}

/**
 * Reads a request body already checked by request-body.ts's pktLineCheck. Returns undefined for
 * anything it cannot read, which then simply is not shared or cached.
 *
 * A v2 request (it starts with `command=`) carries the client's agent as a line of its own
 * before its first delimiter; a v0 request carries it among the capabilities of its want lines.
 * Only there is it left out: anywhere else git reads it as something else.
 */
export function parseUploadPackRequest(body: Buffer): UploadPackRequest | undefined {
  const packets: Packet[] = [];
  const oids = new Set<string>();
  let v2: boolean | undefined;
  let inCapabilities = true;
  let at = 0;
  while (at < body.length) {
    if (at + 4 > body.length) return undefined;
    const digits = body.toString('latin1', at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) return undefined;
    const length = Number.parseInt(digits, 16);
    if (length === 0 || length === 1 || length === 2) {
      packets.push({ special: length });
      inCapabilities = false;
      at += 4;
      continue;
    }
    if (length < 4 || at + length > body.length) return undefined;
    let text = body.toString('latin1', at + 4, at + length);
    at += length;
    if (text.endsWith('\n')) text = text.slice(0, -1);
    v2 ??= text.startsWith('command=');
    if (v2) {
      if (inCapabilities && isV2ClientIdentity(text)) continue;
    } else if (text.startsWith('want ')) {
      text = normalizeV0Want(text);
    }
    for (const oid of text.match(OID) ?? []) oids.add(oid);
    packets.push({ data: text });
  }
  return { packets, oids };
}

/** The cache key of a request made at `tip` with protocol version `version`. */
export function requestKey(
  version: ProtocolVersion,
  tip: string,
  kind: AnswerKind,
  packets: readonly Packet[],
): string {
  const hash = createHash('sha256');
  hash.update(`${kind}\0v${version}\0${tip}\0`);
  // Length-prefixed: no payload can pass for a special packet or for two packets.
  for (const packet of packets) {
    if ('special' in packet) hash.update(`S${packet.special};`);
    else hash.update(`D${packet.data.length};`).update(packet.data, 'latin1');
  }
  return hash.digest('hex');
}

/** The body git reads for `packets` (for a warm-up that replays a request no client sent). */
export function encodeRequest(packets: readonly Packet[]): Buffer {
  return Buffer.concat(
    packets.map((packet) =>
      'special' in packet
        ? Buffer.from(`000${packet.special}`)
        : pktLine(Buffer.from(`${packet.data}\n`, 'latin1')),
    ),
  );
}

export function pktLine(text: string | Buffer): Buffer {
  const payload = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);
}

/**
 * The request with every object id replaced through `map`: a request learnt at one tip (a
 * shallow clone wants the tip; a pull wants the tip and has its parent) replayed at the next.
 * Undefined when the request names an object `map` does not know.
 */
export function substituteOids(
  packets: readonly Packet[],
  map: ReadonlyMap<string, string>,
): Packet[] | undefined {
  let unknown = false;
  const out = packets.map((packet) =>
    'special' in packet
      ? packet
      : {
          data: packet.data.replace(OID, (oid) => {
            const to = map.get(oid);
            if (to === undefined) unknown = true;
            return to ?? oid;
          }),
        },
  );
  return unknown ? undefined : out;
}
