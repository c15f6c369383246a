/**
 * Measures a git smart HTTP answer by what the client gets out of it, not by its framing.
 *
 * `git upload-pack` wraps its pack in side-band pkt-lines as it reads it from pack-objects, so
 * the number of pkt-lines (5 bytes of framing each) depends on timing: two answers to the same
 * request carry the same pack but differ in length by a few multiples of 5 bytes. What does not
 * change is the content: the payload of every pkt-line, without the side-band byte of band 1
 * (the pack) and without band 2 (progress messages) at all.
 */
export class PktLineMeter {
  /** Payload bytes so far: text lines whole, band 1 without its band byte, band 3 whole. */
  contentBytes = 0;
  /** False once the stream is not pkt-lines (then contentBytes means nothing). */
  valid = true;
  private header = '';
  /** Payload bytes of the current line still to come. */
  private remaining = 0;
  private lineStart = false;
  private counting = true;

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.valid) {
      if (this.remaining === 0) at = this.readHeader(chunk, at);
      else at = this.readPayload(chunk, at);
    }
  }

  /** The 4 hex digits of a line's length, possibly split across chunks. */
  private readHeader(chunk: Buffer, at: number): number {
    const end = Math.min(chunk.length, at + 4 - this.header.length);
    this.header += chunk.toString('latin1', at, end);
    if (this.header.length < 4) return end;
    const length = /^[0-9a-f]{4}$/.test(this.header) ? Number.parseInt(this.header, 16) : Number.NaN;
    this.header = '';
    // 0000 flush, 0001 delimiter, 0002 response end: no payload. 0003 is never valid.
    if (Number.isNaN(length) || length === 3) this.valid = false;
    else if (length > 4) {
      this.remaining = length - 4;
      this.lineStart = true;
    }
    return end;
  }

  private readPayload(chunk: Buffer, at: number): number {
    if (this.lineStart) {
      this.lineStart = false;
      // Text lines never start with the side-band bytes 1, 2 or 3.
      const band = chunk[at];
      this.counting = band !== 2;
      if (band === 1) {
        this.remaining--;
        return at + 1;
      }
    }
    const take = Math.min(this.remaining, chunk.length - at);
    if (this.counting) this.contentBytes += take;
    this.remaining -= take;
    return at + take;
  }

  /** The content length, or undefined when the stream was not whole pkt-lines. */
  result(): number | undefined {
    return this.valid && this.remaining === 0 && this.header === '' ? this.contentBytes : undefined;
  }
}
