// The dashboard page of `framework dev`: plain JS, no build step. The server pushes the topology
// and the trace list over one EventSource (/api/events); a trace's spans and the call form use
// fetch. Everything is built with DOM calls (no innerHTML): names come from other processes.

/** An element with attributes (`text` sets its text) and children. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue
    if (name === 'text') node.textContent = String(value)
    else if (name === 'style') Object.assign(node.style, value)
    else node.setAttribute(name, String(value))
  }
  for (const child of children) if (child !== undefined && child !== null) node.append(child)
  return node
}

const $ = (selector) => document.querySelector(selector)

function age(startedAt) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(startedAt)) / 1000))
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`
  return `${Math.round(seconds / 3600)}h`
}

const percent = (share) => (share === null ? '–' : `${(share * 100).toFixed(1)}%`)
const rate = (value) =>
  value === null ? '–' : `${value >= 100 ? Math.round(value) : value.toFixed(1)}/s`
const ms = (value) =>
  value === null ? '–' : value < 10 ? `${value.toFixed(2)} ms` : `${Math.round(value)} ms`

/** A color per service, in the order the page first meets them (distinct for the first ten). */
const PALETTE = [
  '#3b82f6',
  '#f59e0b',
  '#10b981',
  '#a855f7',
  '#ef4444',
  '#14b8a6',
  '#ec4899',
  '#84cc16',
  '#6366f1',
  '#f97316',
]
const colors = new Map()
function colorOf(service) {
  if (!colors.has(service)) colors.set(service, PALETTE[colors.size % PALETTE.length])
  return colors.get(service)
}

function renderTopology(view) {
  $('#namespace').textContent = `namespace ${view.namespace}`
  $('#stale').hidden = !view.stale
  const roles = view.roles.map(({ role, instances }) =>
    el(
      'div',
      { class: 'role', 'data-role': role, 'data-count': instances.length },
      el(
        'h3',
        {},
        `${role} `,
        el('small', { class: 'count', text: `${instances.length} instance(s)` }),
      ),
      el(
        'table',
        {},
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ...[
              'instance',
              'health',
              'pid',
              'age',
              'in-flight',
              'cpu',
              'rss',
              'calls/s',
              '5xx',
              'contract',
            ].map((name) => el('th', { text: name })),
          ),
        ),
        el(
          'tbody',
          {},
          ...instances.map((instance) =>
            el(
              'tr',
              {
                class: 'instance',
                'data-id': instance.id,
                'data-pid': instance.pid,
                title: instance.url,
              },
              el('td', { text: instance.id }),
              el('td', { class: 'health', 'data-health': instance.health, text: instance.health }),
              el('td', { text: instance.pid }),
              el('td', { text: age(instance.startedAt) }),
              el('td', { text: instance.load.inflight }),
              el('td', { text: instance.load.cpu.toFixed(2) }),
              el('td', { text: `${instance.load.rssMiB} MiB` }),
              el('td', { text: rate(instance.callsPerSecond) }),
              el('td', { text: percent(instance.errorRate) }),
              el('td', {
                text: instance.contract.slice(0, 8),
                title: `version ${instance.version}`,
              }),
            ),
          ),
        ),
      ),
    ),
  )
  if (roles.length === 0) roles.push(el('p', { class: 'hint', text: 'no instance registered yet' }))
  $('#roles').replaceChildren(...roles)
  $('#edges tbody').replaceChildren(
    ...view.edges.map((edge) =>
      el(
        'tr',
        { class: 'edge', 'data-from': edge.from, 'data-to': edge.to },
        el('td', { text: edge.from }),
        el('td', { text: edge.to }),
        el('td', { text: rate(edge.callsPerSecond) }),
        el('td', { text: percent(edge.errorRate) }),
        el('td', { text: ms(edge.p50Ms) }),
        el('td', { text: ms(edge.p99Ms) }),
      ),
    ),
  )
}

let selectedTrace = ''

function renderTraces(traces) {
  const rows = traces.map((trace) => {
    const row = el(
      'tr',
      {
        class: 'trace-row',
        'data-trace-id': trace.traceId,
        'data-name': trace.name,
        'data-services': trace.services.join(','),
        'data-error': trace.error,
        'aria-selected': trace.traceId === selectedTrace,
      },
      el('td', { text: new Date(trace.startMs).toLocaleTimeString() }),
      el('td', { text: trace.name }),
      el('td', { text: trace.services.join(', ') }),
      el('td', { text: trace.spans }),
      el('td', { text: ms(trace.durationMs) }),
    )
    row.addEventListener('click', () => showTrace(trace.traceId))
    return row
  })
  if (rows.length === 0) {
    rows.push(
      el('tr', {}, el('td', { colspan: 5, class: 'hint', text: 'no trace yet: call something' })),
    )
  }
  $('#traces tbody').replaceChildren(...rows)
}

/** The spans of a trace in tree order (a parent before its children), with their depth. */
function spanTree(spans) {
  const ids = new Set(spans.map((span) => span.spanId))
  const children = new Map()
  const roots = []
  for (const span of spans) {
    if (span.parentSpanId && ids.has(span.parentSpanId)) {
      if (!children.has(span.parentSpanId)) children.set(span.parentSpanId, [])
      children.get(span.parentSpanId).push(span)
    } else roots.push(span)
  }
  const ordered = []
  const visit = (span, depth) => {
    ordered.push({ span, depth })
    for (const child of (children.get(span.spanId) ?? []).sort((a, b) => a.startMs - b.startMs)) {
      visit(child, depth + 1)
    }
  }
  for (const root of roots.sort((a, b) => a.startMs - b.startMs)) visit(root, 0)
  return ordered
}

