/**
 * Property-based tests (fast-check) for every parser that reads input from
 * outside: the handshake line (ours and go-plugin's), the frames codec, the
 * manifest, the plugin-set version lists, OCI references and registry
 * documents, canonical JSON, and the handshake certificate field. Each
 * parser either returns a value that satisfies its contract or throws its
 * own error type with a message; nothing else (no TypeError, no hang, no
 * allocation the input did not pay for).
 *
 * `npm test` runs FUZZ_RUNS (default 300) cases per property; `npm run fuzz`
 * runs 100,000. Failing cases found by fuzzing are kept below as examples.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { PluginError } from "../src/protocol/errors.js";
import { formatHandshakeLine, parseHandshakeLine } from "../src/protocol/handshake-line.js";
import { negotiateVersion, parseVersionList } from "../src/protocol/versions.js";
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameReader,
  encodeFrame,
  pairsToHeaders,
  parseJson,
} from "../src/transport/framed/frames.js";
import { ManagementError } from "../src/manifest/errors.js";
import { parseManifest, validateManifest } from "../src/manifest/manifest.js";
import { formatReference, parseReference } from "../src/oci/reference.js";
import { parseRegistryDocument } from "../src/oci/documents.js";
import { canonicalJson } from "../src/security/canonical.js";
import {
  certificateForHandshake,
  certificateFromHandshake,
  generateAutoMtlsCertificate,
} from "../src/security/auto-mtls.js";

const numRuns = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns };

/** Runs `f`; an error must be of one of `types` and carry a message. */
function onlyThrows(f: () => unknown, ...types: Array<new (...a: never[]) => Error>): void {
  try {
    f();
  } catch (error) {
    assert.ok(
      types.some((t) => error instanceof t),
      `unexpected ${(error as Error)?.constructor?.name}: ${String(error)}`,
    );
    assert.ok((error as Error).message.length > 0);
  }
}

const field = fc.stringMatching(/^[^|\n\r]*$/);

test("handshake line: any text parses or fails with a PluginError", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc
          .array(fc.oneof(field, fc.constantFrom("1", "unix", "tcp", "grpc", "framed")), {
            maxLength: 9,
          })
          .map((parts) => parts.join("|")),
      ),
      (line) => onlyThrows(() => parseHandshakeLine(line), PluginError),
    ),
    params,
  );
});

test("handshake line: what format writes, parse reads back (go-plugin's 6 fields, and mux)", () => {
  fc.assert(
    fc.property(
      fc.record({
        protocolVersion: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        network: fc.constantFrom("unix" as const, "tcp" as const),
        address: fc.stringMatching(/^[A-Za-z0-9/._:[\]-]{1,80}$/),
        protocol: fc.constantFrom("grpc" as const, "connect" as const, "framed" as const),
        serverCert: fc.option(fc.stringMatching(/^[A-Za-z0-9+/]{51,200}$/), {
          nil: undefined,
        }),
        multiplex: fc.boolean(),
      }),
      (line) => {
        const parsed = parseHandshakeLine(formatHandshakeLine(line));
        assert.deepEqual(parsed, { coreVersion: 1, ...line });
      },
    ),
    params,
  );
});

test("version lists: only whole decimal numbers count; negotiation picks the highest common", () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      for (const v of parseVersionList(text)) assert.ok(Number.isInteger(v) && v >= 0);
    }),
    params,
  );
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 50 }), { maxLength: 6 }),
      fc.uniqueArray(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 6 }),
      (host, ours) => {
        assert.deepEqual(parseVersionList(host.join(",")), host);
        const common = host.filter((v) => ours.includes(v));
        assert.equal(
          negotiateVersion(host, ours),
          common.length === 0 ? undefined : Math.max(...common),
        );
      },
    ),
    params,
  );
});

