import { Args, Flags } from '@oclif/core'
import { addFiles, type AddFilesResult } from '../api/files.js'
import { PgdvCommand } from '../lib/base.js'

export default class Add extends PgdvCommand<typeof Add> {
  static summary = 'Add files and folders to a files dataset as a new version (content-defined chunks, deduplicated packs).'
  static description = `Folders are added recursively; a folder's contents land at the dataset's root, a file under its base name.
A .pgdvignore (gitignore syntax) in any folder excludes paths below it. Symlinks are stored as links; sockets, FIFOs and devices are skipped with a warning.
Killed at any moment, add leaves no version behind; run it again to resume (stored chunks are not uploaded again).
Files whose size, mtime, ctime, inode and device are those the add that made the branch head saw are not read again (--reread reads them).
--mode replace (default): the version holds exactly these files. --mode append: these files are added to the branch head's, replacing same paths.`
  static examples = [
    '<%= config.bin %> add images ./images -m "first import"',
    '<%= config.bin %> add images ./new-batch --mode append --tag batch-7',
    '<%= config.bin %> add images ./images --branch relabel --json',
  ]

  static strict = false
  static args = {
    dataset: Args.string({ description: 'files dataset (create it with `pgdv dataset create NAME --files`)', required: true }),
    path: Args.string({ description: 'files or folders to add (one or more)', required: true }),
  }

  static flags = {
    branch: Flags.string({ char: 'b', description: 'branch to commit to', default: 'main' }),
    tag: Flags.string({ char: 't', description: 'also tag the new version' }),
    message: Flags.string({ char: 'm', description: 'version message' }),
    mode: Flags.string({ description: 'replace the file set, or append to it', options: ['replace', 'append'], default: 'replace' }),
    force: Flags.boolean({ description: 'make a version even when nothing changed' }),
    reread: Flags.boolean({ description: 'read every file, even those unchanged (size, mtime, ctime, inode) since the add that made the branch head' }),
  }

  async run(): Promise<AddFilesResult> {
    const { args, argv } = await this.parse(Add)
    const paths = (argv as string[]).slice(1)
    const result = await addFiles(await this.pgdv(), {
      dataset: args.dataset,
      paths,
      branch: this.flags.branch,
      tag: this.flags.tag,
      message: this.flags.message,
      mode: this.flags.mode as 'replace' | 'append',
      force: this.flags.force,
      reread: this.flags.reread,
      progress: !this.jsonEnabled(),
      onWarning: (w) => this.warn(w),
    })
    const mb = (n: number) => (n / 1e6).toFixed(1)
    if (result.created) {
      this.log(`${args.dataset}@${result.branch}: version ${result.version_id} (+${result.added} -${result.removed} ~${result.modified} files)`)
    } else {
      this.log(`${args.dataset}@${result.branch}: nothing changed; still version ${result.version_id}`)
    }
    this.log(`${result.files} files (${result.unchanged} unchanged, not read), ${mb(result.bytes)} MB read, ${mb(result.new_bytes)} MB new in ${result.packs} pack(s)${result.links ? `, ${result.links} symlinks` : ''}`)
    return result
  }
}
