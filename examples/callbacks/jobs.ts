/**
 * The jobs plugin: runs a job step by step, reads the host's settings for it
 * (a server-streaming callback) and reports every step to the host (a unary
 * callback). The host may stop the job by answering keep_going: false.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { hostClient, implement, type PluginDefinition } from "../../src/plugin.js";
import { Jobs, Progress, handshake } from "./shared.js";

export function jobsDefinition(): PluginDefinition {
  return {
    handshake,
    plugins: {
      jobs: implement(
        Jobs,
        {
          async run(req, ctx) {
            const progress = hostClient(ctx, Progress);
            const notes: string[] = [];
            for await (const setting of progress.settings({ name: req.name })) {
              notes.push(`${setting.key}=${setting.value}`);
            }
            let done = 0;
            while (done < req.steps) {
              await sleep(req.stepDelayMs, undefined, { signal: ctx.signal });
              done++;
              const answer = await progress.report({
                name: req.name,
                step: done,
                steps: req.steps,
              });
              if (!answer.keepGoing) {
                notes.push(`stopped by the host after step ${done}`);
                break;
              }
            }
            return { name: req.name, stepsDone: done, notes };
          },
          async *watch(req, ctx) {
            const progress = hostClient(ctx, Progress);
            for (let step = 1; step <= req.steps; step++) {
              await progress.report({ name: req.name, step, steps: req.steps });
              yield { step };
            }
          },
        },
        { version: "1.0.0" },
      ),
    },
  };
}
