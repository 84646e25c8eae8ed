/**
 * The wire between the framework's callers and its services, for both sides: paths, headers,
 * the RPC stream's handshake and frames, batches, call metadata. It imports nothing from the framework.
 */
export * from './answer.js'
export * from './batch.js'
export * from './call-token.js'
export * from './headers.js'
export * from './metadata.js'
export * from './overload.js'
export * from './paths.js'
export * from './procedure-kind.js'
export * from './stream-frames.js'
export * from './stream-handshake.js'
export * from './trace-context.js'
