// ESLint flat config: typescript-eslint's recommended rules, plus the storage rule that only
// shared/src/db/sqlite.ts may import the SQLite driver (all writes go through its single-writer queue).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'data/**', 'bench/results/**', 'bench/scratch/**', 'test-artifacts/**', '.caddy/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', fetch: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', URLSearchParams: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', document: 'readonly', window: 'readonly', navigator: 'readonly' } },
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'sqlite3', message: 'Only shared/src/db/sqlite.ts talks to SQLite: use Database / the writer queue.' }, { name: 'better-sqlite3', message: 'Argos uses one SQLite layer: shared/src/db/sqlite.ts.' }] }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-control-regex': 'off',
    },
  },
  { files: ['shared/src/db/sqlite.ts'], rules: { 'no-restricted-imports': 'off' } },
);
