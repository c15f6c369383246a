import type { Command, Option } from 'commander';
import { visibleSubcommands } from './command-tree.js';

/**
 * Shell completion scripts, generated from the commander program itself so that they always
 * offer exactly the commands and options the CLI has. Source and token names are completed
 * live from registry.toml through the hidden `__complete` command.
 */

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** What `__complete KIND` lists: names read from registry.toml. */
export const DYNAMIC_KINDS = ['sources', 'tokens'] as const;
export type DynamicKind = (typeof DYNAMIC_KINDS)[number];

/** Fixed candidates, or a kind of name that `__complete` reads from registry.toml. */
type Candidates = string[] | DynamicKind;

/** Arguments whose candidates are names in registry.toml, by command path. */
const DYNAMIC_ARGUMENTS: Record<string, DynamicKind> = {
  'source default': 'sources',
  'source enable': 'sources',
  'source disable': 'sources',
  'source remove': 'sources',
  'token remove': 'tokens',
};

/** Option values: names in registry.toml, or values listed only in the option's description. */
const OPTION_VALUES: Record<string, Candidates> = {
  '--source': 'sources',
  '--type': ['mooncakes', 'moonbit-registry', 'custom'],
  '--from-preset': ['mooncakes'],
};

export interface CommandSpec {
  /** Words after the program name, e.g. "source add"; "" for the program itself. */
  path: string;
  subcommands: string[];
  /** Every spelling: --json, -q, --quiet. */
  options: string[];
  /**
   * Options that take a value (so the next word is not a command), with what it can be:
   * candidates, 'files' for a path (`<file>`, `<dir>`), or null for free text.
   */
  values: Record<string, Candidates | 'files' | null>;
  /** Candidates for the first argument. */
  argument?: Candidates;
}

function spellings(option: Option): string[] {
  return [option.short, option.long].filter((s): s is string => s !== undefined);
}

export function commandSpecs(program: Command): CommandSpec[] {
  const specs: CommandSpec[] = [];
  const visit = (command: Command, path: string) => {
    const visible = visibleSubcommands(command);
    const values: CommandSpec['values'] = {};
    for (const option of command.options) {
      if (!option.required && !option.optional) continue;
      const candidates =
        option.argChoices ??
        (option.long ? OPTION_VALUES[option.long] : undefined) ??
        (/<(file|dir)>/.test(option.flags) ? 'files' : null);
      for (const spelling of spellings(option)) values[spelling] = candidates;
    }
    const argument = DYNAMIC_ARGUMENTS[path] ?? command.registeredArguments[0]?.argChoices;
    specs.push({
      path,
      subcommands: visible.map((c) => c.name()),
      options: [...command.options.flatMap(spellings), '--help'],
      values,
      ...(argument ? { argument } : {}),
    });
    for (const sub of visible) visit(sub, path === '' ? sub.name() : `${path} ${sub.name()}`);
  };
  visit(program, '');
  return specs;
}

export function completionScript(program: Command, shell: Shell): string {
  const name = program.name();
  const specs = commandSpecs(program);
  if (shell === 'bash') return bashScript(name, specs);
  if (shell === 'zsh') {
    // zsh runs the bash script through its bashcompinit emulation.
    return `#compdef ${name}\nautoload -U +X bashcompinit && bashcompinit\n${bashScript(name, specs)}`;
  }
  return fishScript(name, specs);
}

const words = (list: string[]) => list.join(' ');

/** Fixed words, or names read live from the registry named by -d/--dir on the line. */
function bashWords(name: string, candidates: Candidates): string {
  if (Array.isArray(candidates)) return words(candidates);
  return `$(${name} \${dir:+--dir "$dir"} __complete ${candidates} 2>/dev/null)`;
}

