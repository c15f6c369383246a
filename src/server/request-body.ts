import { Transform, type TransformCallback } from 'node:stream';
import { HttpError } from './http-error.js';

/**
 * Checks on an upload-pack request body while it streams to git, so a hostile body is refused
 * with a 4xx instead of reaching git unbounded or as something git would quietly accept.
 */

/** The largest pkt-line git reads, header included (pkt-line.h: LARGE_PACKET_MAX). */
const LARGE_PACKET_MAX = 65520;

/** The client may still be sending: close the connection instead of reading the rest. */
export function bodyTooLarge(): HttpError {
  return new HttpError(413, 'request body too large', { Connection: 'close' });
}

/** Passes at most `max` bytes; one more fails the stream with a 413. */
export function byteLimit(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > max) callback(bodyTooLarge());
      else callback(null, chunk);
    },
  });
}

/**
 * Passes a pkt-line stream through unchanged, failing it with a 400 on framing git would
 * reject or misread: bad length digits, lengths git never sends (0002, 0003, over 65520), a
 * body that ends inside a packet, one without a data packet, or one whose last packet is
 * neither a flush nor `done` (every v0 and v2 client request ends with one of them). git would
 * answer some of these with an empty 200, as if all were well.
 */
export function pktLineCheck(): Transform {
  let header = ''; // length digits of the next packet seen so far
  let remaining = 0; // payload bytes of the current packet still to come
  let payloadLength = 0;
  let small = ''; // the current payload, when it is short enough to be `done`
  let dataPackets = 0;
  let endsRequest = false;
  const malformed = (what: string) => new HttpError(400, `malformed pkt-line request: ${what}`);
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      let at = 0;
      while (at < chunk.length) {
        if (remaining > 0) {
          const take = Math.min(remaining, chunk.length - at);
          if (payloadLength <= 5) small += chunk.toString('latin1', at, at + take);
          remaining -= take;
          at += take;
          if (remaining === 0) endsRequest = small === 'done\n' || small === 'done';
          continue;
        }
        header += String.fromCharCode(chunk[at] ?? 0);
        at++;
        if (header.length < 4) continue;
        if (!/^[0-9a-fA-F]{4}$/.test(header)) return callback(malformed('bad length digits'));
        const length = Number.parseInt(header, 16);
        header = '';
        // 0000 flush ends a request; 0001 (v2 delimiter) separates its sections.
        endsRequest = length === 0;
        if (length === 0 || length === 1) continue;
        if (length < 4 || length > LARGE_PACKET_MAX) return callback(malformed(`bad length ${length}`));
        dataPackets++;
        remaining = length - 4;
        payloadLength = remaining;
        small = '';
      }
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      if (header !== '' || remaining > 0) callback(malformed('the body ends inside a packet'));
      else if (dataPackets === 0) callback(malformed('no data packet'));
      else if (!endsRequest) callback(malformed('the last packet is neither a flush nor "done"'));
      else callback();
    },
  });
}
