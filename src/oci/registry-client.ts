import { ManagementError } from "../manifest/errors.js";
import { isDigest, sha256 } from "../manifest/digest.js";
import { isLoopbackHost } from "../security/plaintext.js";
import { dockerCredentials, type Credentials } from "./docker-config.js";
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from "./media-types.js";

/** Bytes moved so far for one blob, for progress bars. */
export type ProgressListener = (event: {
  readonly digest: string;
  readonly done: number;
  readonly total: number;
  readonly direction: "upload" | "download";
}) => void;

export interface RegistryClientOptions {
  /** `host[:port]`. */
  readonly registry: string;
  /**
   * Speak plain HTTP. Defaults to true for loopback hosts (as docker does)
   * and false otherwise.
   */
  readonly plainHttp?: boolean;
  /** Credentials; defaults to docker's config.json entry for the registry. */
  readonly credentials?: Credentials;
  /** Attempts for transient failures (5xx, network errors, truncated or corrupt bodies). Default 3. */
  readonly attempts?: number;
  /** Delay before the first retry, doubled after each. Default 200 ms. */
  readonly retryDelayMs?: number;
  /**
   * Give up on a request (as a transient failure, so it is retried) when
   * no response headers, or no further body bytes, arrive for this long.
   * Default 30 s.
   */
  readonly stallTimeoutMs?: number;
  readonly onProgress?: ProgressListener;
}

/** The largest manifest or index accepted (containerd's limit). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A manifest or index as fetched: its media type, raw bytes and digest. */
export interface FetchedManifest {
  readonly mediaType: string;
  readonly body: Buffer;
  readonly digest: string;
}

const ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");

/** Transient: worth another attempt. */
class Transient extends Error {}

/**
 * A small OCI distribution client on global fetch: the Bearer token flow
 * (realm/service/scope) and Basic auth, answering the registry's challenge
 * on 401; blob upload (monolithic POST + PUT, skipped when the blob exists);
 * manifest and index push and pull; and a digest check on every blob and
 * manifest it downloads. Transient failures (5xx, refused or reset
 * connections and stalls on GET and HEAD, truncated or corrupt bodies) are
 * retried with backoff; 401, 403 and 404 are not. Downloads are bounded: a
 * blob body may not exceed its descriptor's size, a manifest 4 MiB; the read
 * is aborted as soon as more arrives. Blobs are held in memory: plugin files
 * are expected to be small. Credentials (Basic or Bearer) are only ever sent
 * to the registry's own origin, never to an upload URL on another host, and
 * Basic credentials go to a token realm only over https (or plain http when
 * the registry itself is plain http).
 */
export class RegistryClient {
  readonly registry: string;
  private readonly base: string;
  private readonly credentials: Credentials | undefined;
  private readonly attempts: number;
  private readonly retryDelayMs: number;
  private readonly stallTimeoutMs: number;
  private readonly onProgress: ProgressListener | undefined;
  /** Authorization header per scope, learned from challenges. */
  private readonly auth = new Map<string, string>();

  constructor(options: RegistryClientOptions) {
    this.registry = options.registry;
    const loopback = isLoopbackHost(registryHost(options.registry));
    this.base = `${(options.plainHttp ?? loopback) ? "http" : "https"}://${options.registry}`;
    this.credentials = options.credentials ?? dockerCredentials(options.registry);
    this.attempts = options.attempts ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 200;
    this.stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
    this.onProgress = options.onProgress;
  }

