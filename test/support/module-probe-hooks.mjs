// Loader hooks of module-probe.mjs: tells the main thread every URL an import resolves to.
let port

export function initialize(data) {
  port = data.port
}

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  port.postMessage(resolved.url)
  return resolved
}
