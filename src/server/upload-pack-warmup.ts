import {
  type AnswerKind,
  type Packet,
  type ProtocolVersion,
  requestKey,
  substituteOids,
} from '../git/upload-pack-request.js';

/**
 * Which requests to answer ahead of clients after a new index commit. The exact bytes a client
 * sends depend on its git version and settings, so they are learnt rather than guessed: a
 * request made at tip X that names no object but X and X's parent (a shallow clone of the tip,
 * a pull from the commit before, a ref listing) is a *shape*; after the next commit Y, the most
 * requested shapes are replayed with X -> Y and X's parent -> Y's parent.
 */

export interface WarmRequest {
  version: ProtocolVersion;
  kind: AnswerKind;
  packets: Packet[];
}

interface Shape extends WarmRequest {
  count: number;
}

/** Stand-ins for the tip and its parent inside a learnt shape (object ids no client sends). */
const TIP = 'a'.repeat(40);
const PARENT = 'b'.repeat(40);
/** Shapes kept, and replayed after each commit, most requested first. */
const MAX_SHAPES = 32;
const WARM_SHAPES = 6;
/** Tips whose parent is remembered (clients are at most a few commits behind). */
const MAX_TIPS = 16;
/** Larger request bodies are not learnt. */
const MAX_LEARNT_BODY_BYTES = 4096;

export class WarmUpPlan {
  /** tip -> its first parent (null: the first commit). */
  private readonly parents = new Map<string, string | null>();
  private readonly shapes = new Map<string, Shape>();

  /** Remembers `tip`'s parent: requests at `tip` can be learnt from then on. */
  addTip(tip: string, parent: string | null): void {
    this.parents.delete(tip);
    this.parents.set(tip, parent);
    if (this.parents.size > MAX_TIPS) {
      const oldest = this.parents.keys().next().value as string;
      this.parents.delete(oldest);
    }
  }

  parentOf(tip: string): string | null | undefined {
    return this.parents.get(tip);
  }

  /** Counts one request made at `tip` that git answered cleanly; `bodyBytes`: its size. */
  learn(request: WarmRequest, oids: ReadonlySet<string>, tip: string, bodyBytes: number): void {
    const parent = this.parents.get(tip);
    if (parent === undefined || bodyBytes > MAX_LEARNT_BODY_BYTES) return;
    const stand = new Map<string, string>([[tip, TIP]]);
    if (parent !== null) stand.set(parent, PARENT);
    for (const oid of oids) if (!stand.has(oid)) return;
    const packets = substituteOids(request.packets, stand);
    if (!packets) return;
    const id = requestKey(request.version, '', request.kind, packets);
    const known = this.shapes.get(id);
    if (known) {
      known.count++;
      return;
    }
    if (this.shapes.size >= MAX_SHAPES) this.forgetRarest();
    this.shapes.set(id, { version: request.version, kind: request.kind, packets, count: 1 });
  }

  /** The most requested shapes made concrete for `tip`, most requested first. */
  requestsFor(tip: string, parent: string | null): WarmRequest[] {
    const real = new Map<string, string>([[TIP, tip]]);
    if (parent !== null) real.set(PARENT, parent);
    return [...this.shapes.values()]
      .sort((a, b) => b.count - a.count)
      .slice(0, WARM_SHAPES)
      .flatMap((shape) => {
        const packets = substituteOids(shape.packets, real);
        return packets ? [{ version: shape.version, kind: shape.kind, packets }] : [];
      });
  }

  /** Halves every count (after a tip's warm-up): a shape nobody asks for again is dropped. */
  age(): void {
    for (const [id, shape] of this.shapes) {
      shape.count = Math.floor(shape.count / 2);
      if (shape.count === 0) this.shapes.delete(id);
    }
  }

  private forgetRarest(): void {
    let rarest: [string, Shape] | undefined;
    for (const entry of this.shapes) if (!rarest || entry[1].count < rarest[1].count) rarest = entry;
    if (rarest) this.shapes.delete(rarest[0]);
  }
}
