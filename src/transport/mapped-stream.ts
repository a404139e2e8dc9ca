/**
 * A stream of messages seen through a map of its values and one of its
 * errors: the normalising of a handler's output (invoke.ts) and the call
 * tracker's explaining of its errors (call-tracker.ts).
 *
 * Mapping a MappedStream again composes the maps over the same source
 * rather than adding a layer, so a consumer iterating it pays one promise
 * per message whatever the number of maps; a consumer that knows the class
 * (the framed server's runStream, the lean HTTP/2 stream handler's pump)
 * reads `source`, `mapValue` and `mapError` (parts()) and pulls from the
 * source itself, with no wrapper promise at all.
 *
 * An error of the source or of any value map passes through every error
 * map (the only error map in use, the tracker's, is the outermost).
 */
export class MappedStream<T = unknown> implements AsyncIterable<T> {
  private constructor(
    readonly source: AsyncIterable<unknown>,
    readonly mapValue: (value: unknown) => T,
    readonly mapError: (error: unknown) => unknown,
  ) {}

  /** `messages` with each value passed through `mapValue`. */
  static values<S, T>(messages: AsyncIterable<S>, mapValue: (value: S) => T): MappedStream<T> {
    const map = mapValue as (value: unknown) => T;
    if (!(messages instanceof MappedStream)) return new MappedStream(messages, map, same);
    const inner = messages as MappedStream;
    const first = inner.mapValue;
    return new MappedStream(inner.source, (value) => map(first(value)), inner.mapError);
  }

  /** `messages` with each error (thrown or rejected) passed through `mapError`. */
  static errors<T>(
    messages: AsyncIterable<T>,
    mapError: (error: unknown) => unknown,
  ): MappedStream<T> {
    if (!(messages instanceof MappedStream)) {
      return new MappedStream(messages, same as (value: unknown) => T, mapError);
    }
    const inner = messages as MappedStream<T>;
    const first = inner.mapError;
    return new MappedStream(
      inner.source,
      inner.mapValue,
      first === same ? mapError : (error) => mapError(first(error)),
    );
  }

  /** The source and maps of `messages`: itself when it is no MappedStream, with identity maps. */
  static parts(messages: AsyncIterable<unknown>): MappedStream {
    return messages instanceof MappedStream
      ? (messages as MappedStream)
      : new MappedStream(messages, same, same);
  }

  /** A plain iterator rather than an async generator: one promise hop per message. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    const it = this.source[Symbol.asyncIterator]();
    const { mapValue, mapError } = this;
    const failed = (error: unknown): never => {
      throw mapError(error);
    };
    // A value map's error is mapped too, as a second `.then` layer did.
    const step = (r: IteratorResult<unknown>): IteratorResult<T> => {
      if (r.done === true) return r;
      try {
        return { done: false, value: mapValue(r.value) };
      } catch (error) {
        throw mapError(error);
      }
    };
    return {
      // A next() that throws rather than rejects is mapped too, as the
      // framed server's runStream (which awaits it in a try) maps it.
      next: () => {
        try {
          return it.next().then(step, failed);
        } catch (error) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the mapped error as it is
          return Promise.reject(mapError(error));
        }
      },
      return: (value?: unknown) =>
        it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      // Reaches the source, whose answer is mapped as next()'s is (a
      // generator that catches the error may yield a value or fail).
      throw: (error?: unknown) =>
        it.throw !== undefined
          ? it.throw(error).then(step, failed)
          : // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the mapped error as it is
            Promise.reject(mapError(error)),
    } as AsyncIterator<T>;
  }
}

const same = <T>(value: T): T => value;