const KINDS = { 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' }

async function showTrace(traceId) {
  selectedTrace = traceId
  for (const row of document.querySelectorAll('.trace-row')) {
    row.setAttribute('aria-selected', String(row.dataset.traceId === traceId))
  }
  const waterfall = $('#waterfall')
  const response = await fetch(`/api/traces/${encodeURIComponent(traceId)}`)
  if (!response.ok) {
    waterfall.replaceChildren(el('p', { class: 'hint', text: (await response.json()).error }))
    return
  }
  const spans = await response.json()
  const start = Math.min(...spans.map((span) => span.startMs))
  const end = Math.max(...spans.map((span) => span.endMs))
  const total = Math.max(end - start, 0.001)
  waterfall.dataset.traceId = traceId
  waterfall.replaceChildren(
    el('p', {
      class: 'hint',
      text: `trace ${traceId} · ${spans.length} spans · ${ms(end - start)}`,
    }),
    ...spanTree(spans).map(({ span, depth }) =>
      el(
        'div',
        {
          class: 'span-row',
          'data-service': span.service,
          'data-span-id': span.spanId,
          'data-parent-span-id': span.parentSpanId,
          'data-depth': depth,
          'data-error': span.status === 2,
          title: Object.entries(span.attributes)
            .map(([key, value]) => `${key}=${value}`)
            .join('\n'),
        },
        el(
          'div',
          { class: 'span-label', style: { paddingLeft: `${depth * 1.1}rem` } },
          el('span', { class: 'span-service', text: span.service }),
          el('span', { text: `${span.name} (${KINDS[span.kind] ?? span.kind})` }),
        ),
        el(
          'div',
          { class: 'span-track' },
          el('div', {
            class: 'span-bar',
            style: {
              left: `${((span.startMs - start) / total) * 100}%`,
              width: `${((span.endMs - span.startMs) / total) * 100}%`,
              background: colorOf(span.service),
            },
          }),
        ),
        el('div', { class: 'span-ms', text: ms(span.endMs - span.startMs) }),
      ),
    ),
  )
}

/** A JSON value that fits a (simple) JSON Schema: the call form's starting input. */
function example(schema, depth = 0) {
  if (!schema || depth > 4) return null
  if (schema.default !== undefined) return schema.default
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0]
  if (schema.const !== undefined) return schema.const
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type
  if (type === 'object' || schema.properties) {
    const out = {}
    for (const name of schema.required ?? []) {
      out[name] = example(schema.properties?.[name], depth + 1)
    }
    return out
  }
  if (type === 'array') return []
  if (type === 'string') return 'a'
  if (type === 'integer' || type === 'number') return Math.max(1, schema.minimum ?? 1)
  if (type === 'boolean') return false
  if (schema.anyOf?.[0]) return example(schema.anyOf[0], depth + 1)
  if (schema.allOf?.[0]) return example(schema.allOf[0], depth + 1)
  return null
}

let procedures = []

function showProcedure() {
  const procedure = procedures.find((entry) => entry.name === $('#call-target').value)
  if (!procedure) return
  $('#call-schema').textContent = procedure.inputSchema
    ? JSON.stringify(procedure.inputSchema, null, 2)
    : procedure.input || '(no input)'
  $('#call-input').value = procedure.inputSchema
    ? JSON.stringify(example(procedure.inputSchema), null, 2)
    : ''
}

async function loadProcedures() {
  const response = await fetch('/api/procedures')
  const list = await response.json()
  const current = $('#call-target').value
  const names = list.map((entry) => entry.name).join(',')
  if (names === procedures.map((entry) => entry.name).join(',')) return
  procedures = list
  $('#call-target').replaceChildren(
    ...procedures.map((entry) =>
      el('option', { value: entry.name, text: `${entry.name} (${entry.kind})` }),
    ),
  )
  if (procedures.some((entry) => entry.name === current)) $('#call-target').value = current
  showProcedure()
}

$('#call-target').addEventListener('change', showProcedure)
$('#call-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const result = $('#call-result')
  const text = $('#call-input').value.trim()
  let input
  try {
    input = text === '' ? undefined : JSON.parse(text)
  } catch (err) {
    result.dataset.state = 'error'
    result.textContent = `the input is not JSON: ${err.message}`
    return
  }
  result.dataset.state = 'pending'
  result.textContent = 'calling…'
  try {
    const response = await fetch('/api/call', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: $('#call-target').value, input }),
    })
    const answer = await response.json()
    result.dataset.state = answer.ok ? 'ok' : 'error'
    result.textContent = answer.ok
      ? `${JSON.stringify(answer.result, null, 2)}\n(${answer.ms} ms)`
      : answer.error
  } catch (err) {
    result.dataset.state = 'error'
    result.textContent = `the dashboard did not answer: ${err.message}`
  }
})

const events = new EventSource('/api/events')
events.addEventListener('open', () => {
  $('#connection').dataset.state = 'open'
  $('#connection').textContent = 'live'
})
events.addEventListener('error', () => {
  $('#connection').dataset.state = 'lost'
  $('#connection').textContent = 'reconnecting… (is framework dev still running?)'
})
events.addEventListener('topology', (event) => {
  renderTopology(JSON.parse(event.data))
  void loadProcedures()
})
events.addEventListener('traces', (event) => renderTraces(JSON.parse(event.data)))
