// Type-aware lint: floating promises are the main bug class in queue workers, and only a checker
// that knows the types catches them. Tests and test helpers are code too and get the same rules.
import tseslint from 'typescript-eslint';

const TEST_FILES = ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/**/*.ts', 'examples/*/tools/**/*.test.ts', 'vitest.config.ts'];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/*.mjs', '!bench/**/*.mjs'] },
  {
    // The bench is plain JavaScript: linted with these rules (types inferred), not type-checked.
    files: ['packages/*/src/**/*.ts', 'services/*/src/**/*.ts', ...TEST_FILES, 'bench/**/*.mjs'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { project: ['tsconfig.eslint.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      'no-restricted-imports': ['error', { patterns: ['@toolplane/*/src/*'] }],
    },
  },
  {
    files: ['packages/*/src/**/*.ts'],
    // A test reports through vitest, and may print what it measured.
    ignores: TEST_FILES,
    rules: { 'no-console': 'error' },
  },
);
