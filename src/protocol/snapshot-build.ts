/**
 * What `connect-plugin snapshot` (src/cli/snapshot-build.ts) and serve()
 * (src/plugin/snapshot.ts) share while a V8 startup snapshot of a plugin is
 * built: the bundle's first line sets, under Symbol.for(SNAPSHOT_BUILD),
 * node:v8's startupSnapshot, and serve() marks that it ran. A global, not an
 * import of node:v8 in serve(): loading node:v8 costs every plugin start a
 * few ms, and only a snapshot build needs it.
 */
import type { startupSnapshot } from "node:v8";

export const SNAPSHOT_BUILD = "connect-plugin.snapshot-build";

export interface SnapshotBuild {
  readonly startupSnapshot: typeof startupSnapshot;
  /** Set by serve(); the bundle's last line fails the build if nothing served. */
  served: boolean;
}
