import { Args, Flags } from '@oclif/core'
import { ingestOpenLineageFile, type IngestResult } from '../../api/lineage.js'
import { PgdvCommand } from '../../lib/base.js'

export default class LineageIngest extends PgdvCommand<typeof LineageIngest> {
  static summary = 'Ingest OpenLineage RunEvents from a JSON or JSON Lines file, streamed, all or nothing.'
  static description = `Runs map by runId, jobs by namespace + name. A dataset with namespace "pgdv" and the name of a pgdv dataset (optionally DATASET@REF) maps to that dataset's version (REF, else the version facet's datasetVersion, else the head of main); any other dataset becomes an external dataset. START after COMPLETE still ends COMPLETE. Ingesting the same event twice changes nothing.`
  static examples = ['<%= config.bin %> lineage ingest events.jsonl', '<%= config.bin %> lineage ingest marquez-export.json --json']

  static args = { file: Args.string({ description: 'a .json (one event or an array) or .jsonl file', required: true }) }
  static flags = { 'batch-size': Flags.integer({ description: 'events per database call', default: 1000, min: 1 }) }

  async run(): Promise<IngestResult> {
    const { args, flags } = await this.parse(LineageIngest)
    const r = await ingestOpenLineageFile(await this.pgdv(), args.file, { batchSize: flags['batch-size'] })
    this.log(`ingested ${r.ingested} new event(s) of ${r.received} from ${r.file} (${r.duplicates} seen before)`)
    return r
  }
}
