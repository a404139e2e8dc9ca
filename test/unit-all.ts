/**
 * The fast unit tests in one process, for mutation testing (`npm run
 * mutation`): StrykerJS's command runner starts this once per mutant, so it
 * must not spawn anything or wait for time. Not a test file itself (npm test
 * runs each of these on its own).
 */
import "./unit-decisions.test.js";
import "./fuzz-properties.test.js";
import "./resilience-units.test.js";
import "./protocol.test.js";
import "./unit/resilience/retry-decision.test.js";
import "./unit/resilience/negotiation.test.js";
import "./unit/security/plaintext.test.js";
import "./unit/transport/framed/frames.test.js";
import "./unit/protocol/versions.test.js";
import "./unit/protocol/handshake-line.test.js";
import "./unit/resilience/retry.test.js";
import "./unit/resilience/circuit-breaker.test.js";
import "./unit/resilience/balancer.test.js";
import "./unit/security/signing.test.js";
import "./unit/security/canonical.test.js";
import "./unit/security/plugin-dir.test.js";
import "./unit/host/sources.test.js";
import "./unit/manifest/manifest.test.js";
import "./unit/transport/framed/client.test.js";
import "./unit/transport/create-client-iterator.test.js";
import "./unit/transport/lazy-headers.test.js";
