/**
 * The plugin's definition: its services and their implementations. It lives
 * in its own module, apart from plugin.ts, so that a host can import it and
 * run the plugin in process (`inProcess(greeterPlugin())`) without calling
 * serve().
 */
import { implement, type PluginDefinition } from "connect-plugin/plugin";
import { GreeterService, handshake } from "./shared.js";

export function greeterPlugin(): PluginDefinition {
  return {
    handshake,
    plugins: {
      greeter: implement(
        GreeterService,
        {
          // Unary: return the response (or a promise of it).
          greet(request) {
            return { message: `Hello, ${request.name || "world"}!` };
          },
          // Server streaming: an async generator; each `yield` sends one
          // response. ctx.signal fires when the caller cancels.
          async *countDown(request, ctx) {
            for (let value = request.from; value > 0 && !ctx.signal.aborted; value--) {
              yield { value };
            }
          },
        },
        { version: "1.0.0" },
      ),
    },
  };
}
