import { resolve } from 'node:path'
import { Command, CommanderError, Option } from 'commander'
import { DEFAULT_GATEWAY_PORT } from '../gateway/config.js'
import { exitCodeOf } from '../internal/errors.js'
import { CliError } from './cli-error.js'
import { DEFAULT_BASE_IMAGE, DEFAULT_ETCD_IMAGE } from './images.js'
import { formatTable, styler } from './output.js'
import type { EtcdAccessFlags } from './phone-book-target.js'
import { parseReplicas } from './replicas.js'

// Each command imports what it runs when it runs (await import): a one-shot such as `ps` or
// `call` loads no service code, no bundler and no TypeScript loader.

const out = (line: string): void => {
  process.stdout.write(`${line}\n`)
}
/** Progress of a command whose stdout is its answer (routes --json, k8s without --out): none. */
const quiet = (_line: string): void => undefined
const dirOption = () =>
  new Option('--dir <path>', 'the app root (holds services/ and package.json)').default(
    process.cwd(),
    'cwd',
  )
const etcdOption = () =>
  new Option('--etcd <endpoints>', 'etcd client URLs (default: ETCD_ENDPOINTS)')
/** TLS files and etcd user, beside every --etcd: each wins over its variable. */
const etcdAccessOptions = (command: Command) =>
  command
    .addOption(new Option('--etcd-ca <file>', "CA of etcd's certificate (default: ETCD_CA_FILE)"))
    .addOption(
      new Option('--etcd-cert <file>', 'TLS client certificate for etcd (default: ETCD_CERT_FILE)'),
    )
    .addOption(
      new Option(
        '--etcd-key <file>',
        "the client certificate's key, mode 0600 (default: ETCD_KEY_FILE)",
      ),
    )
    .addOption(new Option('--etcd-user <name>', 'etcd user (default: ETCD_USERNAME)'))
    .addOption(
      new Option(
        '--etcd-password-file <file>',
        "the etcd user's password, mode 0600 (default: ETCD_PASSWORD_FILE or ETCD_PASSWORD)",
      ),
    )
const namespaceOption = () =>
  new Option(
    '--namespace <name>',
    'phone book namespace (default: FRAMEWORK_NAMESPACE or package name)',
  )
const replicasOption = () =>
  new Option(
    '--replicas <role=N...>',
    'instances per role, overriding the service definitions',
  ).default([])

interface ComposeFlags {
  dir: string
  network: 'bridge' | 'host'
  baseImage: string
  etcdImage: string
  etcdPort: string
  gatewayPort?: string
  replicas: string[]
  etcdAuth?: boolean
}

