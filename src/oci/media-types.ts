/** OCI media types, and connect-plugin's own for the parts of a plugin artifact. */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
/** The artifactType of a plugin's image manifests. */
export const PLUGIN_ARTIFACT = "application/vnd.connect-plugin.plugin.v1";
/** The config blob: the plugin manifest as JSON. */
export const PLUGIN_MANIFEST_MEDIA = "application/vnd.connect-plugin.manifest.v1+json";
/** The layer holding plugin.sig. */
export const PLUGIN_SIGNATURE_MEDIA = "application/vnd.connect-plugin.signature.v1+json";
/** One layer per plugin file, named by the title annotation. */
export const PLUGIN_FILE_MEDIA = "application/vnd.connect-plugin.file.v1";
export const TITLE = "org.opencontainers.image.title";

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: { readonly os: string; readonly architecture: string };
  readonly artifactType?: string;
}

export interface ImageManifest {
  readonly schemaVersion: 2;
  readonly mediaType: string;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageIndex {
  readonly schemaVersion: 2;
  readonly mediaType: string;
  readonly manifests: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}
