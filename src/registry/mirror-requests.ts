import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../fs/atomic-write.js';

/**
 * What `mirror` was asked for, remembered in `data/state/mirror-requests.json`, so that
 * `serve`'s sync in mirror mode can ask again against fresh indexes: the registry keeps what its
 * users chose current (new versions of matched modules, the dependencies those need), and
 * nothing more.
 */
export interface MirrorRequest {
  patterns: string[];
  full: boolean;
  strict: boolean;
  /** The source whose index the patterns matched; absent: every enabled source (--full). */
  source?: string;
}

interface RequestsFile {
  version: 1;
  requests: MirrorRequest[];
}

export async function readMirrorRequests(path: string): Promise<MirrorRequest[]> {
  try {
    const file = JSON.parse(await readFile(path, 'utf8')) as RequestsFile;
    return Array.isArray(file.requests) ? file.requests : [];
  } catch {
    return [];
  }
}

/** Adds a request unless the same one is there already. */
export async function recordMirrorRequest(path: string, request: MirrorRequest): Promise<void> {
  const requests = await readMirrorRequests(path);
  const key = requestKey(request);
  if (requests.some((r) => requestKey(r) === key)) return;
  const file: RequestsFile = { version: 1, requests: [...requests, request] };
  await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`);
}

export function describeRequest(request: MirrorRequest): string {
  const what = request.full ? '--full' : request.patterns.join(' ');
  return `mirror ${what}${request.strict ? ' --strict' : ''}${request.source ? ` -s ${request.source}` : ''}`;
}

function requestKey(request: MirrorRequest): string {
  return JSON.stringify([[...request.patterns].sort(), request.full, request.strict, request.source ?? null]);
}
