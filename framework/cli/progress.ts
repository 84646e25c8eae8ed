import { spawn } from 'node:child_process'
import { spinner } from '@clack/prompts'

/** Seconds since `started` (performance.now()), for "done in 12.3 s". */
const secondsSince = (started: number) => ((performance.now() - started) / 1000).toFixed(1)

/** The last non-empty line of some output, without escape codes, cut to fit a terminal line. */
export function lastLine(text: string, width: number): string | undefined {
  const lines = text
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips terminal escapes
    .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '')
    .split(/[\r\n]+/)
    .map((line) => line.trim())
    .filter(Boolean)
  const line = lines.at(-1)
  return line === undefined ? undefined : line.slice(0, Math.max(10, width))
}

/**
 * Runs a long step (npm install, an image build). On a terminal: a spinner showing the step's
 * latest output line and the time taken, its whole output printed only if it fails. Elsewhere
 * (CI, pipes): a start line, the step's own output as it comes, and an end line. Resolves to
 * whether it exited 0.
 */
export function runWithProgress(
  command: string,
  args: string[],
  cwd: string,
  title: string,
  out: NodeJS.WriteStream,
): Promise<boolean> {
  const started = performance.now()
  if (out.isTTY !== true) {
    out.write(`${title} …\n`)
    return new Promise((resolve) => {
      const child = spawn(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] })
      child.on('error', () => resolve(false))
      child.on('close', (code) => {
        out.write(
          `${title} ${code === 0 ? 'done' : `failed (exit ${code})`} in ${secondsSince(started)} s\n`,
        )
        resolve(code === 0)
      })
    })
  }
  const spin = spinner({ output: out })
  spin.start(title)
  let output = ''
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const line = lastLine(output.slice(-2000), (out.columns ?? 80) - title.length - 20)
      spin.message(line ? `${title}: ${line}` : title)
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('error', (err) => {
      spin.error(`${title} failed: ${err.message}`)
      resolve(false)
    })
    child.on('close', (code) => {
      if (code === 0) {
        spin.stop(`${title} done in ${secondsSince(started)} s`)
      } else {
        spin.error(`${title} failed (exit ${code}) in ${secondsSince(started)} s`)
        out.write(output)
      }
      resolve(code === 0)
    })
  })
}
