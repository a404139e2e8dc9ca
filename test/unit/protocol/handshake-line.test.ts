/**
 * src/protocol/handshake-line.ts: the one stdout line a plugin prints, read
 * the way go-plugin's host reads it. A user sees these errors when a plugin
 * misbehaves, so each is checked word for word.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatHandshakeLine, parseHandshakeLine } from "../../../src/protocol/handshake-line.js";
import { PluginError } from "../../../src/protocol/errors.js";

function refusal(line: string): { kind: string; message: string } {
  try {
    parseHandshakeLine(line);
  } catch (e) {
    assert.ok(e instanceof PluginError, `${line}: ${String(e)}`);
    return { kind: e.kind, message: e.message };
  }
  assert.fail(`accepted ${JSON.stringify(line)}`);
}

test("format: go-plugin's six fields (an empty certificate ends the line in '|'), a seventh only for mux", () => {
  const line = {
    protocolVersion: 3,
    network: "tcp",
    address: "127.0.0.1:4000",
    protocol: "grpc",
    serverCert: undefined,
    multiplex: false,
  } as const;
  assert.equal(formatHandshakeLine(line), "1|3|tcp|127.0.0.1:4000|grpc|");
  assert.equal(
    formatHandshakeLine({ ...line, serverCert: "CERT", multiplex: true }),
    "1|3|tcp|127.0.0.1:4000|grpc|CERT|true",
  );
});

test("parse: every field read back; blanks and a Windows line end around the line are ignored", () => {
  const cert = "M".repeat(51);
  assert.deepEqual(parseHandshakeLine(` 1|7|unix|/run/p.sock|framed|${cert}|true\r\n`), {
    coreVersion: 1,
    protocolVersion: 7,
    network: "unix",
    address: "/run/p.sock",
    protocol: "framed",
    serverCert: cert,
    multiplex: true,
  });
  assert.deepEqual(parseHandshakeLine("1|-2|tcp|h:1|connect|\n"), {
    coreVersion: 1,
    protocolVersion: -2,
    network: "tcp",
    address: "h:1",
    protocol: "connect",
    serverCert: undefined,
    multiplex: false,
  });
});

test("parse: four fields mean netrpc; a certificate of 50 characters or fewer is ignored; mux only for 'true'", () => {
  const four = parseHandshakeLine("1|1|tcp|127.0.0.1:1");
  assert.equal(four.protocol, "netrpc");
  assert.equal(four.serverCert, undefined);
  assert.equal(four.multiplex, false);
  assert.equal(parseHandshakeLine(`1|1|tcp|a|grpc|${"A".repeat(50)}`).serverCert, undefined);
  assert.equal(parseHandshakeLine(`1|1|tcp|a|grpc|${"A".repeat(51)}`).serverCert, "A".repeat(51));
  assert.equal(parseHandshakeLine("1|1|tcp|a|grpc||yes").multiplex, false);
  assert.equal(parseHandshakeLine("1|1|tcp|a|grpc||TRUE").multiplex, false);
});

test("stray stdout before the handshake is named as such, quoted, and cut at 200 characters", () => {
  assert.deepEqual(refusal("  Loading config...\n"), {
    kind: "unexpected-output",
    message:
      'unexpected output on stdout before the handshake line: "Loading config...". ' +
      "A plugin must print nothing on stdout before it; send logs to stderr.",
  });
  const long = "x".repeat(250);
  assert.equal(
    refusal(long).message,
    `unexpected output on stdout before the handshake line: "${"x".repeat(200)}…". ` +
      "A plugin must print nothing on stdout before it; send logs to stderr.",
  );
  assert.equal(
    refusal("y".repeat(200)).message,
    `unexpected output on stdout before the handshake line: "${"y".repeat(200)}". ` +
      "A plugin must print nothing on stdout before it; send logs to stderr.",
    "exactly 200 characters are shown whole",
  );
});

test("a malformed line: the error quotes it and names the field, word for word", () => {
  const cases: Array<[string, string]> = [
    ["1|1|unix", 'expected at least 4 "|"-separated fields, got 3'],
    ["|", 'expected at least 4 "|"-separated fields, got 2'],
    ["x1|1|unix|/s", 'core version "x1" is not an integer'],
    ["1x|1|unix|/s", 'core version "1x" is not an integer'],
    ["|1|unix|/s", 'core version "" is not an integer'],
    ["2|1|unix|/s", "incompatible core protocol version: plugin speaks 2, host speaks 1"],
    ["-1|1|unix|/s", "incompatible core protocol version: plugin speaks -1, host speaks 1"],
    ["1|v2|unix|/s", 'protocol version "v2" is not an integer'],
    ["1|2.0|unix|/s", 'protocol version "2.0" is not an integer'],
    ["1|1|udp|/s", 'network "udp" is neither "unix" nor "tcp"'],
    ["1|1|UNIX|/s", 'network "UNIX" is neither "unix" nor "tcp"'],
    ["1|1|unix||grpc", "the address is empty"],
    ["1|1|unix|/s|soap", 'unknown protocol "soap"'],
    ["1|1|unix|/s||", 'unknown protocol ""'],
  ];
  for (const [line, why] of cases) {
    assert.deepEqual(
      refusal(line),
      {
        kind: "malformed-handshake",
        message: `malformed handshake line ${JSON.stringify(line)}: ${why}.`,
      },
      line,
    );
  }
  const long = `1|1|udp|${"a".repeat(300)}`;
  assert.equal(
    refusal(long).message,
    `malformed handshake line ${JSON.stringify(`${long.slice(0, 200)}…`)}: network "udp" is neither "unix" nor "tcp".`,
  );
});

test("every protocol go-plugin or this library speaks is accepted", () => {
  for (const protocol of ["grpc", "connect", "framed", "netrpc"]) {
    assert.equal(parseHandshakeLine(`1|1|unix|/s|${protocol}`).protocol, protocol);
  }
});
