import { ManagementError } from "../manifest/errors.js";
import { isDigest } from "../manifest/digest.js";
import type { Descriptor, ImageIndex, ImageManifest } from "./media-types.js";

/**
 * Parses an image index or image manifest fetched from a registry, checking
 * the shape the puller relies on instead of casting parsed JSON: every
 * descriptor has a media type, a `sha256:<64 hex>` digest and a non-negative
 * integer size. A registry document is input from the network; a malformed
 * one (an HTML page from a captive portal, a `../` digest) fails as a
 * ManagementError ("registry" for non-JSON, "invalid-manifest" for a wrong
 * shape, "verification-failed" for a malformed digest), never as a
 * SyntaxError or TypeError, and no field of it is used before it passed.
 */
export function parseRegistryDocument(body: Buffer, label: string): ImageIndex | ImageManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString("utf8"));
  } catch {
    throw new ManagementError(
      "registry",
      `${label}: the registry answered with something that is not JSON ` +
        `(${JSON.stringify(body.subarray(0, 60).toString("utf8"))}…)`,
    );
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw shape(label, "it is not a JSON object");
  }
  const o = doc as Record<string, unknown>;
  if ("manifests" in o) {
    if (!Array.isArray(o.manifests)) throw shape(label, "manifests is not an array");
    o.manifests.forEach((d, i) => descriptor(d, `${label}: manifests[${i}]`));
    return doc as ImageIndex;
  }
  if (o.config === undefined) throw shape(label, "it has neither manifests nor config");
  descriptor(o.config, `${label}: config`);
  if (!Array.isArray(o.layers)) throw shape(label, "layers is not an array");
  o.layers.forEach((d, i) => descriptor(d, `${label}: layers[${i}]`));
  return doc as ImageManifest;
}

function descriptor(d: unknown, where: string): asserts d is Descriptor {
  if (typeof d !== "object" || d === null) throw shape(where, "the descriptor is not an object");
  const o = d as Record<string, unknown>;
  if (!isDigest(o.digest)) {
    // Not String(): a JSON object such as {"toString": false} cannot be
    // converted, and the error must still be a ManagementError.
    const shown = typeof o.digest === "string" ? o.digest : (JSON.stringify(o.digest) ?? "nothing");
    throw new ManagementError(
      "verification-failed",
      `${where}: refusing malformed digest ${JSON.stringify(shown.slice(0, 100))}; ` +
        `expected sha256:<64 hex digits>`,
    );
  }
  if (typeof o.size !== "number" || !Number.isSafeInteger(o.size) || o.size < 0) {
    throw shape(where, `size ${JSON.stringify(o.size)} is not a non-negative integer`);
  }
  if (typeof o.mediaType !== "string") throw shape(where, "mediaType is missing");
  if (
    o.annotations !== undefined &&
    (typeof o.annotations !== "object" || o.annotations === null)
  ) {
    throw shape(where, "annotations is not an object");
  }
}

function shape(label: string, why: string): ManagementError {
  return new ManagementError("invalid-manifest", `${label} is malformed: ${why}`);
}
