export { TRPCError } from '@trpc/server'
export { z } from 'zod'
export { DependencyCallError, FAILURE_CODES, RemoteProcedureError } from './client/call-errors.js'
export { type Connection, type ConnectOptions, connect } from './client/connect.js'
export type { CallOptions, RouterClient } from './client/router-client.js'
export type {
  BalancedCall,
  BalancerName,
  BalancerSpec,
  CallsOf,
  HashBalancer,
} from './service/balancer-spec.js'
export type { InstanceInfo, ServiceContext } from './service/context.js'
export {
  type AnyServiceDefinition,
  type DepOptions,
  type DepsClients,
  defineService,
  initService,
  type ServiceDefinition,
} from './service/define-service.js'
export { createTestCaller } from './service/test-caller.js'
