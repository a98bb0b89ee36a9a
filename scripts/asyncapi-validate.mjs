#!/usr/bin/env node
// Checks AsyncAPI documents with the official parser (@asyncapi/parser, as
// scripts/asyncapi-deps.sh installs it into .cache/asyncapi): each file is
// parsed and validated against the AsyncAPI schema, its bindings and the
// parser's rules, and every diagnostic is printed as
// FILE:LINE:COL SEVERITY CODE MESSAGE (at PATH).
//
// Usage: node scripts/asyncapi-validate.mjs [--strict] FILE...
//   --strict  warnings fail too, not only errors
// Exit status: 0 when every file is valid, 1 when one has an error (or, with
// --strict, a warning), 2 when the command line is wrong or the parser is
// not installed. ASYNCAPI_PARSER_DIR names another directory holding
// node_modules/@asyncapi/parser.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const parserDir = process.env.ASYNCAPI_PARSER_DIR || join(root, '.cache', 'asyncapi');

// The parser's diagnostic severities (Spectral's): 0 error, 1 warning,
// 2 information, 3 hint.
const severities = ['error', 'warning', 'info', 'hint'];

const args = process.argv.slice(2);
const strict = args.includes('--strict');
const files = args.filter((a) => a !== '--strict');
if (files.length === 0 || files.some((f) => f.startsWith('-'))) {
  console.error('usage: node scripts/asyncapi-validate.mjs [--strict] FILE...');
  process.exit(2);
}

let Parser;
try {
  ({ Parser } = createRequire(join(parserDir, 'package.json'))('@asyncapi/parser'));
} catch (err) {
  console.error(`asyncapi-validate: @asyncapi/parser is not installed in ${parserDir} (${err.code || err.message}); run scripts/asyncapi-deps.sh`);
  process.exit(2);
}

const parser = new Parser();
let failed = false;
for (const file of files) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    console.error(`${file}: ${err.message}`);
    failed = true;
    continue;
  }
  const { document, diagnostics } = await parser.parse(text, { source: resolve(file) });
  let errors = 0;
  let warnings = 0;
  for (const d of diagnostics) {
    const start = d.range?.start ?? { line: 0, character: 0 };
    const severity = severities[d.severity] ?? String(d.severity);
    const at = d.path && d.path.length > 0 ? ` (at ${d.path.join('.')})` : '';
    console.log(`${file}:${start.line + 1}:${start.character + 1} ${severity} ${d.code} ${d.message}${at}`);
    if (d.severity === 0) errors++;
    if (d.severity === 1) warnings++;
  }
  if (document === undefined && errors === 0) {
    console.log(`${file}: the parser returned no document`);
    errors++;
  }
  if (errors > 0 || (strict && warnings > 0)) {
    failed = true;
    console.log(`${file}: invalid: ${errors} error(s), ${warnings} warning(s)`);
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()}: ${warnings} warning(s)`);
  }
}
process.exit(failed ? 1 : 0);
