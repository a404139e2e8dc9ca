// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { layerRules } from "./eslint.layers.js";

export default tseslint.config(
  {
    ignores: [
      "dist/**",
      "node_modules/**",
      "src/gen/**",
      "examples/*/gen/**",
      // A project template: it type-checks in the project the scaffold writes (test/package.e2e.ts).
      "create-connect-plugin/template/**",
      ".stryker-tmp/**",
      "reports/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
    },
  },
  // Imports flow one way between the folders of src/ (eslint.layers.js).
  ...layerRules(),
  {
    // node:test's test() and describe() return promises that the runner awaits.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-floating-promises": "off" },
  },
  {
    // Async generators stand in for client streams in tests and examples.
    files: ["test/**/*.ts", "examples/**/*.ts"],
    rules: { "@typescript-eslint/require-await": "off" },
  },
  {
    // Plain JavaScript outside the TypeScript project (the scaffold's bin has no build step).
    files: [
      "eslint.config.js",
      "eslint.layers.js",
      "stryker.config.mjs",
      "create-connect-plugin/*.js",
    ],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