test("frames: any frames, any chunking, come out whole and in order", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          type: fc.integer({ min: 0, max: 255 }),
          id: fc.integer({ min: 0, max: 0xffffffff }),
          payload: fc.uint8Array({ maxLength: 300 }),
        }),
        { maxLength: 12 },
      ),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
      (frames, cuts) => {
        const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type as 1, f.id, f.payload)));
        const got: typeof frames = [];
        const reader = new FrameReader((type, id, payload) =>
          got.push({ type, id, payload: new Uint8Array(payload) }),
        );
        let offset = 0;
        for (let k = 0; offset < stream.length; k++) {
          const n = cuts[k % cuts.length] as number;
          reader.push(stream.subarray(offset, offset + n));
          offset += n;
        }
        assert.deepEqual(
          got,
          frames.map((f) => ({ ...f, payload: new Uint8Array(f.payload) })),
        );
      },
    ),
    params,
  );
});

test("frames: random bytes yield frames or the size-limit error, and nothing is buffered beyond what arrived", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
      let seen = 0;
      const reader = new FrameReader((_t, _i, payload) => (seen += payload.length), 1024);
      let fed = 0;
      try {
        for (const c of chunks) {
          reader.push(Buffer.from(c));
          fed += c.length;
        }
      } catch (error) {
        assert.match((error as Error).message, /^frame of \d+ bytes exceeds the limit of 1024$/);
        return;
      }
      assert.ok(seen <= fed, "payloads are views of what arrived");
    }),
    params,
  );
  // The 4 GiB prefix: refused on its 9-byte header, before any allocation.
  const header = Buffer.alloc(FRAME_HEADER_BYTES, 0xff);
  assert.throws(
    () => new FrameReader(() => {}).push(header),
    new RegExp(
      `^Error: frame of 4294967295 bytes exceeds the limit of ${DEFAULT_MAX_FRAME_BYTES}$`,
    ),
  );
});

test("frames: JSON payloads and header pairs from a peer never throw anything unexpected", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) =>
      onlyThrows(() => parseJson(bytes), SyntaxError),
    ),
    params,
  );
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      // Header names and values a peer may send are checked by Headers; bad ones are a TypeError.
      onlyThrows(() => pairsToHeaders(value), TypeError);
    }),
    params,
  );
});

const manifestLike = fc.record(
  {
    schemaVersion: fc.oneof(fc.constant(1), fc.jsonValue()),
    name: fc.oneof(fc.constantFrom("kv", "a-b"), fc.string()),
    version: fc.oneof(fc.constant("1.0.0"), fc.string()),
    description: fc.string(),
    license: fc.string(),
    entrypoints: fc.oneof(
      fc.constant({ "linux/amd64": { file: "kv" } }),
      fc.dictionary(fc.string(), fc.jsonValue()),
    ),
    protocolVersions: fc.oneof(fc.constant([1]), fc.array(fc.jsonValue())),
    plugins: fc.oneof(
      fc.constant([{ name: "kv", service: "example.kv.v1.KV" }]),
      fc.array(fc.jsonValue()),
    ),
    hostVersions: fc.oneof(fc.constant("*"), fc.string()),
    files: fc.oneof(
      fc.constant({ kv: `sha256:${"a".repeat(64)}` }),
      fc.dictionary(fc.string(), fc.jsonValue()),
    ),
  },
  { requiredKeys: [] },
);

test("manifests: any JSON, YAML or value validates or fails with a ManagementError", () => {
  fc.assert(
    fc.property(fc.oneof(manifestLike, fc.jsonValue()), (value) =>
      onlyThrows(() => validateManifest(value), ManagementError),
    ),
    params,
  );
  fc.assert(
    fc.property(fc.string(), fc.constantFrom("plugin.json", "plugin.yaml"), (text, name) =>
      onlyThrows(() => parseManifest(text, name), ManagementError),
    ),
    params,
  );
});

