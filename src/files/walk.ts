/**
 * Walks the paths given to `pgdv add` and lists what a version will hold: regular
 * files and symlinks (stored as links, never followed), with their dataset paths.
 *
 * Dataset paths: a folder argument contributes its contents (folder/a/b → a/b), a
 * file argument its base name. Paths are '/'-separated, relative, valid UTF-8 and
 * free of control characters such as newlines, so they survive COPY, diff output,
 * JSON and every filesystem a checkout may target.
 *
 * A `.pgdvignore` in any walked folder applies gitignore syntax (the `ignore`
 * package) to the paths below that folder.
 */
import { lstatSync, type Dirent, type Stats } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { PgdvError } from '../lib/errors.js';

export const IGNORE_FILE = '.pgdvignore';

export interface WalkEntry {
  /** Dataset path: relative, '/'-separated. */
  path: string;
  /** Absolute path on disk. */
  abs: string;
  kind: 'file' | 'symlink';
  size: number;
  mtimeMs: number;
  /** ctime, inode and device: with size and mtime, what the stat cache compares (statcache.ts). */
  ctimeMs: number;
  ino: number;
  dev: number;
  /** st_mode: file type and permission bits (0o100644, 0o120777...). */
  mode: number;
  linkTarget?: string;
}

export interface WalkResult {
  entries: WalkEntry[];
  /** Special files skipped (sockets, FIFOs, devices), one line each. */
  warnings: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Throws a one-line error unless `name` (raw bytes of one path segment) is acceptable. */
function decodeName(raw: Buffer, where: string): string {
  let name: string;
  try {
    name = utf8.decode(raw);
  } catch {
    throw new PgdvError(`path ${JSON.stringify(path.join(where, raw.toString('latin1')))} is not valid UTF-8`, {
      hint: 'Rename it to UTF-8, or exclude it in .pgdvignore',
    });
  }
  checkName(name, where);
  return name;
}

function checkName(name: string, where: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new PgdvError(`path ${JSON.stringify(path.join(where, name))} contains a newline or another control character`, {
      hint: 'Rename it, or exclude it in .pgdvignore',
    });
  }
}

interface Rules {
  /** Folder (dataset path, '' for the root) the rules are relative to. */
  base: string;
  ig: Ignore;
}

function ignored(rules: Rules[], rel: string, isDir: boolean): boolean {
  for (const r of rules) {
    const sub = r.base ? rel.slice(r.base.length + 1) : rel;
    if (r.ig.ignores(isDir ? `${sub}/` : sub)) return true;
  }
  return false;
}

async function loadRules(dirAbs: string, base: string): Promise<Rules | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dirAbs, IGNORE_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadable(path.join(dirAbs, IGNORE_FILE), e);
  }
  return { base, ig: ignore().add(text) };
}

function unreadable(abs: string, e: unknown): PgdvError {
  const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  return new PgdvError(`cannot read ${abs} (${code})`, {
    kind: 'io',
    hint: code === 'EACCES' || code === 'EPERM' ? 'Make it readable, or exclude it in .pgdvignore' : 'Check the path',
    cause: e,
  });
}

function entryOf(rel: string, abs: string, st: Stats, linkTarget?: string): WalkEntry {
  return {
    path: rel,
    abs,
    kind: linkTarget === undefined ? 'file' : 'symlink',
    size: linkTarget === undefined ? st.size : Buffer.byteLength(linkTarget),
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    ino: st.ino,
    dev: st.dev,
    mode: st.mode,
    linkTarget,
  };
}

/** Lists the files and links under the given paths, sorted by dataset path. */
export async function walk(inputs: string[], cwd = process.cwd()): Promise<WalkResult> {
  if (inputs.length === 0) throw new PgdvError('no paths given', { hint: 'Name at least one file or folder to add' });
  const entries: WalkEntry[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, string>();

  const add = (e: WalkEntry): void => {
    const prev = seen.get(e.path);
    if (prev !== undefined) {
      throw new PgdvError(`${e.abs} and ${prev} would both be stored as ${JSON.stringify(e.path)}`, {
        hint: 'Add them in separate commands or from a common parent folder',
      });
    }
    seen.set(e.path, e.abs);
    entries.push(e);
  };

  const visit = async (abs: string, rel: string, st: Stats, rules: Rules[]): Promise<void> => {
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = await readlink(abs);
      } catch (e) {
        throw unreadable(abs, e);
      }
      checkName(target, `link target of ${abs}`);
      add(entryOf(rel, abs, st, target));
    } else if (st.isFile()) {
      add(entryOf(rel, abs, st));
    } else if (st.isDirectory()) {
      await walkDir(abs, rel, rules);
    } else {
      warnings.push(`skipped ${abs}: not a regular file, folder or symlink (a socket, FIFO or device)`);
    }
  };

  const walkDir = async (dirAbs: string, rel: string, parentRules: Rules[]): Promise<void> => {
    const own = await loadRules(dirAbs, rel);
    const rules = own ? [...parentRules, own] : parentRules;
    let names: Dirent<Buffer>[];
    try {
      names = await readdir(dirAbs, { withFileTypes: true, encoding: 'buffer' });
    } catch (e) {
      throw unreadable(dirAbs, e);
    }
    const decoded = names.map((d) => ({ d, name: decodeName(d.name, rel ? path.join(dirAbs) : dirAbs) }));
    decoded.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const kept = decoded.filter(({ d, name }) => !ignored(rules, rel ? `${rel}/${name}` : name, d.isDirectory()));
    // lstat synchronously: from the page cache it is a microsecond or two, where a
    // promise through libuv's thread pool cost ~10-15 µs of main-thread time each
    // (100,000 files: ~1.5 s, the largest main-thread cost of the walk).
    const stats: Stats[] = new Array(kept.length);
    for (let i = 0; i < kept.length; i++) {
      const childAbs = path.join(dirAbs, kept[i]!.name);
      try {
        stats[i] = lstatSync(childAbs);
      } catch (e) {
        throw unreadable(childAbs, e);
      }
    }
    for (let i = 0; i < kept.length; i++) {
      const name = kept[i]!.name;
      await visit(path.join(dirAbs, name), rel ? `${rel}/${name}` : name, stats[i]!, rules);
    }
  };

  for (const input of inputs) {
    const abs = path.resolve(cwd, input);
    let st: Stats;
    try {
      st = await lstat(abs);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new PgdvError(`${input} does not exist`, { kind: 'not_found', hint: 'Check the path' });
      }
      throw unreadable(abs, e);
    }
    if (st.isDirectory()) await walkDir(abs, '', []);
    else {
      const name = path.basename(abs);
      checkName(name, path.dirname(abs));
      await visit(abs, name, st, []);
    }
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries, warnings };
}
