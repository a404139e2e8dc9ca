/**
 * serve() inside a V8 startup snapshot (`connect-plugin snapshot`, see
 * docs/local-transports.md). The snapshot holds the plugin's modules, loaded
 * and initialised; what depends on the launch (the environment, the socket,
 * the AutoMTLS key, the handshake) must happen when the snapshot starts, not
 * when it is built. So while a snapshot is being built, serve() only records
 * itself as the snapshot's main function and returns a promise that the real
 * serve() settles when the snapshot is started.
 */
import { SNAPSHOT_BUILD, type SnapshotBuild } from "../protocol/snapshot-build.js";

/** The build's record while a snapshot is built by `connect-plugin snapshot`, else undefined. */
function currentBuild(): SnapshotBuild | undefined {
  const build = (globalThis as Record<symbol, SnapshotBuild | undefined>)[
    Symbol.for(SNAPSHOT_BUILD)
  ];
  // Node 20's isBuildingSnapshot() returns 1 or 0, not a boolean.
  return build !== undefined && build.startupSnapshot.isBuildingSnapshot() ? build : undefined;
}

/** Whether this process is building a snapshot (`connect-plugin snapshot`). */
export const buildingSnapshot = (): boolean => currentBuild() !== undefined;

/**
 * While a snapshot is built: makes `start` the snapshot's main function and
 * returns a promise of its result. Otherwise undefined (serve now).
 */
export function deferToSnapshotStart<T>(start: () => Promise<T>): Promise<T> | undefined {
  const build = currentBuild();
  if (build === undefined) return undefined;
  if (build.served) {
    throw new Error("serve() was called twice while the snapshot was built; a plugin serves once");
  }
  build.served = true;
  return new Promise<T>((resolve, reject) =>
    build.startupSnapshot.setDeserializeMainFunction(() => void start().then(resolve, reject)),
  );
}