  /** True when the registry has the blob. */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const res = await this.request("HEAD", `/v2/${repository}/blobs/${digest}`, repository, "pull");
    if (res.status === 404) return false;
    await this.expectOk(res, "HEAD", `blob ${digest} in ${repository}`);
    return true;
  }

  /** Uploads a blob unless the registry has it already. */
  async pushBlob(repository: string, data: Buffer, digest = sha256(data)): Promise<string> {
    if (await this.hasBlob(repository, digest)) {
      this.onProgress?.({ digest, done: data.length, total: data.length, direction: "upload" });
      return digest;
    }
    const start = await this.request(
      "POST",
      `/v2/${repository}/blobs/uploads/`,
      repository,
      "push",
    );
    await this.expectStatus(start, [202], "POST", `an upload to ${repository}`);
    const location = start.headers.get("location");
    if (location === null) {
      throw new ManagementError(
        "registry",
        `registry ${this.registry} gave no upload location for ${repository}`,
      );
    }
    const url = new URL(location, this.base);
    url.searchParams.set("digest", digest);
    this.onProgress?.({ digest, done: 0, total: data.length, direction: "upload" });
    const put = await this.request("PUT", url.toString(), repository, "push", {
      body: data,
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(data.length),
      },
    });
    await this.expectStatus(put, [201], "PUT", `blob ${digest} to ${repository}`);
    this.onProgress?.({ digest, done: data.length, total: data.length, direction: "upload" });
    return digest;
  }

  /**
   * Downloads a blob and checks its digest, retrying truncated and corrupt
   * downloads; fails with the expected and actual digest.
   */
  async pullBlob(repository: string, digest: string, size?: number): Promise<Buffer> {
    checkDigest(digest);
    return this.withRetries(`blob ${digest} from ${this.registry}/${repository}`, async (last) => {
      const res = await this.request(
        "GET",
        `/v2/${repository}/blobs/${digest}`,
        repository,
        "pull",
      );
      if (res.status === 404) {
        throw new ManagementError(
          "not-found",
          `blob ${digest} not found in ${this.registry}/${repository}`,
        );
      }
      await this.expectOk(res, "GET", `blob ${digest} from ${repository}`);
      const body = await this.readBody(res, digest, size);
      const actual = sha256(body);
      if (actual !== digest) {
        const message =
          `blob from ${this.registry}/${repository} is corrupt: expected digest ${digest}, ` +
          `got ${actual} (${body.length} bytes)`;
        if (last) {
          throw new ManagementError(
            "verification-failed",
            `${message}; gave up after ${this.attempts} attempts`,
          );
        }
        throw new Transient(message);
      }
      return body;
    });
  }

  /** Pushes a manifest or index under a tag or digest; returns its digest. */
  async pushManifest(
    repository: string,
    reference: string,
    mediaType: string,
    body: Buffer,
  ): Promise<string> {
    const res = await this.request(
      "PUT",
      `/v2/${repository}/manifests/${reference}`,
      repository,
      "push",
      {
        body,
        headers: { "content-type": mediaType },
      },
    );
    await this.expectStatus(res, [201], "PUT", `manifest ${repository}:${reference}`);
    return sha256(body);
  }

  /** Fetches a manifest or index by tag or digest, checking its digest. */
  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    if (reference.startsWith("sha256:")) checkDigest(reference);
    return this.withRetries(
      `manifest ${this.registry}/${repository}:${reference}`,
      async (last) => {
        const res = await this.request(
          "GET",
          `/v2/${repository}/manifests/${reference}`,
          repository,
          "pull",
          {
            headers: { accept: ACCEPT },
          },
        );
        if (res.status === 404) {
          throw new ManagementError(
            "not-found",
            `${this.registry}/${repository}:${reference} not found (the registry answered 404)`,
          );
        }
        await this.expectOk(res, "GET", `manifest ${repository}:${reference}`);
        const body = await this.readBody(res, reference, undefined, MAX_MANIFEST_BYTES);
        const digest = sha256(body);
        const expected = reference.startsWith("sha256:")
          ? reference
          : res.headers.get("docker-content-digest");
        if (expected !== null && expected !== digest) {
          const message = `manifest ${this.registry}/${repository}:${reference} is corrupt: expected digest ${expected}, got ${digest}`;
          if (last) throw new ManagementError("verification-failed", message);
          throw new Transient(message);
        }
        let declared: unknown;
        try {
          declared = (JSON.parse(body.toString("utf8")) as { mediaType?: unknown }).mediaType;
        } catch {
          declared = undefined; // parseRegistryDocument reports non-JSON with the reference
        }
        const mediaType =
          (typeof declared === "string" ? declared : undefined) ??
          res.headers.get("content-type") ??
          OCI_MANIFEST;
        return { mediaType, body, digest };
      },
    );
  }

  /**
   * Reads a body, aborting as soon as it exceeds the declared `size` (or
   * `cap` when no size is declared), and treating a stall of
   * stallTimeoutMs between chunks as a transient cut-off.
   */
  private async readBody(
    res: Response,
    what: string,
    size?: number,
    cap?: number,
  ): Promise<Buffer> {
    const total = size ?? Number(res.headers.get("content-length") ?? 0);
    const limit = size ?? cap;
    if (limit !== undefined && total > limit) {
      await res.body?.cancel().catch(() => undefined);
      throw tooLarge(what, limit, `the registry announced ${total} bytes`);
    }
    const chunks: Buffer[] = [];
    let done = 0;
    if (res.body === null) return Buffer.alloc(0);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no data for ${this.stallTimeoutMs} ms`)),
            this.stallTimeoutMs,
          );
        });
        let next: { done: boolean; value?: Uint8Array };
        try {
          next = await Promise.race([reader.read(), stalled]);
        } finally {
          clearTimeout(timer);
        }
        if (next.done || next.value === undefined) break;
        done += next.value.length;
        if (limit !== undefined && done > limit) {
          throw tooLarge(what, limit, `more than ${limit} bytes arrived`);
        }
        chunks.push(Buffer.from(next.value));
        this.onProgress?.({ digest: what, done, total, direction: "download" });
      }
    } catch (e) {
      await reader.cancel().catch(() => undefined);
      if (e instanceof ManagementError) throw e;
      throw new Transient(
        `download of ${what} was cut off after ${done} of ${total} bytes (${(e as Error).message})`,
      );
    }
    if (total > 0 && done !== total) {
      throw new Transient(`download of ${what} was cut off after ${done} of ${total} bytes`);
    }
    return Buffer.concat(chunks);
  }

  private async withRetries<T>(what: string, run: (last: boolean) => Promise<T>): Promise<T> {
    let delay = this.retryDelayMs;
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= this.attempts;
      try {
        return await run(last);
      } catch (e) {
        if (!(e instanceof Transient)) throw e;
        if (last) {
          throw new ManagementError(
            "registry",
            `${e.message}; gave up on ${what} after ${this.attempts} attempts`,
          );
        }
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }

  /** One HTTP request, answering an auth challenge once. Network errors and 5xx are Transient. */
  private async request(
    method: string,
    pathOrUrl: string,
    repository: string,
    action: "pull" | "push",
    init: { body?: Buffer; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const url = pathOrUrl.startsWith("http") ? pathOrUrl : this.base + pathOrUrl;
    // Credentials belong to the registry's origin only: an upload Location
    // may name another host, which must not learn them.
    const sameOrigin = new URL(url).origin === new URL(this.base).origin;
    const scope = `repository:${repository}:${action === "push" ? "pull,push" : "pull"}`;
    const send = async (): Promise<Response | ManagementError> => {
      const headers: Record<string, string> = { ...init.headers };
      const authorization = this.auth.get(scope) ?? this.auth.get("*");
      if (authorization !== undefined && sameOrigin) headers.authorization = authorization;
      // Aborts only while waiting for the headers; readBody watches the body.
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), this.stallTimeoutMs);
      try {
        return await fetch(url, {
          method,
          headers,
          signal: controller.signal,
          ...(init.body !== undefined && { body: init.body }),
        });
      } catch (e) {
        const cause = controller.signal.aborted
          ? `no response within ${this.stallTimeoutMs} ms`
          : ((e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message);
        return new ManagementError("registry", `cannot reach registry ${this.registry}: ${cause}`, {
          cause: e,
        });
      } finally {
        clearTimeout(timer);
      }
    };
    const retrying = method === "GET" || method === "HEAD";
    let delay = this.retryDelayMs;
    for (let attempt = 1; ; attempt++) {
      let res = await send();
      if (res instanceof ManagementError) {
        // A refused, reset or stalled connection: worth another try for reads.
        if (!retrying) throw res;
        if (attempt >= this.attempts) {
          throw new ManagementError(
            "registry",
            `${res.message} (after ${this.attempts} attempts)`,
            { cause: res.cause },
          );
        }
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
        continue;
      }
      if (res.status === 401) {
        await res.arrayBuffer().catch(() => undefined);
        if (!sameOrigin) {
          throw new ManagementError(
            "registry",
            `${new URL(url).origin} (named by registry ${this.registry}) asked for credentials; ` +
              `they are only sent to the registry itself`,
          );
        }
        await this.authenticate(res.headers.get("www-authenticate"), scope);
        const again = await send();
        if (again instanceof ManagementError) throw again;
        res = again;
        if (res.status === 401) {
          await res.arrayBuffer().catch(() => undefined);
          throw new ManagementError(
            "registry",
            `registry ${this.registry} refused the credentials for ${scope} (401 Unauthorized)` +
              (this.credentials === undefined ? "; no credentials are configured for it" : ""),
          );
        }
      }
      if (res.status >= 500 && retrying && attempt < this.attempts) {
        await res.arrayBuffer().catch(() => undefined);
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
        continue;
      }
      return res;
    }
  }

  /** Answers a WWW-Authenticate challenge: Basic, or the Bearer token flow. */
  private async authenticate(challenge: string | null, scope: string): Promise<void> {
    const missing = (): ManagementError =>
      new ManagementError(
        "registry",
        `registry ${this.registry} requires authentication (401 Unauthorized), and no credentials ` +
          `are configured for it (docker login, or an auths entry in docker's config.json)`,
      );
    const scheme = challenge?.split(" ")[0]?.toLowerCase();
    if (scheme === "basic") {
      if (this.credentials === undefined) throw missing();
      const { username, password } = this.credentials;
      this.auth.set("*", `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`);
      return;
    }
    if (scheme !== "bearer" || challenge === null) {
      throw new ManagementError(
        "registry",
        `registry ${this.registry} answered 401 with an unsupported challenge: ${challenge ?? "(none)"}`,
      );
    }
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    if (params.realm === undefined) {
      throw new ManagementError(
        "registry",
        `registry ${this.registry}'s Bearer challenge has no realm`,
      );
    }
    let tokenUrl: URL;
    try {
      tokenUrl = new URL(params.realm);
    } catch {
      throw new ManagementError(
        "registry",
        `registry ${this.registry}'s Bearer realm ${JSON.stringify(params.realm)} is not a URL`,
      );
    }
    if (
      this.credentials !== undefined &&
      tokenUrl.protocol !== "https:" &&
      !(tokenUrl.protocol === "http:" && this.base.startsWith("http:"))
    ) {
      throw new ManagementError(
        "registry",
        `registry ${this.registry} names the token realm ${tokenUrl.origin}, which is not https; ` +
          `refusing to send credentials there in the clear`,
      );
    }
    if (params.service !== undefined) tokenUrl.searchParams.set("service", params.service);
    tokenUrl.searchParams.set("scope", params.scope ?? scope);
    const headers: Record<string, string> = {};
    if (this.credentials !== undefined) {
      const { username, password } = this.credentials;
      headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    }
    let res: Response;
    try {
      res = await fetch(tokenUrl, { headers });
    } catch (e) {
      throw new ManagementError(
        "registry",
        `cannot reach the token service ${tokenUrl.origin}: ${(e as Error).message}`,
      );
    }
    if (!res.ok) {
      await res.arrayBuffer().catch(() => undefined);
      throw new ManagementError(
        "registry",
        `the token service ${tokenUrl.origin} for registry ${this.registry} refused a token for ${scope} ` +
          `(${res.status} ${res.statusText})` +
          (this.credentials === undefined ? "; no credentials are configured for it" : ""),
      );
    }
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (token === undefined) {
      throw new ManagementError(
        "registry",
        `the token service ${tokenUrl.origin} returned no token`,
      );
    }
    this.auth.set(scope, `Bearer ${token}`);
  }

  private async expectOk(res: Response, method: string, what: string): Promise<void> {
    await this.expectStatus(res, [200], method, what);
  }

  private async expectStatus(
    res: Response,
    ok: number[],
    method: string,
    what: string,
  ): Promise<void> {
    if (ok.includes(res.status)) return;
    const text = (await res.text().catch(() => "")).slice(0, 300).trim();
    if (res.status === 404) {
      throw new ManagementError(
        "not-found",
        `${what} not found in ${this.registry} (404 Not Found)`,
      );
    }
    throw new ManagementError(
      "registry",
      `registry ${this.registry} answered ${res.status} ${res.statusText} to ${method} ${what}` +
        (res.status >= 500 && (method === "GET" || method === "HEAD")
          ? ` (after ${this.attempts} attempts)`
          : "") +
        (text !== "" ? `: ${text}` : ""),
    );
  }
}

function checkDigest(digest: string): void {
  if (!isDigest(digest)) {
    throw new ManagementError(
      "verification-failed",
      `refusing malformed digest ${JSON.stringify(digest.slice(0, 100))}: expected sha256:<64 hex digits>`,
    );
  }
}

function tooLarge(what: string, limit: number, why: string): ManagementError {
  return new ManagementError(
    "verification-failed",
    `download of ${what} is larger than the ${limit} bytes it may have (${why}); aborted`,
  );
}

/** The host part of a registry name ("127.0.0.1:5000", "[::1]:5000"); "" when it does not parse. */
function registryHost(registry: string): string {
  try {
    return new URL(`http://${registry}`).hostname;
  } catch {
    return "";
  }
}
