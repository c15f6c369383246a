import type { Command } from 'commander';
import { z } from 'zod';
import { ConfigSchema } from '../config/schema.js';
import { visibleSubcommands } from './command-tree.js';

/**
 * The README's command and registry.toml reference, generated from the commander program and
 * the config schema themselves (`npm run docs` writes it; a unit test fails when the README is
 * behind), so the documentation cannot drift from the code.
 */

export const GENERATED_SECTIONS = ['commands', 'config'] as const;
export type GeneratedSection = (typeof GENERATED_SECTIONS)[number];

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n+/g, ' ');

/** Every command, depth first: usage, description, arguments and options. */
export function commandReference(program: Command): string {
  const help = program.createHelp();
  const out: string[] = [];
  const visit = (command: Command, path: string[]) => {
    for (const sub of visibleSubcommands(command)) {
      const words = [...path, sub.name()];
      const rows = [
        ...help.visibleArguments(sub).map((a) => [help.argumentTerm(a), help.argumentDescription(a)]),
        ...help
          .visibleOptions(sub)
          .filter((o) => o.long !== '--help')
          .map((o) => [help.optionTerm(o), help.optionDescription(o)]),
      ];
      if (sub.commands.length === 0 || rows.length > 0) {
        out.push(`#### \`${program.name()} ${words.join(' ')}${usageTail(help.commandUsage(sub))}\``, '');
        out.push(cell(sub.description()), '');
        if (rows.length > 0) {
          out.push('| argument or option | meaning |', '| --- | --- |');
          for (const [term, text] of rows) out.push(`| \`${cell(term ?? '')}\` | ${cell(text ?? '')} |`);
          out.push('');
        }
      }
      visit(sub, words);
    }
  };
  visit(program, []);
  return out.join('\n').trimEnd();
}

/** commandUsage gives "moonbit-registry source add [options] <name>": keep what follows the words. */
function usageTail(usage: string): string {
  const parts = usage.split(' ').filter((part) => part.startsWith('[') || part.startsWith('<'));
  return parts.length > 0 ? ` ${parts.join(' ')}` : '';
}

interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  format?: string;
}

/** Every registry.toml key, table by table, with its default, its values and what it does. */
export function configReference(): string {
  const root = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const tables: Array<{ title: string; rows: string[][] }> = [];
  // A table's own keys first, then its sub-tables ([server], then [server.access]).
  const walk = (schema: JsonSchema, title: string) => {
    const rows: string[][] = [];
    const nested: Array<[JsonSchema, string]> = [];
    for (const [key, value] of Object.entries(schema.properties ?? {})) {
      const item = value.items?.properties ? value.items : undefined;
      if (value.properties && value.type === 'object') nested.push([value, title ? `${title}.${key}` : key]);
      else if (item && !title) nested.push([item, `[${key}]`]);
      else rows.push([key, defaultOf(value), valuesOf(value), value.description ?? '']);
    }
    if (rows.length > 0) tables.push({ title, rows });
    for (const [table, name] of nested) walk(table, name);
  };
  walk(root, '');
  const out: string[] = [];
  for (const { title, rows } of tables) {
    out.push(title === '' ? '#### top level' : `#### \`[${title}]\``, '');
    out.push('| key | default | values | meaning |', '| --- | --- | --- | --- |');
    for (const row of rows)
      out.push(`| ${row.map((c, i) => (i === 0 ? `\`${c}\`` : cell(c))).join(' | ')} |`);
    out.push('');
  }
  return out.join('\n').trimEnd();
}

function defaultOf(schema: JsonSchema): string {
  if (schema.default === undefined) return '';
  if (Array.isArray(schema.default) && schema.default.length === 0) return '`[]`';
  return `\`${JSON.stringify(schema.default)}\``;
}

function valuesOf(schema: JsonSchema): string {
  if (schema.enum) return schema.enum.map((v) => `\`${String(v)}\``).join(', ');
  if (schema.const !== undefined) return `\`${String(schema.const)}\``;
  const type = Array.isArray(schema.type) ? schema.type.join(' or ') : (schema.type ?? '');
  if (schema.format === 'duration') return 'duration';
  if (type === 'integer' && schema.minimum !== undefined) {
    const bounded = schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER;
    return bounded ? `integer ${schema.minimum} to ${schema.maximum}` : `integer from ${schema.minimum}`;
  }
  if (type === 'array') return `list of ${schema.items?.type ?? 'values'}`;
  if (schema.anyOf || schema.oneOf) return 'table';
  return type;
}

/** Replaces the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`. */
export function replaceSection(readme: string, name: GeneratedSection, content: string): string {
  const start = `<!-- generated:${name} (npm run docs) -->`;
  const end = `<!-- /generated:${name} -->`;
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md has no ${start} ... ${end} section`);
  return `${readme.slice(0, from + start.length)}\n${content}\n${readme.slice(to)}`;
}
