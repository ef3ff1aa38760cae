import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { chmod, chown, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Folder creation that follows Python tarn's rule: every folder gets the lake root's
 * permission bits and group, whatever the writer's umask and primary group are, so a lake
 * shared by a lab's users stays usable by all of them.
 */
export class Tree {
  // Folders are never removed by tarn, so one mkdir per folder and process is enough.
  readonly #known = new Set<string>();
  /**
   * Whether new files get the lake's group without a chown: the process's effective group is the
   * lake's. Asked once (a getegid per file was 1.5 syscalls per write); a process that changes its
   * group afterwards only costs itself a chown that was not needed, or skips one it could not do.
   */
  readonly ownGroup: boolean;
  constructor(
    readonly mode: number,
    readonly gid: number,
  ) {
    this.ownGroup = process.getegid?.() === gid;
  }

  async ensure(dir: string): Promise<void> {
    if (this.#known.has(dir)) return;
    try {
      await mkdir(dir);
      await this.adopt(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        await this.ensure(dirname(dir));
        return this.ensure(dir);
      }
      if (code !== 'EEXIST') throw e;
    }
    this.#known.add(dir);
  }

  /** The synchronous form, for the folders a lake creates when it is opened. */
  ensureSync(dir: string): void {
    if (this.#known.has(dir)) return;
    try {
      mkdirSync(dir);
      chmodSync(dir, this.mode);
      if (!this.ownGroup) {
        try {
          chownSync(dir, -1, this.gid);
        } catch {
          // not a member of the lake's group: the folder keeps ours
        }
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        this.ensureSync(dirname(dir));
        this.ensureSync(dir);
        return;
      }
      if (code !== 'EEXIST') throw e;
    }
    this.#known.add(dir);
  }

  /** Forget cached folders (someone removed them behind our back). */
  forget(): void {
    this.#known.clear();
  }

  /** Give a new file or folder the lake's mode and group. */
  async adopt(path: string): Promise<void> {
    await chmod(path, this.mode);
    if (!this.ownGroup) await chown(path, -1, this.gid).catch(() => undefined);
  }
}
