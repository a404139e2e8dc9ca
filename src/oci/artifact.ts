import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ManagementError } from "../manifest/errors.js";
import { filesFor, unsafePath, validateManifest } from "../manifest/manifest.js";
import { splitPlatform } from "../manifest/platform.js";
import { SIGNATURE_FILE, type PluginManifest } from "../manifest/types.js";
import { sha256 } from "../manifest/digest.js";
import type { LoadedPlugin } from "../security/plugin-dir.js";
import { parseSignature, type ManifestSignature } from "../security/signing.js";
import type { BlobCache } from "./blob-cache.js";
import { parseRegistryDocument } from "./documents.js";
import {
  OCI_INDEX,
  OCI_MANIFEST,
  PLUGIN_ARTIFACT,
  PLUGIN_FILE_MEDIA,
  PLUGIN_MANIFEST_MEDIA,
  PLUGIN_SIGNATURE_MEDIA,
  TITLE,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from "./media-types.js";
import { formatReference, type OciReference } from "./reference.js";
import type { RegistryClient } from "./registry-client.js";

/** What push() stored. */
export interface PushResult {
  readonly reference: string;
  /** Digest of the image index (what a lockfile pins). */
  readonly digest: string;
  readonly platforms: Readonly<Record<string, string>>;
}

/**
 * Pushes a plugin directory as an OCI artifact: for each platform of its
 * manifest, an image manifest whose config is the plugin manifest (JSON)
 * and whose layers are plugin.sig and the platform's files (one layer each,
 * named by the `org.opencontainers.image.title` annotation); then an image
 * index across the platforms, tagged with `ref.tag`. Blobs shared between
 * platforms are uploaded once.
 */
export async function pushPlugin(
  client: RegistryClient,
  ref: OciReference,
  plugin: LoadedPlugin,
): Promise<PushResult> {
  const { manifest } = plugin;
  const repo = ref.repository;
  const configBytes = Buffer.from(JSON.stringify(manifest, null, 2));
  const config: Descriptor = {
    mediaType: PLUGIN_MANIFEST_MEDIA,
    digest: await client.pushBlob(repo, configBytes),
    size: configBytes.length,
  };
  const sigLayer: Descriptor[] = [];
  if (plugin.signature !== undefined) {
    const sigBytes = Buffer.from(JSON.stringify(plugin.signature));
    sigLayer.push({
      mediaType: PLUGIN_SIGNATURE_MEDIA,
      digest: await client.pushBlob(repo, sigBytes),
      size: sigBytes.length,
      annotations: { [TITLE]: SIGNATURE_FILE },
    });
  }
  const fileLayers = new Map<string, Descriptor>();
  const layerFor = async (file: string): Promise<Descriptor> => {
    let layer = fileLayers.get(file);
    if (layer === undefined) {
      const data = await readFile(join(plugin.dir, file));
      const digest = sha256(data);
      if (digest !== manifest.files[file]) {
        throw new ManagementError(
          "verification-failed",
          `plugin "${manifest.name}": file ${file} has digest ${digest}, but the manifest expects ${manifest.files[file]}`,
        );
      }
      await client.pushBlob(repo, data, digest);
      layer = {
        mediaType: PLUGIN_FILE_MEDIA,
        digest,
        size: data.length,
        annotations: { [TITLE]: file },
      };
      fileLayers.set(file, layer);
    }
    return layer;
  };
  const entries: Descriptor[] = [];
  const platforms: Record<string, string> = {};
  for (const platform of Object.keys(manifest.entrypoints).sort()) {
    const layers = [...sigLayer];
    for (const file of filesFor(manifest, platform)) layers.push(await layerFor(file));
    const image: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: PLUGIN_ARTIFACT,
      config,
      layers,
      annotations: {
        [TITLE]: manifest.name,
        "org.opencontainers.image.version": manifest.version,
      },
    };
    const body = Buffer.from(JSON.stringify(image));
    const digest = await client.pushManifest(repo, sha256(body), OCI_MANIFEST, body);
    platforms[platform] = digest;
    entries.push({
      mediaType: OCI_MANIFEST,
      digest,
      size: body.length,
      platform: splitPlatform(platform),
      artifactType: PLUGIN_ARTIFACT,
    });
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries };
  const indexBody = Buffer.from(JSON.stringify(index));
  const tag = ref.tag ?? manifest.version;
  const digest = await client.pushManifest(repo, tag, OCI_INDEX, indexBody);
  return { reference: formatReference({ ...ref, tag, digest: undefined }), digest, platforms };
}

