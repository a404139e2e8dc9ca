/**
 * Fields that describe where a log line was written (the trace and span ids
 * of the call in progress), from whoever knows: observability registers a
 * source when a plugin uses serverObservability(). Logging stays free of any
 * tracing library; without a source, lines carry nothing extra.
 */
let source: (() => Record<string, string> | undefined) | undefined;

export function registerLogContext(fn: () => Record<string, string> | undefined): void {
  source = fn;
}

/** The current context's fields, or undefined. */
export function logContext(): Record<string, string> | undefined {
  return source?.();
}
