// Pure helpers of the lineage commands: flag parsers and graph rendering.

import { describe, expect, it } from 'vitest'
import { parseDepth, parseJsonObject, parseMetrics, parseParams } from '../src/lineage/parse.js'
import { toDot, toMermaid, toSvg, type LineageGraph } from '../src/lineage/render.js'

const g: LineageGraph = {
  nodes: [
    { key: 'dataset_version:3', kind: 'dataset_version', id: 3, name: 'flights@v3', depth: -1 },
    { key: 'run:7', kind: 'run', id: 7, name: 'train "big" <fast>', depth: 0 },
    { key: 'external_dataset:1', kind: 'external_dataset', id: 1, name: 's3://b raw/x', depth: -1 },
  ],
  edges: [
    { from: 'dataset_version:3', to: 'run:7', relation: 'used_by' },
    { from: 'external_dataset:1', to: 'run:7', relation: 'a|b' },
  ],
}

describe('flag parsers', () => {
  it('parses params keeping JSON types and refuses malformed pairs', () => {
    expect(parseParams(['lr=0.01', 'opt=adam', 'layers=[64,32]', 'flag=true', 'eq=a=b'])).toEqual({ lr: 0.01, opt: 'adam', layers: [64, 32], flag: true, eq: 'a=b' })
    expect(() => parseParams(['novalue'])).toThrow(/is not KEY=VALUE/)
    expect(() => parseParams(['=1'])).toThrow(/is not KEY=VALUE/)
  })

  it('parses metrics as finite numbers only, naming the bad key', () => {
    expect(parseMetrics(['loss=0.31', 'acc=1e-2'])).toEqual({ loss: 0.31, acc: 0.01 })
    expect(() => parseMetrics(['loss=high'])).toThrow(/metric "loss" is not a number: "high"/)
    expect(() => parseMetrics(['loss='])).toThrow(/not a number/)
    expect(() => parseMetrics(['loss=Infinity'])).toThrow(/not a number/)
  })

  it('parses JSON objects and depths', () => {
    expect(parseJsonObject('{"a":1}', '--params')).toEqual({ a: 1 })
    expect(parseJsonObject(undefined, '--params')).toEqual({})
    expect(() => parseJsonObject('[1]', '--params')).toThrow(/must be a JSON object/)
    expect(() => parseJsonObject('{', '--params')).toThrow(/is not valid JSON/)
    expect(parseDepth(undefined, 10)).toBe(10)
    expect(() => parseDepth(-1, 10)).toThrow(/out of range/)
  })
})

describe('rendering', () => {
  it('writes Mermaid with safe ids, escaped labels, shapes by kind and the start node bold', () => {
    const m = toMermaid(g)
    expect(m).toContain('dataset_version_3[("flights@v3")]:::dataset_version')
    expect(m).toContain('run_7["train #quot;big#quot; #lt;fast#gt;"]:::run')
    expect(m).toContain('external_dataset_1 -->|a#124;b| run_7')
    expect(m).toContain('style run_7 stroke-width:3px')
    expect(m).not.toContain('classDef model_version')
  })

  it('writes DOT with quoted ids and labels', () => {
    const d = toDot(g)
    expect(d).toContain('"run:7" [label="train \\"big\\" <fast>", shape=box')
    expect(d).toContain('"dataset_version:3" -> "run:7" [label="used_by"];')
  })

  it('says clearly when Graphviz is not installed', async () => {
    await expect(toSvg(g, 'dot-that-does-not-exist')).rejects.toThrow(/Graphviz, and its `dot` program is not installed/)
  })
})