test("OCI references: any text parses or fails with a ManagementError; valid ones round-trip", () => {
  fc.assert(
    fc.property(fc.string(), (text) =>
      onlyThrows(() => parseReference(text, "registry.test"), ManagementError),
    ),
    params,
  );
  const component = fc.stringMatching(/^[a-z0-9]+([._-][a-z0-9]+)*$/);
  fc.assert(
    fc.property(
      fc.record({
        registry: fc.constantFrom("localhost:5000", "registry.test", "127.0.0.1:1"),
        repository: fc.array(component, { minLength: 1, maxLength: 3 }).map((p) => p.join("/")),
        tag: fc.option(fc.stringMatching(/^\w[\w.-]{0,127}$/), { nil: undefined }),
        digest: fc.option(
          fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => `sha256:${h}`),
          {
            nil: undefined,
          },
        ),
      }),
      (ref) => {
        const parsed = parseReference(formatReference(ref));
        assert.deepEqual(parsed, {
          ...ref,
          tag: ref.tag ?? (ref.digest === undefined ? "latest" : undefined),
        });
      },
    ),
    params,
  );
});

test("OCI documents: any bytes, any JSON, fail as a ManagementError or pass the shape check", () => {
  const descriptor = fc.record(
    {
      mediaType: fc.oneof(
        fc.constant("application/vnd.oci.image.manifest.v1+json"),
        fc.jsonValue(),
      ),
      digest: fc.oneof(fc.constant(`sha256:${"b".repeat(64)}`), fc.jsonValue()),
      size: fc.oneof(fc.nat(), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );
  const doc = fc.oneof(
    fc.jsonValue(),
    fc.record({ manifests: fc.oneof(fc.array(descriptor), fc.jsonValue()) }, { requiredKeys: [] }),
    fc.record(
      {
        config: fc.oneof(descriptor, fc.jsonValue()),
        layers: fc.oneof(fc.array(descriptor), fc.jsonValue()),
      },
      { requiredKeys: [] },
    ),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        doc.map((d) => Buffer.from(JSON.stringify(d) ?? "")),
        fc.uint8Array().map((b) => Buffer.from(b)),
      ),
      (body) => onlyThrows(() => parseRegistryDocument(body, "test"), ManagementError),
    ),
    params,
  );
});

test("OCI documents: a digest that String() cannot convert fails as a ManagementError (found by the 100,000-case run)", () => {
  for (const digest of [{ toString: false }, { valueOf: 1, toString: [] }, [{}], null, 7]) {
    const body = Buffer.from(JSON.stringify({ config: { digest } }));
    assert.throws(
      () => parseRegistryDocument(body, "test"),
      (e: unknown) => {
        assert.ok(e instanceof ManagementError, `got ${String(e)}`);
        assert.equal(e.kind, "verification-failed");
        assert.match(
          e.message,
          /^test: config: refusing malformed digest ".*"; expected sha256:<64 hex digits>$/,
        );
        return true;
      },
    );
  }
});

test("canonical JSON: parses back to the same value, ignores key order, idempotent", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const text = canonicalJson(value);
      assert.doesNotMatch(text, /\n/);
      const back: unknown = JSON.parse(text);
      // JSON itself turns -0 into 0; everything else is kept as it was.
      assert.deepEqual(back, JSON.parse(JSON.stringify(value)));
      assert.equal(canonicalJson(back), text);
    }),
    params,
  );
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.integer()), (o) => {
      const reversed = Object.fromEntries(Object.entries(o).reverse());
      const text = canonicalJson(reversed);
      assert.equal(text, canonicalJson(o));
      // Keys in UTF-16 code unit order (JSON.parse would reorder integer-like keys).
      const keys = Object.keys(o).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.equal(text, `{${keys.map((k) => `${JSON.stringify(k)}:${o[k]}`).join(",")}}`);
    }),
    params,
  );
});

test("handshake certificate field: garbage fails with a readable error; a real one round-trips", () => {
  fc.assert(
    fc.property(fc.string(), (text) => onlyThrows(() => certificateFromHandshake(text), Error)),
    { numRuns: Math.min(numRuns, 2_000) },
  );
  const cert = generateAutoMtlsCertificate();
  const der = Buffer.from(
    cert.certPem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""),
    "base64",
  );
  assert.equal(certificateFromHandshake(certificateForHandshake(der)).trim(), cert.certPem.trim());
  assert.throws(
    () => certificateFromHandshake("bm90IGEgY2VydGlmaWNhdGU"),
    /^Error: the certificate in the plugin's handshake line is not a valid X\.509 certificate \(/,
  );
});