/** `--gateway-port`, else GATEWAY_PORT, else 8080: the port compose publishes the gateway on. */
function gatewayPortOf(flags: ComposeFlags): number {
  const [text, name] =
    flags.gatewayPort !== undefined
      ? [flags.gatewayPort, '--gateway-port']
      : [process.env.GATEWAY_PORT || String(DEFAULT_GATEWAY_PORT), 'GATEWAY_PORT']
  const port = Number(text)
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
    throw new CliError(
      `${name} ${text} is invalid: use a port number 1-65535, e.g. --gateway-port 8080`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  return port
}

/** `ps --window <seconds>` in ms: a positive number of seconds up to a minute. */
function windowOption(text: string): number {
  const seconds = Number(text)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 60) {
    throw new CliError(
      `--window ${text} is invalid: use seconds between 0 and 60, e.g. --window 1`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  return seconds * 1000
}

function composeOptions(flags: ComposeFlags) {
  const etcdPort = Number(flags.etcdPort)
  if (!Number.isInteger(etcdPort) || etcdPort < 1 || etcdPort > 65534) {
    throw new CliError(
      `--etcd-port ${flags.etcdPort} is invalid: use a port number 1-65534`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  return {
    appRoot: resolve(flags.dir),
    network: flags.network,
    baseImage: flags.baseImage,
    etcdImage: flags.etcdImage,
    etcdPort,
    replicas: parseReplicas(flags.replicas),
    gatewayPort: gatewayPortOf(flags),
    etcdAuth: flags.etcdAuth === true,
  }
}

const composeFlags = (command: Command) =>
  command
    .addOption(
      new Option(
        '--network <mode>',
        'bridge (etcd reached as "etcd") or host (no bridge networking)',
      )
        .choices(['bridge', 'host'])
        .default('bridge'),
    )
    .addOption(
      new Option('--base-image <image>', 'image services are built FROM').default(
        DEFAULT_BASE_IMAGE,
      ),
    )
    .addOption(
      new Option('--etcd-image <image>', 'image etcd runs from').default(DEFAULT_ETCD_IMAGE),
    )
    .addOption(new Option('--etcd-port <port>', "etcd's client port on the host").default('2379'))
    .addOption(
      new Option(
        '--gateway-port <port>',
        "the gateway's port, when some service exposes procedures (default: GATEWAY_PORT or 8080)",
      ),
    )
    .addOption(replicasOption())
    .option(
      '--etcd-auth',
      'give each role its etcd user from framework etcd setup-auth (.framework/etcd/), as compose secrets',
    )

const program = new Command('framework')
  .description('TypeScript RPC services that find each other through etcd')
  .exitOverride()
  .configureOutput({
    outputError: (text, write) =>
      write(text.split('\n')[0]!.trim() ? `${text.trim().split('\n')[0]}\n` : text),
  })

/** Collects a repeatable option's values. */
const collect = (value: string, previous: string[]) => [...previous, value]

program
  .command('new')
  .description(
    'create an app: package.json, tsconfig, its first services, README (on a terminal with no <dir>: asks)',
  )
  .argument('[dir]', 'a new or empty directory; its name is the app name')
  .option(
    '--service <role[=deps]>',
    'a first service and the roles it calls, e.g. --service inventory --service orders=inventory (repeatable; default: hello)',
    collect,
    [],
  )
  .addOption(
    new Option(
      '--dev <mode>',
      'what npm run dev runs: docker (falls back to local) or local',
    ).choices(['docker', 'local']),
  )
  .option('--skip-install', 'do not run npm install')
  .option(
    '--framework <spec>',
    'depend on this npm spec (a published version), or vendor this framework-<version>.tgz; default: this framework, packed into vendor/',
  )
  .action(
    async (
      dir: string | undefined,
      flags: { service: string[]; dev?: string; skipInstall?: boolean; framework?: string },
    ) => {
      const { Questions } = await import('./ask/questions.js')
      const { appAnswers } = await import('./ask/app-questions.js')
      const { newApp } = await import('./new-app.js')
      const answers = await appAnswers(dir, flags, Questions.forTerminal('framework new'))
      await newApp({
        ...answers,
        install: !flags.skipInstall,
        framework: flags.framework,
        log: out,
      })
    },
  )

program
  .command('upgrade')
  .description(
    "replace the app's vendored framework with this one (or --framework), then npm install",
  )
  .option('--framework <spec>', 'an npm spec, or a framework-<version>.tgz to vendor')
  .option('--skip-install', 'do not run npm install')
  .addOption(dirOption())
  .action(async (flags: { framework?: string; skipInstall?: boolean; dir: string }) => {
    const { upgradeFramework } = await import('./upgrade.js')
    upgradeFramework({
      appRoot: resolve(flags.dir),
      framework: flags.framework,
      install: !flags.skipInstall,
      log: out,
    })
  })

const generate = program.command('generate').description('generate code by convention')
generate
  .command('service')
  .description(
    'services/<role>/index.ts with a sample procedure, and its test (on a terminal with no <role>: asks)',
  )
  .argument('[role]', "the new service's role")
  .option('--deps <roles>', 'comma-separated roles it calls through ctx.deps')
  .option(
    '--balancer <dep=name>',
    'how calls to a dependency pick an instance: p2c, round-robin, random, least-load, or hash:<input field> (repeatable)',
    collect,
    [],
  )
  .option('--expose', 'expose every procedure through the gateway')
  .option('--no-expose', 'keep it internal (the default)')
  .option('--port <n>', 'a fixed port for dev and compose')
  .addOption(dirOption())
  .action(
    async (
      role: string | undefined,
      flags: { deps?: string; balancer: string[]; expose?: boolean; port?: string; dir: string },
    ) => {
      const { Questions } = await import('./ask/questions.js')
      const { serviceAnswers } = await import('./ask/service-questions.js')
      const { listServiceRoles } = await import('./service-roles.js')
      const { assertAppRoot, generateService } = await import('./generate-service.js')
      const appRoot = resolve(flags.dir)
      assertAppRoot(appRoot)
      const plan = await serviceAnswers(
        role,
        flags,
        appRoot,
        listServiceRoles(appRoot),
        Questions.forTerminal('framework generate service'),
      )
      generateService({ ...plan, appRoot, log: out })
    },
  )

program
  .command('build')
  .description(
    'one bundle per service (esbuild) and a manifest in .framework/build/: what images and start --built run',
  )
  .argument('[roles...]', 'roles to build (default: every service)')
  .addOption(dirOption())
  .action(async (roles: string[], flags: { dir: string }) => {
    const { buildApp } = await import('./build/build-app.js')
    await buildApp({ appRoot: resolve(flags.dir), roles, log: out })
  })

program
  .command('routes')
  .description(
    'every role, its procedures (query/mutation, input, exposed through the gateway) and its deps; from the code',
  )
  .option('--json', 'print JSON')
  .addOption(dirOption())
  .action(async (flags: { json?: boolean; dir: string }) => {
    const { listRoutes } = await import('./routes.js')
    const routes = await listRoutes(resolve(flags.dir), flags.json ? quiet : out)
    if (flags.json) return out(JSON.stringify(routes, null, 2))
    out(
      formatTable(
        ['role', 'procedure', 'kind', 'input', 'exposed', 'deps'],
        routes.map((route) => [
          route.role,
          route.path,
          route.kind,
          route.input,
          route.exposed ? 'yes' : '-',
          route.deps.join(',') || '-',
        ]),
      ),
    )
  })

etcdAccessOptions(
  program
    .command('ps')
    .description('the live phone book: every registered instance')
    .option('--json', 'print JSON')
    .option(
      '--window <seconds>',
      'calls/s and 5xx share from two /metrics scrapes this far apart (default: one scrape, averaged since each instance started)',
    )
    .addOption(etcdOption())
    .addOption(namespaceOption())
    .addOption(dirOption()),
).action(
  async (
    flags: {
      json?: boolean
      window?: string
      etcd?: string
      namespace?: string
      dir: string
    } & EtcdAccessFlags,
  ) => {
    const { phoneBookTarget } = await import('./phone-book-target.js')
    const { formatAge, readPhoneBook } = await import('./ps.js')
    const { callRates, formatErrorRate, formatRate } = await import('./call-rates.js')
    const target = phoneBookTarget(flags, process.env)
    const windowMs = flags.window === undefined ? undefined : windowOption(flags.window)
    const book = await readPhoneBook(target)
    const rates = await callRates(
      book.instances.map((row) => row.url),
      windowMs,
    )
    if (flags.json) {
      const instances = book.instances.map((row) => ({
        ...row,
        calls: rates.get(row.url) ?? null,
      }))
      return out(JSON.stringify({ namespace: target.namespace, ...book, instances }, null, 2))
    }
    const style = styler(process.stdout)
    if (book.instances.length === 0) {
      out(
        `no instances registered in namespace '${target.namespace}' (etcd ${target.etcdEndpoints.join(',')})`,
      )
    } else {
      out(
        formatTable(
          [
            'role',
            'instance',
            'url',
            'age',
            'inflight',
            'cpu',
            'rss',
            'contract',
            'lease',
            'record',
            'calls/s',
            '5xx',
          ],
          book.instances.map((row) => [
            row.role,
            row.id,
            row.url,
            formatAge(row.ageSeconds),
            String(row.inflight),
            row.cpu.toFixed(2),
            `${row.rssMiB}M`,
            row.contract.slice(0, 8),
            row.ttlLeft === undefined ? '?' : `${row.ttlLeft}/${row.grantedTtl}s`,
            row.stale ? style.color(33, 'stale') : 'fresh',
            formatRate(rates.get(row.url)),
            formatErrorRate(rates.get(row.url)),
          ]),
        ),
      )
    }
    for (const bad of book.malformed) out(`malformed: ${bad.reason}`)
  },
)

etcdAccessOptions(
  program
    .command('watch')
    .description('stream adds/removes of a role and the instance a client would pick now')
    .argument('<role>')
    .addOption(etcdOption())
    .addOption(namespaceOption())
    .addOption(dirOption()),
).action(
  async (
    role: string,
    flags: { etcd?: string; namespace?: string; dir: string } & EtcdAccessFlags,
  ) => {
    const { etcdAccessChoice, phoneBookTarget } = await import('./phone-book-target.js')
    const { watchRole } = await import('./watch.js')
    const target = phoneBookTarget(flags, process.env)
    const stop = new AbortController()
    process.once('SIGINT', () => stop.abort())
    process.once('SIGTERM', () => stop.abort())
    await watchRole({
      role,
      etcdEndpoints: target.etcdEndpoints.join(','),
      etcdAccess: etcdAccessChoice(flags),
      namespace: target.namespace,
      signal: stop.signal,
    })
  },
)

etcdAccessOptions(
  program
    .command('call')
    .description(
      'call <role>.<procedure> through discovery: framework call cache.get \'{"key":"a"}\'',
    )
    .argument('<target>', '<role>.<procedure path>')
    .argument('[input]', 'the input as JSON')
    .option('--timeout <ms>', 'deadline of the call', '10000')
    .addOption(etcdOption())
    .addOption(namespaceOption())
    .addOption(dirOption()),
).action(
  async (
    targetText: string,
    inputText: string | undefined,
    flags: { timeout: string; etcd?: string; namespace?: string; dir: string } & EtcdAccessFlags,
  ) => {
    const { callThroughDiscovery, parseCallInput, parseCallTarget } = await import('./call.js')
    const { phoneBookTarget } = await import('./phone-book-target.js')
    const { role, path } = parseCallTarget(targetText)
    const input = parseCallInput(inputText)
    const timeoutMs = Number(flags.timeout)
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new CliError(
        `--timeout ${flags.timeout} is invalid: use milliseconds, e.g. --timeout 5000`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
    const target = phoneBookTarget(flags, process.env)
    const result = await callThroughDiscovery(target, role, path, input, timeoutMs)
    out(JSON.stringify(result, null, 2))
  },
)

const etcdCommand = program.command('etcd').description('etcd administration for the app')
etcdAccessOptions(
  etcdCommand
    .command('setup-auth')
    .description(
      'per service role an etcd user that writes only its own phone book prefix, a read-only user for the CLI and gateway, root; then auth on; passwords in .framework/etcd/<user>.password (0600)',
    )
    .option('--out <dir>', 'where password files go (default: .framework/etcd under the app root)')
    .option('--rotate', 'new passwords for users that already have one')
    .addOption(etcdOption())
    .addOption(namespaceOption())
    .addOption(dirOption()),
).action(
  async (
    flags: {
      out?: string
      rotate?: boolean
      etcd?: string
      namespace?: string
      dir: string
    } & EtcdAccessFlags,
  ) => {
    const { phoneBookTarget } = await import('./phone-book-target.js')
    const { setupAuth } = await import('./etcd-setup-auth.js')
    const env = process.env
    // The credentials given here are root's: a password alone means root's password.
    const passwordGiven = Boolean(
      flags.etcdPasswordFile || env.ETCD_PASSWORD_FILE || env.ETCD_PASSWORD,
    )
    const target = phoneBookTarget(
      {
        ...flags,
        etcdUser: flags.etcdUser ?? (passwordGiven ? env.ETCD_USERNAME || 'root' : undefined),
      },
      env,
    )
    const user = target.etcdAccess?.username
    if (user !== undefined && user !== 'root') {
      throw new CliError(
        `setup-auth creates users and roles, which only etcd's root may do; give root's password (--etcd-user root --etcd-password-file <file>), not ${user}'s`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
    await setupAuth({
      appRoot: resolve(flags.dir),
      target,
      rootPassword: target.etcdAccess?.password,
      out: flags.out,
      rotate: flags.rotate === true,
      log: out,
    })
  },
)

etcdAccessOptions(
  program
    .command('console')
    .description(
      'a REPL on the live system: every role a global (await cache.get({ key: "a" })), .ps, .routes, .watch <role>',
    )
    .addOption(etcdOption())
    .addOption(namespaceOption())
    .addOption(dirOption()),
).action(async (flags: { etcd?: string; namespace?: string; dir: string } & EtcdAccessFlags) => {
  const { phoneBookTarget } = await import('./phone-book-target.js')
  const { runConsole } = await import('./console/console-command.js')
  await runConsole({
    target: phoneBookTarget(flags, process.env),
    appRoot: resolve(flags.dir),
    input: process.stdin,
    output: process.stdout,
  })
})

composeFlags(
  program
    .command('compose')
    .description(
      'write docker-compose.yml from services/: etcd + every service, healthchecks, replicas',
    )
    .addOption(dirOption()),
).action(async (flags: ComposeFlags) => {
  const { writeCompose } = await import('./compose.js')
  await writeCompose(composeOptions(flags), out)
})

program
  .command('k8s')
  .description(
    'Kubernetes manifests from the same plan as compose: namespace, etcd, a Deployment per role, probes, PDBs',
  )
  .option('--out <dir>', 'write one file per group there (default: print to stdout)')
  .addOption(
    new Option(
      '--namespace <name>',
      'Kubernetes namespace and phone book namespace (default: the package name)',
    ),
  )
  .option('--etcd-endpoints <urls>', 'use this etcd (comma list) instead of a 3-member StatefulSet')
  .addOption(
    new Option('--etcd-image <image>', 'image the etcd members run').default(DEFAULT_ETCD_IMAGE),
  )
  .option('--registry <prefix>', 'image registry prefix: <prefix>/<namespace>-<role>:<tag>')
  .option('--tag <tag>', 'image tag (default: the package version)')
  .option(
    '--etcd-auth',
    'give each role its etcd user from framework etcd setup-auth (.framework/etcd/), as Secrets mounted in the pods',
  )
  .addOption(replicasOption())
  .addOption(dirOption())
  .action(
    async (flags: {
      out?: string
      namespace?: string
      etcdEndpoints?: string
      etcdImage: string
      registry?: string
      tag?: string
      replicas: string[]
      dir: string
      etcdAuth?: boolean
    }) => {
      const { writeK8s } = await import('./k8s/k8s-command.js')
      await writeK8s(
        {
          appRoot: resolve(flags.dir),
          out: flags.out,
          namespace: flags.namespace,
          etcdEndpoints: flags.etcdEndpoints,
          etcdImage: flags.etcdImage,
          registry: flags.registry,
          tag: flags.tag,
          replicas: parseReplicas(flags.replicas),
          etcdAuth: flags.etcdAuth === true,
        },
        (text) => process.stdout.write(text),
        flags.out === undefined ? quiet : out,
      )
    },
  )

composeFlags(
  program
    .command('dev')
    .description(
      'run everything: docker compose if an engine answers, else local processes with an etcd',
    )
    .option('--local', 'run local processes even if Docker is available')
    .option('--detach', 'compose mode: start in the background, return once all are healthy')
    .option('--no-watch', 'do not restart services when their files change')
    .addOption(dirOption()),
).action(async (flags: ComposeFlags & { local?: boolean; detach?: boolean; watch: boolean }) => {
  const { composeCommand, dockerEngineAnswers } = await import('./docker.js')
  const compose = flags.local ? undefined : dockerEngineAnswers() ? composeCommand() : undefined
  let code: number
  if (compose) {
    const { devCompose } = await import('./dev-compose.js')
    code = await devCompose({
      ...composeOptions(flags),
      compose,
      detach: flags.detach === true,
      watchFiles: flags.watch,
      log: out,
    })
  } else {
    if (flags.detach)
      throw new CliError(
        '--detach needs a Docker engine and compose; without them run framework dev in a terminal',
        'FRAMEWORK_ERR_USAGE',
      )
    if (!flags.local)
      out('framework no Docker engine answered (docker info): running local processes')
    const { devLocal } = await import('./dev-local.js')
    // The gateway process reads GATEWAY_PORT: the flag, when given, becomes it.
    const gatewayPort =
      flags.gatewayPort === undefined ? {} : { GATEWAY_PORT: String(gatewayPortOf(flags)) }
    code = await devLocal({
      appRoot: resolve(flags.dir),
      replicas: parseReplicas(flags.replicas),
      env: { ...process.env, ...gatewayPort },
      out: process.stdout,
      watchFiles: flags.watch,
    })
  }
  process.exit(code)
})

program
  .command('down')
  .description('stop and remove what framework dev --detach started in compose')
  .addOption(dirOption())
  .action(async (flags: { dir: string }) => {
    const { composeCommand } = await import('./docker.js')
    const { composeDown } = await import('./dev-compose.js')
    const compose = composeCommand()
    if (!compose)
      throw new CliError(
        'neither docker compose nor docker-compose is installed',
        'FRAMEWORK_ERR_USAGE',
      )
    process.exit(await composeDown(resolve(flags.dir), compose))
  })

program
  .command('start')
  .description('run one instance of services/<role> and register it in etcd')
  .argument('<role>', 'the service role (folder name under services/)')
  .option(
    '--built',
    'run the bundle from framework build (the default when NODE_ENV=production and one exists)',
  )
  .addOption(dirOption())
  .action(async (role: string, flags: { dir: string; built?: boolean }) => {
    const { startCommand } = await import('./start.js')
    await startCommand(role, flags.dir, flags.built === true)
  })

program
  .command('gateway')
  .description(
    'the edge: tRPC, plain JSON and OpenAPI for exposed procedures, on GATEWAY_PORT (default 8080)',
  )
  .option('--config <file>', 'the gateway settings module (default: gateway.ts at the app root)')
  .option(
    '--built',
    "load the services' bundles and gateway.ts's from framework build (the default when NODE_ENV=production and they exist)",
  )
  .addOption(dirOption())
  .action(async (flags: { dir: string; config?: string; built?: boolean }) => {
    // Loaded on demand: the other commands never load the gateway.
    const { gatewayCommand } = await import('./gateway.js')
    await gatewayCommand(flags.dir, flags.config, flags.built === true)
  })

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode)
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`framework: ${message.split('\n')[0]}\n`)
  // One table maps every framework error's code to its exit code: 2 = fix the input, 1 = failed.
  process.exit(exitCodeOf(err))
}
