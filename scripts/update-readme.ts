/** `npm run docs`: rewrites the generated reference sections of README.md from the code. */
import { readFile, writeFile } from 'node:fs/promises';
import { buildProgram } from '../src/cli/main.js';
import { commandReference, configReference, replaceSection } from '../src/cli/reference-docs.js';

const path = new URL('../README.md', import.meta.url);
let readme = await readFile(path, 'utf8');
readme = replaceSection(readme, 'commands', commandReference(buildProgram()));
readme = replaceSection(readme, 'config', configReference());
await writeFile(path, readme);
console.log('README.md: command and registry.toml reference regenerated');
