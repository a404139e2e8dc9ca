// @ts-check
/**
 * The layering of src/, enforced by `npm run lint`: each folder lists the
 * folders it may import from. An import of any other folder of src/ fails
 * lint (no-restricted-imports). docs/internals.md draws the same layers.
 *
 * Bottom to top: leaves (gen, protocol, logging, manifest, discovery,
 * process) -> transport -> security -> plugin, resilience, oci -> host ->
 * manager -> status -> cli; observability beside cli; conformance (a host's
 * view of one plugin program, for the CLI) above transport and security. The
 * entry points (src/*.ts) may import anything.
 */

/** The host layer and everything under it except oci. */
const HOST_AND_BELOW = [
  "gen",
  "protocol",
  "logging",
  "manifest",
  "discovery",
  "process",
  "security",
  "transport",
  "plugin",
  "resilience",
  "host",
];

/** @type {Readonly<Record<string, readonly string[]>>} */
export const LAYERS = {
  gen: [],
  protocol: ["gen"],
  logging: [],
  manifest: [],
  discovery: [],
  // Node's child processes as the host, the conformance suite and the CLI's
  // builds each run one (killGroup): below all three, which share no layer
  // that could hold it (conformance may not import host, cli not transport).
  process: [],
  transport: ["gen", "protocol", "logging"],
  security: ["gen", "protocol", "logging", "manifest", "transport"],
  plugin: ["gen", "protocol", "logging", "security", "transport"],
  resilience: ["gen", "protocol", "logging", "discovery", "security", "transport"],
  oci: ["manifest", "security"],
  host: [
    "gen",
    "protocol",
    "logging",
    "discovery",
    "process",
    "security",
    "transport",
    "plugin",
    "resilience",
  ],
  manager: [...HOST_AND_BELOW, "oci"],
  // The status page reads what the manager and the host clients report.
  status: [...HOST_AND_BELOW, "manager"],
  // `connect-plugin code-cache` launches the plugin once, as a host.
  cli: [
    "protocol",
    "logging",
    "manifest",
    "process",
    "security",
    "oci",
    "host",
    "manager",
    "status",
    "conformance",
  ],
  // Beside the host and the plugin side, above what it observes: only the
  // entry point (connect-plugin/observability) imports it. It reads the
  // event types of resilience, host and manager; logging carries its log
  // context to pluginLog() without importing it.
  observability: ["protocol", "logging", "transport", "resilience", "host", "manager"],
  conformance: ["gen", "protocol", "logging", "process", "security", "transport"],
};

/** One ESLint config block per folder, forbidding imports of the folders it may not use. */
export function layerRules() {
  const folders = Object.keys(LAYERS);
  return folders.map((folder) => {
    const allowed = new Set([folder, ...(LAYERS[folder] ?? [])]);
    const forbidden = folders.filter((f) => !allowed.has(f));
    return {
      files: [`src/${folder}/**/*.ts`],
      rules: {
        "no-restricted-imports": [
          "error",
          {
            patterns: forbidden.map((target) => ({
              regex: `^(\\.\\./)+${target}/`,
              message:
                `src/${folder}/ may not import src/${target}/: imports flow down the layers ` +
                `(eslint.layers.js, docs/internals.md).`,
            })),
          },
        ],
      },
    };
  });
}
