/**
 * Fails when SQL is built by string concatenation or template substitution anywhere in the code,
 * except the one VACUUM INTO with an Argos-generated path (shared/src/db/sqlite.ts).
 * Walks the TypeScript syntax tree, so formatting tricks do not hide a violation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SQL = /\b(SELECT|INSERT|UPDATE|DELETE|VACUUM|PRAGMA|CREATE|DROP|ALTER|WHERE|REPLACE INTO)\b/;
const ALLOWED = [{ file: 'shared/src/db/sqlite.ts', text: /^VACUUM INTO '/ }];

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) sourceFiles(p, out);
    else if (/\.(ts|mjs|js)$/.test(e.name) && !/\.test\.ts$/.test(e.name)) out.push(p);
  }
  return out;
}

/** Returns "file:line: snippet" for every string-built SQL expression in `code`. */
export function findStringBuiltSql(file: string, code: string): string[] {
  const sf = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const rel = path.relative(ROOT, file);
  const report = (node: ts.Node, text: string) => {
    if (ALLOWED.some((a) => rel === a.file && a.text.test(text))) return;
    const line = sf.getLineAndCharacterOfPosition(node.getStart()).line + 1;
    found.push(`${rel}:${line}: ${text.slice(0, 80).replace(/\s+/g, ' ')}`);
  };
  const literalText = (n: ts.Node): string | null => (ts.isStringLiteralLike(n) ? n.text : null);
  const visit = (node: ts.Node) => {
    if (ts.isTemplateExpression(node)) {
      const text = node.head.text + node.templateSpans.map((s) => '${}' + s.literal.text).join('');
      if (SQL.test(text)) report(node, text);
    } else if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) {
      const l = literalText(node.left) ?? '';
      const r = literalText(node.right) ?? '';
      if (SQL.test(l) || SQL.test(r)) report(node, l + ' + ' + r);
    } else if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === 'concat') {
      if (node.arguments.some((a) => SQL.test(literalText(a) ?? ''))) report(node, 'concat(...)');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

test('no SQL is built from strings anywhere but the one VACUUM INTO', () => {
  const files = [path.join(ROOT, 'shared', 'src'), path.join(ROOT, 'services'), path.join(ROOT, 'scripts')].filter(fs.existsSync).flatMap((d) => sourceFiles(d));
  assert.ok(files.length > 20, 'the scan found the source files');
  const violations = files.flatMap((f) => findStringBuiltSql(f, fs.readFileSync(f, 'utf8')));
  assert.deepEqual(violations, [], 'string-built SQL:\n' + violations.join('\n'));
});

test('the scanner catches concatenation and template substitution (it can fail)', () => {
  const bad = [
    "db.all('SELECT * FROM users WHERE name = \\'' + name + '\\'')",
    'db.all(`SELECT * FROM users WHERE id = ${id}`)',
    "db.run('DELETE FROM hosts' + where)",
    "const q = ''.concat('UPDATE users SET x = ', v)",
  ];
  for (const code of bad) assert.equal(findStringBuiltSql(path.join(ROOT, 'x.ts'), code).length, 1, code);
  assert.deepEqual(findStringBuiltSql(path.join(ROOT, 'x.ts'), "db.all('SELECT * FROM users WHERE id = ?', [id])"), []);
  assert.equal(findStringBuiltSql(path.join(ROOT, 'other.ts'), "db.run(`VACUUM INTO '${p}'`)").length, 1, 'VACUUM INTO is allowed only in sqlite.ts');
});
