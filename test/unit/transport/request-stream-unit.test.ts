/**
 * RequestStream on its own: readers sharing its iterator (two `for await`
 * loops over the same request, as workers do), as connect-es' request
 * iterable serves them: each next() gets its own message, in order, none
 * left waiting.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { compressionGzip } from "@connectrpc/connect-node";
import { RequestStream, type RequestFormat } from "../../../src/transport/request-stream.js";

function format(): RequestFormat {
  return {
    readMaxBytes: 1024,
    compression: compressionGzip,
    endFlag: 2,
    parse: (bytes) => Buffer.from(bytes).toString(),
  };
}

function env(text: string, gzip = false): Buffer {
  const data = gzip ? gzipSync(text) : Buffer.from(text);
  const head = Buffer.alloc(5);
  head[0] = gzip ? 1 : 0;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

function within<T>(p: Promise<T>): Promise<T | string> {
  return Promise.race([p, new Promise<string>((r) => setTimeout(() => r("still waiting"), 1000))]);
}

test("two next() calls waiting: each gets a message, in order", async () => {
  const input = new RequestStream(new PassThrough(), format());
  const a = input.next();
  const b = input.next();
  input.chunk(Buffer.concat([env("one"), env("two")]));
  input.end();
  assert.deepEqual(await within(Promise.all([a, b])), [
    { done: false, value: "one" },
    { done: false, value: "two" },
  ]);
  assert.deepEqual(await input.next(), { done: true, value: undefined });
});

test("two next() calls over a compressed message and a plain one: each its own", async () => {
  const input = new RequestStream(new PassThrough(), format());
  input.chunk(Buffer.concat([env("one", true), env("two")]));
  input.end();
  const a = input.next();
  const b = input.next();
  assert.deepEqual(await within(Promise.all([a, b])), [
    { done: false, value: "one" },
    { done: false, value: "two" },
  ]);
});

test("two next() calls waiting when the body ends: both done", async () => {
  const input = new RequestStream(new PassThrough(), format());
  const a = input.next();
  const b = input.next();
  input.end();
  assert.deepEqual(await within(Promise.all([a, b])), [
    { done: true, value: undefined },
    { done: true, value: undefined },
  ]);
});
