import { Command, CommanderError } from 'commander'
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

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode)
  }
  process.stderr.write(`framework: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
