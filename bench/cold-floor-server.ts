/**
 * The floor of a Node plugin's cold start with AutoMTLS (bench/cold-floor.ts
 * starts it): what any Node process that serves one mutual-TLS connection on
 * a unix socket must do, as a launched plugin does, and nothing more: one
 * CommonJS file (cold-floor.ts bundles it; an ES module entry costs more),
 * node:tls, a fresh P-256 AutoMTLS certificate, the host's certificate
 * (PLUGIN_CLIENT_CERT) pinned, a TLS server with `ca: []`
 * (tls-listener.ts), and an echo of the first bytes. No protobuf, no RPC, no
 * framing: `npm run bench:cold` compares the plugin's start with this.
 */
import { X509Certificate } from "node:crypto";
import { writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:tls";
import { certificateForHandshake, generateAutoMtlsCertificate } from "../src/security/auto-mtls.js";

const pinned = new X509Certificate(process.env.PLUGIN_CLIENT_CERT ?? "").raw;
const own = generateAutoMtlsCertificate("P-256");
const path = join(tmpdir(), `cold-floor-${process.pid}.sock`);
const server = createServer(
  { cert: own.certPem, key: own.keyPem, ca: [], requestCert: true, rejectUnauthorized: false },
  (socket) => {
    if (socket.getPeerX509Certificate()?.raw.equals(pinned) !== true) return socket.destroy();
    socket.on("data", (data: Buffer) => socket.write(data));
  },
);
process.once("SIGTERM", () => server.close(() => process.exit(0)));
// One line, as a plugin's handshake line: where, and the certificate to trust.
server.listen(path, () => writeSync(1, `${path}|${certificateForHandshake(own.der)}\n`));
