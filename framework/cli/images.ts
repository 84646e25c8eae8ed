/** Image the services are built on by default (`--base-image`): a current Node LTS, slim. */
export const DEFAULT_BASE_IMAGE = 'node:22-slim'
/** Image etcd runs from by default (`--etcd-image`). */
export const DEFAULT_ETCD_IMAGE = 'gcr.io/etcd-development/etcd:v3.5.17'
