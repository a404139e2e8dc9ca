import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);
const brotliCompress = promisify(zlib.brotliCompress);
const brotliDecompress = promisify(zlib.brotliDecompress);

/**
 * gzip and Brotli on node:zlib, accepted by default by our HTTP clients and
 * servers (as connect-es' Node packages do); never sent unless configured.
 * Decompression stops at readMaxBytes, so a small compressed bomb cannot
 * allocate gigabytes.
 */
export const compressionGzip: Compression = {
  name: "gzip",
  compress: (bytes) => toArrayBuffer(gzip(bytes)),
  decompress: (bytes, readMaxBytes) => inflate(gunzip, bytes, readMaxBytes),
};

export const compressionBrotli: Compression = {
  name: "br",
  compress: (bytes) => toArrayBuffer(brotliCompress(bytes)),
  decompress: (bytes, readMaxBytes) => inflate(brotliDecompress, bytes, readMaxBytes),
};

/** Accepted by default, most preferred first. */
export const defaultCompressions: Compression[] = [compressionGzip, compressionBrotli];

function inflate(
  fn: (bytes: Uint8Array, options: zlib.ZlibOptions) => Promise<Buffer>,
  bytes: Uint8Array,
  readMaxBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  if (bytes.length === 0) return Promise.resolve(new Uint8Array(0));
  return toArrayBuffer(
    fn(bytes, { maxOutputLength: readMaxBytes }).catch((e: unknown) => {
      const code = (e as { code?: unknown }).code;
      if (code === "ERR_BUFFER_TOO_LARGE") {
        throw new ConnectError(
          `message is larger than configured readMaxBytes ${readMaxBytes} after decompression`,
          Code.ResourceExhausted,
          undefined,
          undefined,
          e,
        );
      }
      const invalid =
        code === "Z_DATA_ERROR" ||
        code === "ERR_PADDING_2" ||
        (typeof code === "string" && code.startsWith("ERR__ERROR_FORMAT_"));
      throw new ConnectError(
        "decompression failed",
        invalid ? Code.InvalidArgument : Code.Internal,
        undefined,
        undefined,
        e,
      );
    }),
  );
}

function toArrayBuffer(bytes: Promise<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  return bytes.then((b) =>
    b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b),
  );
}
