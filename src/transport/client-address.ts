import { createContextKey } from "@connectrpc/connect";

/**
 * The network address of the host making a call, as the plugin's server saw
 * it ("" when unknown). Server interceptors read it from
 * `req.contextValues.get(clientAddress)`, e.g. to rate-limit per client.
 */
export const clientAddress = createContextKey<string>("", { description: "client address" });
