import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * For long CPU work inside the server (reading a huge upstream index): `await turn()` between
 * steps gives other work the event loop once `budgetMs` have passed since the last turn. A
 * server that stalls for longer than its keep-alive timeout resets clients whose next request
 * was already on the wire (its keep-alive timer fires before it reads them), and /health must
 * answer while an index is read.
 */
export function eventLoopTurns(budgetMs = 10): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last < budgetMs) return;
    await nextTurn();
    last = performance.now();
  };
}
