import { EventEmitter, on } from "node:events";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  GetResponseSchema,
  PutManyResponseSchema,
  PutResponseSchema,
  WatchEventSchema,
  type GetRequest,
  type GetResponse,
  type KV,
  type PutRequest,
  type WatchEvent,
  type WatchRequest,
} from "./gen/example/kv/v1/kv_pb.js";

/**
 * The KV plugin's implementation: a map in memory. The same object serves
 * in process, as a subprocess and as a remote service.
 */
export class MemoryKV implements ServiceImpl<typeof KV> {
  private readonly data = new Map<string, Uint8Array>();
  /** One "put" listener per open Watch stream, so no listener limit. */
  private readonly changes = new EventEmitter().setMaxListeners(0);

  get(req: GetRequest): GetResponse {
    const value = this.data.get(req.key);
    return create(GetResponseSchema, {
      value: value ?? new Uint8Array(),
      found: value !== undefined,
    });
  }

  put(req: PutRequest) {
    this.data.set(req.key, req.value);
    this.changes.emit("put", req);
    return create(PutResponseSchema, {});
  }

  async *watch(req: WatchRequest, ctx: HandlerContext): AsyncIterable<WatchEvent> {
    // Subscribe before the first event goes out, so that no Put made after
    // the caller sees it is missed.
    const puts = on(this.changes, "put", { signal: ctx.signal }) as AsyncIterable<[PutRequest]>;
    yield create(WatchEventSchema, {
      key: req.key,
      value: this.data.get(req.key) ?? new Uint8Array(),
    });
    for await (const [put] of puts) {
      if (put.key === req.key) yield create(WatchEventSchema, { key: put.key, value: put.value });
    }
  }

  async putMany(requests: AsyncIterable<PutRequest>) {
    let count = 0;
    for await (const req of requests) {
      this.put(req);
      count++;
    }
    return create(PutManyResponseSchema, { count });
  }

  async *exchange(requests: AsyncIterable<GetRequest>): AsyncIterable<GetResponse> {
    for await (const req of requests) yield this.get(req);
  }
}
