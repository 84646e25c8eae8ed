import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Debian's nginx binary. */
const NGINX = '/usr/sbin/nginx'

/** Installs Debian's nginx when it is missing (root, apt-get); the bench needs it as a baseline. */
export function ensureNginx(): void {
  if (spawnSync(NGINX, ['-v']).status === 0) return
  process.stderr.write('nginx missing: apt-get install -y nginx\n')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  const install = spawnSync('apt-get', ['install', '-y', '-qq', 'nginx'], { stdio: 'inherit', env })
  if (install.status !== 0) throw new Error('could not install nginx (apt-get install -y nginx)')
}

/**
 * nginx in the foreground on 127.0.0.1:`port` with a config in `dir`, reverse-proxying `/trpc/`
 * to `upstream` over kept-alive connections (what a team would put in front of a service today).
 * One worker: the gateway is one Node process too.
 */
export async function startNginx(
  dir: string,
  port: number,
  upstream: string,
): Promise<ChildProcess> {
  mkdirSync(join(dir, 'logs'), { recursive: true })
  const conf = join(dir, 'nginx.conf')
  writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  upstream service { server ${upstream}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location /trpc/ {
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  )
  const child = spawn(NGINX, ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const deadline = Date.now() + 10_000
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${port}/`).then(
      () => true,
      () => false,
    )
    if (up) return child
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`nginx did not start: ${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
