import { describe, expect, it } from 'vitest'
import {
  BATCH_PATH,
  DEADLINE_HEADER,
  deadlineFrom,
  encodeAnswer,
  encodeBatch,
  encodeCallFrame,
  encodeFrameInput,
  encodeMetadata,
  encodeRefusal,
  frameId,
  GOAWAY_FRAME,
  isStreamUpgrade,
  NO_METADATA,
  PROTOCOL_VERSION,
  parseAnswer,
  parseBatch,
  parseCallFrame,
  parseRpcUrl,
  parseUpgradeAnswer,
  RPC_PREFIX,
  STREAM_PATH,
  STREAM_PROTOCOL,
  serviceFrameKind,
  singleCallPath,
  UPGRADE_ACCEPTED,
  upgradeRequest,
} from '../../framework/protocol/index.js'

// The bytes here are the wire other languages speak (docs/registry-protocol.md): a change is a
// new protocol version, never a refactor.
describe('framework/protocol', () => {
  it('names the paths, the header and the upgrade token', () => {
    expect([RPC_PREFIX, BATCH_PATH, STREAM_PATH]).toEqual([
      '/_rpc/',
      '/_rpc/_batch',
      '/_rpc/_stream',
    ])
    expect(DEADLINE_HEADER).toBe('x-deadline-ms')
    expect([PROTOCOL_VERSION, STREAM_PROTOCOL]).toEqual([1, 'framework-rpc/1'])
  })

  it('single calls: query input in the URL, mutation input in the body; the URL parses back', () => {
    expect(singleCallPath('stats.hits', 'query', '{"key":"a b"}')).toBe(
      '/_rpc/stats.hits?input=%7B%22key%22%3A%22a%20b%22%7D',
    )
    expect(singleCallPath('get', 'query', undefined)).toBe('/_rpc/get')
    expect(singleCallPath('set', 'mutation', '{"key":"a"}')).toBe('/_rpc/set')
    expect(parseRpcUrl('/_rpc/stats%2Ehits?input=1')).toEqual({
      path: 'stats.hits',
      query: 'input=1',
    })
    expect(parseRpcUrl('/_rpc/_batch')).toEqual({ path: '_batch', query: '' })
  })

  it('reads a deadline header only when it is a non-negative number', () => {
    expect(deadlineFrom({ [DEADLINE_HEADER]: '250' })).toBe(250)
    expect(deadlineFrom({ [DEADLINE_HEADER]: '-1' })).toBeUndefined()
    expect(deadlineFrom({ [DEADLINE_HEADER]: 'soon' })).toBeUndefined()
    expect(deadlineFrom({})).toBeUndefined()
  })

  it('stream handshake bytes', () => {
    expect(upgradeRequest('127.0.0.1:4000')).toBe(
      'GET /_rpc/_stream HTTP/1.1\r\nhost: 127.0.0.1:4000\r\nconnection: upgrade\r\nupgrade: framework-rpc/1\r\n\r\n',
    )
    expect(parseUpgradeAnswer(`${UPGRADE_ACCEPTED}[1,200,{}]\n`)).toEqual({
      status: '101',
      length: UPGRADE_ACCEPTED.length,
    })
    expect(parseUpgradeAnswer('HTTP/1.1 101 Switching')).toBeUndefined()
    expect(parseUpgradeAnswer('SSH-2.0\r\n\r\n')).toEqual({ status: undefined, length: 11 })
    expect(isStreamUpgrade('/_rpc/_stream', 'Framework-RPC/1')).toBe(true)
    expect(isStreamUpgrade('/_rpc/_stream', 'websocket')).toBe(false)
    expect(isStreamUpgrade('/other', 'framework-rpc/1')).toBe(false)
  })

  it('call frames encode as one JSON line and parse back; bad ones say what is wrong', () => {
    const input = encodeFrameInput({ key: 'a' })!
    const line = encodeCallFrame(7, 'stats.hits', 'query', input, 1500)
    expect(line).toBe('[7,"stats.hits","query",{"key":"a"},1500]\n')
    expect(parseCallFrame(line.trimEnd())).toEqual([
      7,
      'stats.hits',
      'query',
      { key: 'a' },
      1500,
      NO_METADATA,
    ])
    expect(encodeCallFrame(8, '', 'query', encodeFrameInput(undefined)!, Number.NaN)).toBe(
      '[8,"","query",null,null]\n',
    )
    expect(encodeFrameInput(() => 1)).toBeUndefined()
    expect(() => encodeFrameInput(1n)).toThrow(TypeError)
    expect(parseCallFrame('[1,')).toMatch(/^RPC stream frame is not valid JSON \(/)
    expect(parseCallFrame('[0,"get","query",null,null]')).toBe(
      'an RPC stream frame is [id > 0, path, "query"|"mutation", input, deadlineMs, metadata?]',
    )
    expect(parseCallFrame('[1,"get","subscription",null,null]')).toMatch(/^an RPC stream frame/)
    expect([frameId(' [ 42 , garbage'), frameId('[0,'), frameId('{"id":1}')]).toEqual([
      42,
      undefined,
      undefined,
    ])
  })

  it('answers, goaway and refusals from the service', () => {
    expect(encodeAnswer(3, 200, '{"result":{"data":1}}')).toBe('[3,200,{"result":{"data":1}}]\n')
    expect(GOAWAY_FRAME).toBe('[0,0,"goaway"]\n')
    expect(encodeRefusal(413, '{}')).toBe('[0,413,{}]\n')
    const answer = parseAnswer('[3,200,{"result":{"data":1}}]')
    expect(answer).toEqual([3, 200, { result: { data: 1 } }])
    expect(typeof answer !== 'string' && serviceFrameKind(answer)).toBe('answer')
    const goaway = parseAnswer(GOAWAY_FRAME.trimEnd())
    expect(typeof goaway !== 'string' && serviceFrameKind(goaway)).toBe('goaway')
    const refusal = parseAnswer('[0,400,{"error":{}}]')
    expect(typeof refusal !== 'string' && serviceFrameKind(refusal)).toBe('refusal')
    expect(parseAnswer('nope')).toBe('a frame that is not JSON')
    expect(parseAnswer('[1,"200",{}]')).toBe('a malformed frame')
  })

  it('batches encode as one JSON array and parse back; bad ones say what is wrong', () => {
    const body = encodeBatch([
      { path: 'get', kind: 'query', input: { key: 'a' }, deadlineMs: 900 },
      { path: 'set', kind: 'mutation', input: undefined, deadlineMs: 0 },
    ])
    expect(body).toBe('[["get","query",{"key":"a"},900],["set","mutation",null,0]]')
    expect(parseBatch(body)).toEqual([
      ['get', 'query', { key: 'a' }, 900, NO_METADATA],
      ['set', 'mutation', null, 0, NO_METADATA],
    ])
    expect(parseBatch('[')).toMatch(/^batch body is not valid JSON \(/)
    for (const bad of ['[]', '{}', '[["get","delete",null,1]]', '[["get","query",null,"1"]]']) {
      expect(parseBatch(bad)).toBe(
        'a batch body is a non-empty JSON array of [path, "query"|"mutation", input, deadlineMs, metadata?]',
      )
    }
  })

  it('metadata rides as a 6th frame element and a 5th batch element, only when there is some', () => {
    const metadata = { 'x-request-id': 'r-1', 'x-framework-caller': 'eyJpZCI6InUxIn0' }
    const line = encodeCallFrame(9, 'get', 'query', '{"key":"a"}', 800, encodeMetadata(metadata))
    expect(line).toBe(
      '[9,"get","query",{"key":"a"},800,{"x-request-id":"r-1","x-framework-caller":"eyJpZCI6InUxIn0"}]\n',
    )
    expect(parseCallFrame(line.trimEnd())).toEqual([9, 'get', 'query', { key: 'a' }, 800, metadata])
    // Empty metadata adds nothing: the first version's bytes.
    expect(encodeCallFrame(9, 'get', 'query', 'null', 800, encodeMetadata(NO_METADATA))).toBe(
      '[9,"get","query",null,800]\n',
    )
    expect(encodeCallFrame(9, 'get', 'query', 'null', 800, encodeMetadata({}))).toBe(
      '[9,"get","query",null,800]\n',
    )
    expect(parseCallFrame('[9,"get","query",null,800,{"x-request-id":"two words"}]')).toBe(
      'call metadata x-request-id is invalid: use 1-128 visible ASCII characters, e.g. a UUID',
    )
    expect(parseCallFrame('[9,"get","query",null,800,["x"]]')).toMatch(/^call metadata is a JSON/)

    const body = encodeBatch([
      { path: 'get', kind: 'query', input: null, deadlineMs: 5, metadata },
      { path: 'get', kind: 'query', input: null, deadlineMs: 5, metadata: NO_METADATA },
    ])
    expect(body).toBe(
      '[["get","query",null,5,{"x-request-id":"r-1","x-framework-caller":"eyJpZCI6InUxIn0"}],["get","query",null,5]]',
    )
    expect(parseBatch(body)).toEqual([
      ['get', 'query', null, 5, metadata],
      ['get', 'query', null, 5, NO_METADATA],
    ])
    expect(parseBatch('[["get","query",null,5,{"x-request-id":""}]]')).toMatch(
      /^batch call 0: call metadata x-request-id is invalid/,
    )
  })
})
