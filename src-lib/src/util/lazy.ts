/**
 * A value made on first use and shared by every caller while it is being made. A failure is not
 * kept: the next call makes it again (a server that was down, a config.yml not written yet).
 */
export class Lazy<T> {
  #promise: Promise<T> | undefined;

  /** The value; `make` runs only when there is none yet (the first caller's `make` wins). */
  get(make: () => Promise<T>): Promise<T> {
    this.#promise ??= make().catch((e: unknown) => {
      this.#promise = undefined;
      throw e;
    });
    return this.#promise;
  }

  /** Forgets the value and hands over what was made so far, if anything, to be released. */
  take(): Promise<T> | undefined {
    const promise = this.#promise;
    this.#promise = undefined;
    return promise;
  }
}