/** A pulled plugin: its manifest, signature and files, all in the blob cache. */
export interface PulledPlugin {
  readonly manifest: PluginManifest;
  readonly signature: ManifestSignature | undefined;
  /** Relative path → the cached blob's path. */
  readonly files: ReadonlyMap<string, string>;
  /** Digest of what the reference pointed at (index or manifest). */
  readonly digest: string;
  /** Digest of the platform's image manifest. */
  readonly manifestDigest: string;
  readonly platform: string;
}

/**
 * Pulls the plugin at `ref` for `platform` into the blob cache. Checks, in
 * order: the platform is in the index; the config is a valid manifest with
 * an entrypoint for the platform; every layer's title is a safe relative
 * path listed in the manifest with the layer's digest; and every blob's
 * digest (in the client). Nothing is written outside the cache.
 */
export async function pullPlugin(
  client: RegistryClient,
  ref: OciReference,
  platform: string,
  cache: BlobCache,
): Promise<PulledPlugin> {
  const repo = ref.repository;
  const label = formatReference(ref);
  const top = await client.getManifest(repo, ref.digest ?? (ref.tag as string));
  let imageDigest = top.digest;
  let imageBody = top.body;
  const parsedTop = parseRegistryDocument(top.body, label);
  if ("manifests" in parsedTop) {
    const { os, architecture } = splitPlatform(platform);
    const entry = parsedTop.manifests.find(
      (m) => m.platform?.os === os && m.platform?.architecture === architecture,
    );
    if (entry === undefined) {
      const have = parsedTop.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`);
      throw new ManagementError(
        "unsupported-platform",
        `${label} has no artifact for ${platform} (it has: ${have.join(", ") || "none"})`,
      );
    }
    const image = await client.getManifest(repo, entry.digest);
    imageDigest = image.digest;
    imageBody = image.body;
  }
  const parsedImage = parseRegistryDocument(imageBody, label);
  if ("manifests" in parsedImage) {
    throw new ManagementError(
      "invalid-manifest",
      `${label}: the index entry for ${platform} is another index, not an image manifest`,
    );
  }
  const image = parsedImage;
  if (image.config?.mediaType !== PLUGIN_MANIFEST_MEDIA) {
    throw new ManagementError(
      "invalid-manifest",
      `${label} is not a connect-plugin artifact (config media type ${image.config?.mediaType ?? "none"})`,
    );
  }
  const configBytes = await fetchBlob(client, cache, repo, image.config);
  let parsed: unknown;
  try {
    parsed = JSON.parse(configBytes.toString("utf8"));
  } catch {
    throw new ManagementError("invalid-manifest", `the plugin manifest in ${label} is not JSON`);
  }
  const manifest = validateManifest(parsed, `plugin manifest in ${label}`);
  if (manifest.entrypoints[platform] === undefined) {
    throw new ManagementError(
      "unsupported-platform",
      `${label} is plugin "${manifest.name}" ${manifest.version} for ${Object.keys(manifest.entrypoints).join(", ")}, ` +
        `not for ${platform}`,
    );
  }
  let signature: ManifestSignature | undefined;
  const files = new Map<string, string>();
  for (const layer of image.layers) {
    const title = layer.annotations?.[TITLE];
    if (title === undefined) {
      throw new ManagementError(
        "invalid-manifest",
        `${label}: layer ${layer.digest} has no ${TITLE} annotation`,
      );
    }
    const bad = unsafePath(title);
    if (bad !== undefined) {
      throw new ManagementError(
        "verification-failed",
        `${label}: refusing layer ${layer.digest} named ${JSON.stringify(title)}: the file name ${bad}`,
      );
    }
    if (layer.mediaType === PLUGIN_SIGNATURE_MEDIA) {
      const data = await fetchBlob(client, cache, repo, layer);
      signature = parseSignature(data.toString("utf8"), `${label} (${SIGNATURE_FILE})`);
      continue;
    }
    const expected = manifest.files[title];
    if (expected === undefined) {
      throw new ManagementError(
        "verification-failed",
        `${label}: layer ${layer.digest} carries file ${title}, which the plugin manifest does not list`,
      );
    }
    if (expected !== layer.digest) {
      throw new ManagementError(
        "verification-failed",
        `plugin "${manifest.name}": file ${title} in ${label} has digest ${layer.digest}, but the manifest expects ${expected}`,
      );
    }
    await fetchBlob(client, cache, repo, layer);
    files.set(title, cache.path(layer.digest));
  }
  return {
    manifest,
    signature,
    files,
    digest: top.digest,
    manifestDigest: imageDigest,
    platform,
  };
}

async function fetchBlob(
  client: RegistryClient,
  cache: BlobCache,
  repo: string,
  desc: Descriptor,
): Promise<Buffer> {
  const cached = await cache.get(desc.digest);
  if (cached !== undefined) return cached;
  const data = await client.pullBlob(repo, desc.digest, desc.size);
  await cache.put(desc.digest, data);
  return data;
}
