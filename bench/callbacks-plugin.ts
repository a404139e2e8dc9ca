/**
 * The plugin of `npm run bench:callbacks`: Jobs/Run answers at once for the
 * job "plain", and after one unary callback to the host's Progress/Report
 * for any other job. Launched by the bench, or in network mode.
 */
import { hostClient, implement, serve, type PluginDefinition } from "../src/plugin.js";
import { Jobs, Progress, handshake } from "../examples/callbacks/shared.js";

export function benchJobs(): PluginDefinition {
  return {
    handshake,
    plugins: {
      jobs: implement(Jobs, {
        async run(req, ctx) {
          if (req.name !== "plain") {
            await hostClient(ctx, Progress).report({ name: req.name, step: 1, steps: 1 });
          }
          return { name: req.name };
        },
        async *watch() {},
      }),
    },
  };
}

if (process.argv[2] === "serve") await serve(benchJobs());
