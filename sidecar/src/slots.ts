import { ServiceError } from '@tarnjs/tarn';
import { withHeaders } from './plugins/problem.js';

/**
 * The uploads in progress at once (serve.maxUploads), shared by every route that stores a value
 * (a streamed PUT, an ingest by path): one more than the limit is refused at once with 503 and
 * Retry-After, before any byte is read, instead of queueing behind the others.
 */
export class UploadSlots {
  #taken = 0;

  constructor(readonly limit: number) {}

  /** Takes a slot and answers its release (call it once); TARN_BUSY when every slot is taken. */
  take(): () => void {
    if (this.#taken >= this.limit)
      throw withHeaders(
        new ServiceError('TARN_BUSY', `all ${this.limit} upload slots are taken; retry in a moment`),
        { 'retry-after': '1' },
      );
    this.#taken++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#taken--;
    };
  }
}