function bashScript(name: string, specs: CommandSpec[]): string {
  const fn = `_${name.replace(/[^A-Za-z0-9]/g, '_')}`;
  const valueOptions = [...new Set(specs.flatMap((s) => Object.keys(s.values)))];
  const walk = specs
    .filter((s) => s.subcommands.length > 0)
    .map(
      (s) =>
        `      "${s.path}") [[ " ${words(s.subcommands)} " == *" $word "* ]] && path="\${path:+$path }$word" ;;`,
    )
    .join('\n');
  const cases = specs
    .map((spec) => {
      const valueCases = Object.entries(spec.values)
        .map(([option, candidates]) =>
          candidates === null
            ? `          ${option}) COMPREPLY=(); return ;;`
            : candidates === 'files'
              ? `          ${option}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`
              : `          ${option}) COMPREPLY=($(compgen -W "${bashWords(name, candidates)}" -- "$cur")); return ;;`,
        )
        .join('\n');
      const positional = [words(spec.subcommands), spec.argument ? bashWords(name, spec.argument) : '']
        .join(' ')
        .trim();
      return [
        `      "${spec.path}")`,
        ...(valueCases ? ['        case "$prev" in', valueCases, '        esac'] : []),
        '        if [[ "$cur" == -* ]]; then',
        `          COMPREPLY=($(compgen -W "${words(spec.options)}" -- "$cur"))`,
        '        else',
        `          COMPREPLY=($(compgen -W "${positional}" -- "$cur"))`,
        '        fi ;;',
      ].join('\n');
    })
    .join('\n');
  return `# ${name} completion for bash (generated by \`${name} completion bash\`)
# A path as typed (~, quotes, backslash escapes) as the shell would pass it.
_moonbit_registry_path() {
  local word="$1"
  word="\${word//\\\\ / }"
  word="\${word//[\\"\\']/}"
  [[ "$word" == "~"* ]] && word="$HOME\${word:1}"
  printf '%s' "$word"
}
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" path="" dir="" word i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      -d|--dir) dir=$(_moonbit_registry_path "\${COMP_WORDS[i+1]}"); ((i++)); continue ;;
      ${valueOptions.join('|')}) ((i++)); continue ;;
      -*) continue ;;
    esac
    case "$path" in
${walk}
    esac
  done
  case "$path" in
${cases}
  esac
}
complete -o default -F ${fn} ${name}
`;
}

function fishScript(name: string, specs: CommandSpec[]): string {
  const lines = [
    `# ${name} completion for fish (generated by \`${name} completion fish\`)`,
    `complete -c ${name} -f`,
  ];
  const fishWords = (candidates: Candidates) =>
    Array.isArray(candidates) ? words(candidates) : `(${name} __complete ${candidates} 2>/dev/null)`;
  for (const spec of specs) {
    // This command's path has been typed, and none of its subcommands yet. (fish's helper
    // only knows "some of these words were seen": enough for this CLI's two levels.)
    const conditions =
      spec.path === '' ? [] : spec.path.split(' ').map((w) => `__fish_seen_subcommand_from ${w}`);
    if (spec.subcommands.length > 0)
      conditions.push(`not __fish_seen_subcommand_from ${words(spec.subcommands)}`);
    const when = conditions.length > 0 ? ` -n '${conditions.join('; and ')}'` : '';
    for (const sub of spec.subcommands) lines.push(`complete -c ${name}${when} -a ${sub}`);
    for (const option of spec.options) {
      const flag = option.startsWith('--') ? `-l ${option.slice(2)}` : `-s ${option.slice(1)}`;
      const candidates = spec.values[option];
      const value =
        candidates === undefined
          ? ''
          : candidates === null
            ? ' -r'
            : candidates === 'files'
              ? ' -r -F'
              : ` -r -a '${fishWords(candidates)}'`;
      lines.push(`complete -c ${name}${when} ${flag}${value}`);
    }
    if (spec.argument) lines.push(`complete -c ${name}${when} -a '${fishWords(spec.argument)}'`);
  }
  return `${lines.join('\n')}\n`;
}
