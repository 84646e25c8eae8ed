import { resolve } from 'node:path'
import { Command, CommanderError } from 'commander'
import { devLocal, parseReplicas } from './dev-local.js'
import { startCommand } from './start.js'

const program = new Command('framework')
  .description('TypeScript RPC services that find each other through etcd')
  .showHelpAfterError(false)
  .exitOverride()

program
  .command('start')
  .description('run one instance of services/<role> and register it in etcd')
  .argument('<role>', 'the service role (folder name under services/)')
  .option('--dir <path>', 'the app root (holds services/ and package.json)', process.cwd())
  .action(async (role: string, options: { dir: string }) => {
    await startCommand(role, options.dir)
  })

program
  .command('dev')
  .description('run every service in services/ with an etcd, as local processes; Ctrl-C stops all')
  .option('--dir <path>', 'the app root (holds services/ and package.json)', process.cwd())
  .option('--replicas <role=N...>', 'instances per role, overriding the service definitions', [])
  .option('--local', 'run local processes (the only mode until compose support lands)')
  .action(async (options: { dir: string; replicas: string[] }) => {
    const code = await devLocal({
      appRoot: resolve(options.dir),
      replicas: parseReplicas(options.replicas),
      env: process.env,
      out: process.stdout,
    })
    process.exit(code)
  })

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode)
  }
  process.stderr.write(`framework: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
