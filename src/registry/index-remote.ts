import type { RegistryConfig } from '../config/schema.js';
import type { RegistryLayout } from './layout.js';

/**
 * [git] remote of the served index: `sync --push`, `sync --pull` and auto_push.
 * (Being written: this stub only gives openRegistry its hook.)
 */
export function autoPushHook(
  _config: RegistryConfig,
  _layout: RegistryLayout,
  _warn: (message: string) => void,
): ((commit: string) => Promise<void>) | undefined {
  return undefined;
}
