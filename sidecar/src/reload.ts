import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import {
  ConfigError,
  type HashKeyStorage,
  type Location,
  openConfig,
  parseConfigText,
  type StorageConfig,
  statusOf,
} from '@tarnjs/tarn';
import type { ReadinessBody } from '@tarnjs/tarn/sidecar-api';
import type { Logger } from 'pino';
import type { Trees } from './trees.js';

/** A config file as read: its text (what a reload compares) and what it says. */
export interface LoadedConfig {
  readonly file: string;
  readonly text: string;
  readonly config: StorageConfig;
}

/** Reads a config file once: what it says is parsed from the very text a reload compares. */
export async function readConfig(file: string): Promise<LoadedConfig> {
  return configOf(file, await readConfigText(file));
}

async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

function configOf(file: string, text: string): LoadedConfig {
  return { file, text, config: parseConfigText(text, file) };
}

/** The tree a config describes (its relative paths are relative to the file's folder). */
export function buildTree(loaded: LoadedConfig): {
  storage: HashKeyStorage;
  memoIndex: Location | undefined;
} {
  return openConfig(loaded.config, { base: dirname(loaded.file) });
}

/** One line saying why: an expected error's message (its first line), a bug's too (the stack goes to debug). */
export function oneLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.split('\n')[0] ?? message;
}

export interface ReloaderOptions {
  /** The config file (absolute), as loaded at start. */
  loaded: LoadedConfig;
  trees: Trees;
  logger: Logger;
  /** Called for each reload that failed (the metric). */
  onFailure?: () => void;
  /** Events on the folder are gathered for this long before the file is read (default 250 ms). */
  debounceMs?: number;
}

/**
 * Follows the config file. A ConfigMap mounted as a volume never changes its files in place: the
 * kubelet writes a new timestamped folder and swaps the `..data` link to it with a rename, and
 * `tarn.yaml` is a link through `..data`. So the file's folder is watched (a watch on the file
 * would keep following the old inode), events are gathered, and the file is read again; only a
 * change of its text builds a new tree, which replaces the current one (requests in flight finish
 * on the old tree, closed when they are done). An invalid config keeps the current tree and makes
 * the sidecar unready until a valid one comes.
 */
export class Reloader {
  readonly #options: ReloaderOptions;
  #text: string;
  #serve: string;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The reload running, and whether another was asked for meanwhile (it runs after, once). */
  #running: Promise<void> | undefined;
  #again: { force: boolean } | undefined;
  #loadedAt: string | null = new Date().toISOString();
  #lastReload: ReadinessBody['lastReload'] = null;
  #closed = false;

  constructor(options: ReloaderOptions) {
    this.#options = options;
    this.#text = options.loaded.text;
    this.#serve = JSON.stringify(options.loaded.config.serve ?? {});
  }

  get file(): string {
    return this.#options.loaded.file;
  }

  /** What `/readyz` answers: a tree is built and the last reload, if any, succeeded. */
  readiness(): ReadinessBody {
    const { trees } = this.#options;
    return {
      ready: trees.current() !== undefined && (this.#lastReload?.ok ?? true),
      generation: trees.generation,
      loadedAt: this.#loadedAt,
      lastReload: this.#lastReload,
    };
  }

  /** Starts watching the file's folder. */
  start(): void {
    const folder = dirname(this.file);
    this.#watcher = watch(folder, { persistent: false }, () => this.#schedule());
    this.#watcher.on('error', (e) => {
      // The folder went away (an unmounted volume): SIGHUP still reloads.
      this.#options.logger.warn({ err: e, folder }, `cannot watch ${folder} any more: ${oneLine(e)}`);
      this.#watcher?.close();
      this.#watcher = undefined;
    });
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.reload(), this.#options.debounceMs ?? 250);
  }

  /**
   * Reads the file again and, when its text changed (or `force`: SIGHUP, as a secret file the
   * config names may have changed), builds the new tree and swaps it in. Reloads never overlap.
   */
  reload(force = false): Promise<void> {
    if (this.#running) {
      this.#again = { force: force || (this.#again?.force ?? false) };
      return this.#running;
    }
    this.#running = this.#reload(force).finally(() => {
      this.#running = undefined;
      const again = this.#again;
      this.#again = undefined;
      if (again && !this.#closed) void this.reload(again.force);
    });
    return this.#running;
  }

  async #reload(force: boolean): Promise<void> {
    if (this.#closed) return;
    const { trees, logger } = this.#options;
    const file = this.file;
    // A file that cannot be read counts as empty: one failure is logged, not one per event.
    const read = await readConfigText(file).then(
      (text) => ({ text }),
      (error: unknown) => ({ text: '', error }),
    );
    const { text } = read;
    if (!force && text === this.#text) return;
    const at = new Date().toISOString();
    try {
      if ('error' in read) throw read.error;
      const loaded = configOf(file, text);
      const built = buildTree(loaded);
      if (this.#closed) {
        await Promise.allSettled([built.storage.close(), built.memoIndex?.close()]);
        return;
      }
      const tree = trees.swap(built.storage, built.memoIndex);
      this.#text = loaded.text;
      this.#loadedAt = at;
      this.#lastReload = { ok: true, at };
      logger.info(
        { event: 'reload', generation: tree.generation, config: file },
        `config ${basename(file)} reloaded: generation ${tree.generation}, ${tree.storage.location.kind} ${tree.storage.location.target}`,
      );
      const serve = JSON.stringify(loaded.config.serve ?? {});
      if (serve !== this.#serve) {
        this.#serve = serve;
        logger.warn(
          { event: 'reload', config: file },
          'the serve section changed; the socket, limits and metrics port apply at the next restart',
        );
      }
    } catch (e) {
      // The text is remembered all the same: the same bad file is not rebuilt (and logged) at
      // every event of the folder, only when it changes again.
      this.#text = text;
      this.#lastReload = { ok: false, at, error: oneLine(e) };
      this.#options.onFailure?.();
      const status = statusOf(e);
      logger.error(
        { event: 'reload', code: status.code, config: file, generation: trees.generation },
        `config ${basename(file)} not reloaded, generation ${trees.generation} kept: ${oneLine(e)}`,
      );
      if (!status.expected) logger.debug({ err: e }, 'reload failure');
    }
  }

  /** Stops watching; a reload in progress finishes (its tree, if any, is closed by Trees.close). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
    await this.#running;
  }
}
