// Preloaded with `node --import`: records every module the process loads — ES modules as the
// loader resolves them (module-probe-hooks.mjs, on the loader's thread) and CommonJS modules from
// require's cache — and writes the list as JSON to MODULE_PROBE_FILE when the process exits.
import { writeFileSync } from 'node:fs'
import Module, { register } from 'node:module'
import { MessageChannel } from 'node:worker_threads'

const seen = new Set()
const { port1, port2 } = new MessageChannel()
port1.on('message', (url) => seen.add(url))
port1.unref()
register('./module-probe-hooks.mjs', {
  parentURL: import.meta.url,
  data: { port: port2 },
  transferList: [port2],
})
process.on('exit', () => {
  for (const file of Object.keys(Module._cache)) seen.add(file)
  writeFileSync(process.env.MODULE_PROBE_FILE, JSON.stringify([...seen].sort()))
})
