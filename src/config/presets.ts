import type { SourceConfig } from './schema.js';

/** Known registries that `source add NAME --from-preset P` can fill in. */
export const PRESETS = {
  mooncakes: {
    type: 'mooncakes',
    url: 'https://mooncakes.io',
    index_url: 'https://mooncakes.io/git/index',
    index_type: 'git',
    enabled: true,
    priority: 100,
  },
} as const satisfies Record<string, Omit<SourceConfig, 'name'>>;

export type PresetName = keyof typeof PRESETS;

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}
