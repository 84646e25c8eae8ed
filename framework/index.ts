export { TRPCError } from '@trpc/server'
export { z } from 'zod'
export {
  DependencyCallError,
  DependencyWaitError,
  FAILURE_CODES,
  FAILURE_ERROR_CODES,
  RemoteProcedureError,
} from './client/call-errors.js'
export { type Connection, type ConnectOptions, connect } from './client/connect.js'
export { ConfigError } from './config/config-error.js'
export {
  type CorsOptions,
  defineGateway,
  GatewayConfigError,
  type GatewayDefinition,
  type GatewayLimits,
  type GatewayOptions,
  type GatewayRequest,
  type RateLimitOptions,
} from './gateway/define-gateway.js'
export type { GatewayRouter } from './gateway/gateway-router.js'
export {
  ERROR_CODES,
  FrameworkError,
  type FrameworkErrorCode,
  frameworkErrorCode,
} from './internal/errors.js'
export type {
  BalancedCall,
  BalancerName,
  BalancerSpec,
  CallsOf,
  HashBalancer,
} from './service/balancer-spec.js'
export type { Caller, InstanceInfo, ServiceContext } from './service/context.js'
export {
  type AnyServiceDefinition,
  type DepOptions,
  type DepsClients,
  defineService,
  initService,
  type ServiceDefinition,
} from './service/define-service.js'
export type { ExposeSpec, ProcedurePaths } from './service/expose.js'
export { InvalidRoleError } from './service/role.js'
export type { CallOptions, RouterClient } from './service/router-client.js'
export { ServiceDefinitionError } from './service/service-definition-error.js'
export { createTestCaller } from './service/test-caller.js'
