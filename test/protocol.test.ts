import { test } from "node:test";
import assert from "node:assert/strict";
import { formatHandshakeLine, parseHandshakeLine } from "../src/protocol/handshake-line.js";
import { negotiateVersion, parseVersionList } from "../src/protocol/versions.js";
import { LineSplitter } from "../src/logging/line-splitter.js";
import { parsePluginLine } from "../src/logging/plugin-output.js";
import { PluginError } from "../src/index.js";

test("handshake line: formats go-plugin's six fields and parses back", () => {
  const line = formatHandshakeLine({
    protocolVersion: 2,
    network: "unix",
    address: "/tmp/cp-abc/plugin.sock",
    protocol: "connect",
    serverCert: undefined,
    multiplex: false,
  });
  assert.equal(line, "1|2|unix|/tmp/cp-abc/plugin.sock|connect|");
  const parsed = parseHandshakeLine(line);
  assert.equal(parsed.protocolVersion, 2);
  assert.equal(parsed.network, "unix");
  assert.equal(parsed.address, "/tmp/cp-abc/plugin.sock");
  assert.equal(parsed.protocol, "connect");
  assert.equal(parsed.serverCert, undefined);
});

test("handshake line: accepts go-plugin's 4 to 7 fields", () => {
  assert.equal(parseHandshakeLine("1|1|tcp|127.0.0.1:1234").protocol, "netrpc");
  const cert = "A".repeat(60);
  const full = parseHandshakeLine(`1|1|tcp|127.0.0.1:1234|grpc|${cert}|true`);
  assert.equal(full.serverCert, cert);
  assert.equal(full.multiplex, true);
  // go-plugin ignores certificates of 50 characters or fewer.
  assert.equal(
    parseHandshakeLine(`1|1|tcp|127.0.0.1:1|grpc|${"A".repeat(50)}`).serverCert,
    undefined,
  );
});

test("handshake line: each bad field gets an error that names it", () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      "loading...",
      "unexpected-output",
      /^unexpected output on stdout before the handshake line: "loading\.\.\."\. A plugin must print nothing on stdout before it; send logs to stderr\.$/,
    ],
    ["1|1|unix", "malformed-handshake", /expected at least 4 "\|"-separated fields, got 3/],
    [
      "2|1|unix|/x",
      "malformed-handshake",
      /incompatible core protocol version: plugin speaks 2, host speaks 1/,
    ],
    ["1|one|unix|/x", "malformed-handshake", /protocol version "one" is not an integer/],
    ["1|1|udp|/x", "malformed-handshake", /network "udp" is neither "unix" nor "tcp"/],
    ["1|1|unix||grpc", "malformed-handshake", /the address is empty/],
    ["1|1|unix|/x|soap", "malformed-handshake", /unknown protocol "soap"/],
  ];
  for (const [line, kind, message] of cases) {
    assert.throws(
      () => parseHandshakeLine(line),
      (e: unknown) => e instanceof PluginError && e.kind === kind && message.test(e.message),
      line,
    );
  }
});

test("version negotiation picks the highest common version", () => {
  assert.equal(negotiateVersion([1, 2, 3], [2, 3, 4]), 3);
  assert.equal(negotiateVersion([1], [1]), 1);
  assert.equal(negotiateVersion([1, 2], [3, 4]), undefined);
  assert.deepEqual(parseVersionList("3, 1,x,2"), [3, 1, 2]);
  assert.deepEqual(parseVersionList(undefined), []);
  // Like Go's strconv.Atoi: "2abc" is no version, 0 is one.
  assert.deepEqual(parseVersionList("2abc,0,3"), [0, 3]);
});

test("line splitter: joins chunks, splits lines, cuts overlong lines", () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((l) => lines.push(l), 8);
  splitter.push(Buffer.from("ab"));
  splitter.push(Buffer.from("c\r\nde"));
  splitter.push(Buffer.from("f\n0123456789abcdef01\nlast"));
  splitter.end();
  assert.deepEqual(lines, ["abc", "def", "01234567", "89abcdef", "01", "last"]);
});

test("plugin output: hclog and pino JSON lines become structured records", () => {
  const hclog = parsePluginLine(
    '{"@level":"error","@message":"boom","@timestamp":"2026-01-02T03:04:05.000Z","disk":"sda"}',
    "p",
    "stderr",
    "info",
  );
  assert.equal(hclog.level, "error");
  assert.equal(hclog.message, "boom");
  assert.deepEqual(hclog.fields, { disk: "sda" });
  assert.equal(hclog.time.toISOString(), "2026-01-02T03:04:05.000Z");

  const pino = parsePluginLine(
    '{"level":40,"msg":"careful","time":1700000000000}',
    "p",
    "stderr",
    "info",
  );
  assert.equal(pino.level, "warn");
  assert.equal(pino.message, "careful");

  const plain = parsePluginLine("{not json", "p", "stderr", "info");
  assert.equal(plain.message, "{not json");
  assert.equal(plain.level, "info");
});
