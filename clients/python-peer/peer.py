#!/usr/bin/env python3
"""A framework peer written in Python 3 (standard library only).

It serves one tRPC query, `greet` ({"name": string} -> {"message": string, "instance": string}),
and keeps its record in the etcd phone book exactly as docs/registry-protocol.md describes:
listen first, grant a lease, put the record on it, keep the lease alive every TTL/3, watch its own
key, rewrite the load figures on the same lease when they change, register again (jittered
backoff) whenever the lease is lost, and revoke the lease first on SIGTERM/SIGINT.

TypeScript services call it through `ctx.deps.greeter` with types from ./contract.ts.

Environment (the same names as the TypeScript runtime):
  ETCD_ENDPOINTS       comma list of etcd client URLs (default http://127.0.0.1:2379); the first is
                       used, the next one after a connection failure
  FRAMEWORK_NAMESPACE  key prefix (default: ./package.json name, sanitised, else "default")
  FRAMEWORK_TTL        lease TTL in seconds, 2-3600 (default 5)
  PORT                 port to listen on, 0 = any free port (default 0)
  HOST                 address to bind (default 0.0.0.0)
  ADVERTISE_URL        base URL put in the phone book, or else
  ADVERTISE_HOST       host put in the URL (default: first non-loopback IPv4, else 127.0.0.1)
  ROLE                 the role to register as (default greeter)
  FRAMEWORK_LOAD_REFRESH_MS   how often the load figures may be rewritten (default 5000)
  FRAMEWORK_DRAIN_TIMEOUT_MS  how long SIGTERM waits for in-flight requests (default 10000)
  FRAMEWORK_MAX_BODY_BYTES    larger request bodies get 413 (default 1048576)
  FRAMEWORK_SECRET / FRAMEWORK_SECRET_FILE   the namespace secret (>= 32 bytes; the file mode 600):
                       calls must carry a call token signed with it (docs/registry-protocol.md,
                       "Call tokens"); FRAMEWORK_AUTH=none turns the check off
  FRAMEWORK_SECRET_PREVIOUS / FRAMEWORK_SECRET_PREVIOUS_FILE   also accepted during a rotation

Call tokens: `python3 peer.py mint <audience> [caller]` prints a token (HS256 JWT, 60 s) signed with
the secret, for calling a framework service from Python (header x-framework-token).

Logs are JSON lines on stdout in the runtime's shape ({"level", "time", "role", "instance", "msg",
...}); lifecycle lines carry the runtime's "event" field: "listening" (url, port), then "registered
in etcd" (event "registered"; id, url, key, lease, ttl) each time the record is (re)written on a
new lease. A bad environment value prints one line to stderr and
exits 2.

HTTP surface:
  GET /trpc/greet?input=<json>              tRPC 11 HTTP protocol (no transformer)
  GET /trpc/greet,greet?batch=1&input={"0":…} tRPC batch (array answer; 200, common status or 207)
  GET /_rpc/greet?input=<json>              what the framework's own client sends for one call
  POST /_rpc/_batch                         the framework client's batch: [[path, kind, input,
                                            deadlineMs], …] -> NDJSON lines [index, status, body]
  GET /healthz (alive), GET /readyz (200 only while registered)

Trace context (W3C, docs/registry-protocol.md "Trace context"): a call that comes with a valid
`traceparent` (header, or the metadata object of a batch item) is logged as "traced call" with its
trace_id, a new span_id for the call served here and parent_span_id (the caller's span). A nested
call made while serving it would send `00-<trace_id>-<span_id>-<flags>` (child_traceparent); this
peer makes none and exports nothing. An invalid traceparent is ignored, never refused.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION = "0.1.0"
PROCEDURES = {"greet": "query"}
MAX_BATCH = 128
# JSON-RPC numbers of the tRPC codes this peer answers with.
RPC_CODES = {
    "BAD_REQUEST": -32600,
    "UNAUTHORIZED": -32001,
    "NOT_FOUND": -32004,
    "METHOD_NOT_SUPPORTED": -32005,
    "PAYLOAD_TOO_LARGE": -32013,
    "INTERNAL_SERVER_ERROR": -32603,
}
HTTP_STATUS = {
    "BAD_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "METHOD_NOT_SUPPORTED": 405,
    "PAYLOAD_TOO_LARGE": 413,
    "INTERNAL_SERVER_ERROR": 500,
}


# --------------------------------------------------------------------------- configuration


def config_error(variable, value, accepted):
    sys.stderr.write(f"{variable}={json.dumps(value)} is invalid: {accepted}\n")
    sys.exit(2)


def env_int(variable, default, low, high, accepted):
    raw = os.environ.get(variable, "")
    if raw == "":
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        config_error(variable, raw, accepted)
    return int(raw)


def parse_endpoints(raw):
    accepted = "a comma-separated list of etcd client URLs, e.g. ETCD_ENDPOINTS=http://127.0.0.1:2379"
    endpoints = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        url = urllib.parse.urlsplit(part if "://" in part else f"http://{part}")
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme not in ("http", "https") or not url.hostname or port is None \
                or url.path not in ("", "/") or url.query or url.username:
            config_error("ETCD_ENDPOINTS", raw, accepted)
        endpoints.append(f"{url.scheme}://{url.netloc}")
    if not endpoints:
        config_error("ETCD_ENDPOINTS", raw, accepted)
    return endpoints


def default_namespace():
    try:
        with open("package.json", encoding="utf-8") as file:
            name = json.load(file).get("name")
    except (OSError, ValueError, AttributeError):
        return "default"
    if not isinstance(name, str) or not name:
        return "default"
    return re.sub(r"[^A-Za-z0-9._-]", "-", name.lstrip("@"))


def default_advertise_host():
    """The address of the interface that routes outward (no packet is sent), else loopback."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
            address = probe.getsockname()[0]
            if not address.startswith("127.") and address != "0.0.0.0":
                return address
    except OSError:
        pass
    return "127.0.0.1"


ETCD_ENDPOINTS = parse_endpoints(os.environ.get("ETCD_ENDPOINTS") or "http://127.0.0.1:2379")
NAMESPACE = os.environ.get("FRAMEWORK_NAMESPACE") or default_namespace()
if not NAMESPACE_PATTERN.match(NAMESPACE):
    config_error("FRAMEWORK_NAMESPACE", NAMESPACE,
                 "letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128")
ROLE = os.environ.get("ROLE") or "greeter"
if not ROLE_PATTERN.match(ROLE):
    config_error("ROLE", ROLE, "lower-case letters, digits and '-', starting with a letter, e.g. ROLE=greeter")
TTL = env_int("FRAMEWORK_TTL", 5, 2, 3600, "whole seconds 2-3600, e.g. FRAMEWORK_TTL=5")
PORT = env_int("PORT", 0, 0, 65535, "a port number 0-65535 (0 = any free port), e.g. PORT=3000")
HOST = os.environ.get("HOST") or "0.0.0.0"
LOAD_REFRESH_S = env_int("FRAMEWORK_LOAD_REFRESH_MS", 5000, 100, 3_600_000,
                         "milliseconds 100-3600000, e.g. FRAMEWORK_LOAD_REFRESH_MS=5000") / 1000
DRAIN_TIMEOUT_S = env_int("FRAMEWORK_DRAIN_TIMEOUT_MS", 10_000, 0, 3_600_000,
                          "milliseconds 0-3600000, e.g. FRAMEWORK_DRAIN_TIMEOUT_MS=10000") / 1000
MAX_BODY_BYTES = env_int("FRAMEWORK_MAX_BODY_BYTES", 1_048_576, 1024, 1 << 30,
                         "bytes 1024-1073741824, e.g. FRAMEWORK_MAX_BODY_BYTES=1048576")
ADVERTISE_URL = (os.environ.get("ADVERTISE_URL") or "").rstrip("/")
if ADVERTISE_URL and (urllib.parse.urlsplit(ADVERTISE_URL).scheme not in ("http", "https")
                      or not urllib.parse.urlsplit(ADVERTISE_URL).hostname):
    config_error("ADVERTISE_URL", ADVERTISE_URL, "an http(s) URL, e.g. ADVERTISE_URL=http://10.0.0.5:3000")
ADVERTISE_HOST = os.environ.get("ADVERTISE_HOST") or default_advertise_host()

INSTANCE_ID = f"{ROLE}-{os.urandom(5).hex()}"
KEY = f"/{NAMESPACE}/services/{ROLE}/{INSTANCE_ID}"
CONTRACT = hashlib.sha256(
    json.dumps(PROCEDURES, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
STARTED_AT = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

_print_lock = threading.Lock()


def log(level, msg, **fields):
    line = {"level": level, "time": int(time.time() * 1000), "pid": os.getpid(),
            "role": ROLE, "instance": INSTANCE_ID, **fields, "msg": msg}
    with _print_lock:
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()


INFO, WARN, ERROR = 30, 40, 50


# --------------------------------------------------------------------------- load figures


class Load:
    """In-flight requests and CPU/RSS figures, sampled for the record (rounded as the doc says)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.inflight = 0
        self._last_wall = time.monotonic()
        self._last_cpu = time.process_time()

    def enter(self):
        with self._lock:
            self.inflight += 1

    def leave(self):
        with self._lock:
            self.inflight -= 1

    def sample(self):
        now, cpu = time.monotonic(), time.process_time()
        elapsed = now - self._last_wall
        cores = (cpu - self._last_cpu) / elapsed if elapsed > 0 else 0.0
        self._last_wall, self._last_cpu = now, cpu
        return {"inflight": max(0, self.inflight), "eventLoopDelayMs": 0,
                "cpu": round(max(0.0, cores), 2), "rss": rss_bytes()}


def rss_bytes():
    mib = 1 << 20
    try:
        with open("/proc/self/statm", encoding="ascii") as file:
            pages = int(file.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / mib) * mib
    except (OSError, ValueError, IndexError):
        try:
            import resource  # peak, not current: the best a non-Linux stdlib offers
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return round(peak * (1 if sys.platform == "darwin" else 1024) / mib) * mib
        except (ImportError, OSError):
            return 0


LOAD = Load()


def record(load):
    return {
        "v": 1, "role": ROLE, "id": INSTANCE_ID, "url": URL, "version": VERSION,
        "contract": CONTRACT, "procedures": PROCEDURES, "load": load,
        "startedAt": STARTED_AT, "host": socket.gethostname(), "pid": os.getpid(),
    }


# --------------------------------------------------------------------------- etcd JSON gateway


def b64(text):
    return base64.b64encode(text.encode()).decode()


class EtcdUnreachable(Exception):
    pass


class Etcd:
    """POSTs to etcd's /v3 JSON gateway. Raises EtcdUnreachable (no answer) or HTTPError (an
    etcd error answer). A connection failure moves on to the next endpoint for later calls."""

    def __init__(self, endpoints):
        self.endpoints = endpoints
        self._current = 0

    @property
    def endpoint(self):
        return self.endpoints[self._current % len(self.endpoints)]

    def call(self, path, body, timeout=2.0):
        endpoint = self.endpoint
        req = urllib.request.Request(endpoint + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                return json.load(res)
        except urllib.error.HTTPError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as err:
            if len(self.endpoints) > 1:
                self._current += 1
            raise EtcdUnreachable(f"{endpoint}: {err}") from err


ETCD = Etcd(ETCD_ENDPOINTS)


def describe(err):
    if isinstance(err, urllib.error.HTTPError):
        try:
            detail = json.loads(err.read().decode() or "{}").get("message") or err.reason
        except (ValueError, OSError, AttributeError):
            detail = err.reason
        return f"etcd answered {err.code}: {detail}"
    return str(err)


def put_record(load, lease_id):
    """Puts the record at KEY on the lease (etcd answers 404 if the lease is gone)."""
    value = json.dumps(record(load), separators=(",", ":"))
    return ETCD.call("/v3/kv/put", {"key": b64(KEY), "value": b64(value), "lease": lease_id})


class Registrar:
    """Keeps KEY in etcd on a lease for as long as the process runs (steps 2-6 of the doc)."""

    def __init__(self):
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.generation = 0
        self.lease_id = None  # decimal string, exactly as the gateway wrote it
        self.registered = False
        self._lost_reason = None
        self._watch_sock = None
        self._last_load = None
        self.thread = threading.Thread(target=self._run, name="registrar", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        """Stop keepalives, revoke the lease (the key goes at once); returns when done."""
        self.stopping.set()
        self._wake.set()
        self.thread.join()

    # -- the loop

    def _run(self):
        attempt = 0
        while not self.stopping.is_set():
            try:
                self._register()
            except (EtcdUnreachable, urllib.error.HTTPError, KeyError, ValueError) as err:
                # Step 5: attempt n waits a random time in [c/2, c], c = min(5000, 200 * 2^n) ms.
                ceiling = min(5.0, 0.2 * 2 ** min(attempt, 30))
                delay = ceiling / 2 + random.random() * ceiling / 2
                attempt += 1
                log(WARN, f"cannot register in etcd at {ETCD.endpoint}; still serving, retrying",
                    err=describe(err), attempt=attempt, retryInMs=round(delay * 1000))
                self.stopping.wait(delay)
                continue
            attempt = 0
            reason = self._hold()
            if reason is None:
                break
            with self._lock:
                self.registered = False
            self._close_watch()
            log(WARN, "registration lost; registering again", event="registration-lost", key=KEY,
                reason=reason)
        self._close_watch()
        self._revoke()

    def _register(self):
        """Step 2: grant a lease, put the record on it, then watch our own key."""
        with self._lock:
            self.generation += 1
            generation = self.generation
            self._lost_reason = None
            self._wake.clear()
        self._close_watch()
        grant = ETCD.call("/v3/lease/grant", {"TTL": TTL})
        lease_id = grant["ID"]
        with self._lock:
            self.lease_id = lease_id
        granted = int(grant.get("TTL", "0"))
        if granted != TTL:
            log(WARN, "etcd granted a different TTL", asked=TTL, granted=granted)
        load = LOAD.sample()
        put = put_record(load, lease_id)
        self._last_load = load
        revision = int(put["header"]["revision"])
        with self._lock:
            self.registered = True
        threading.Thread(target=self._watch_self, args=(generation, lease_id, revision + 1),
                         name="self-watch", daemon=True).start()
        log(INFO, "registered in etcd", event="registered", id=INSTANCE_ID, url=URL, key=KEY,
            lease=format(int(lease_id), "x"), ttl=granted or TTL)

    def _hold(self):
        """Steps 3-4 while registered. Returns why the registration was lost, or None to stop."""
        interval = TTL / 3
        last_ack = time.monotonic()
        next_keepalive = last_ack + interval
        next_load = last_ack + LOAD_REFRESH_S
        outage_logged = False
        while True:
            if self.stopping.is_set():
                return None
            now = time.monotonic()
            self._wake.wait(max(0.0, min(next_keepalive, next_load, last_ack + TTL + 0.01) - now))
            if self.stopping.is_set():
                return None
            with self._lock:
                if self._lost_reason:
                    return self._lost_reason
            now = time.monotonic()
            if now >= next_keepalive:
                next_keepalive = now + interval
                try:
                    reply = ETCD.call("/v3/lease/keepalive", {"ID": self.lease_id},
                                      timeout=max(0.5, min(2.0, interval)))
                    if int(reply.get("result", {}).get("TTL", "0")) <= 0:
                        return "lease expired or revoked (keepalive answered without a TTL)"
                    last_ack = time.monotonic()
                    if outage_logged:
                        log(INFO, "keepalive acknowledged again")
                    outage_logged = False
                except (EtcdUnreachable, urllib.error.HTTPError, ValueError) as err:
                    if not outage_logged:
                        log(WARN, "keepalive failed", err=describe(err), etcd=ETCD.endpoint)
                    outage_logged = True
            silent = time.monotonic() - last_ack
            if silent > TTL:
                return f"no keepalive acknowledged for {round(silent * 1000)} ms"
            if time.monotonic() >= next_load:
                next_load = time.monotonic() + LOAD_REFRESH_S
                self._refresh_load()

    def _refresh_load(self):
        """Step 4: put the whole record again on the same lease, only when the figures changed."""
        load = LOAD.sample()
        if load == self._last_load:
            return
        try:
            put_record(load, self.lease_id)
            self._last_load = load
        except (EtcdUnreachable, urllib.error.HTTPError, ValueError):
            pass  # the keepalives decide about the lease

    def _lost(self, generation, reason):
        with self._lock:
            if generation != self.generation or not self.registered:
                return
            self._lost_reason = reason
        self._wake.set()

    def _current(self, generation):
        with self._lock:
            return generation == self.generation and not self.stopping.is_set()

    # -- step 3: watch our own key, so a delete by anyone counts as lost

    def _watch_self(self, generation, lease_id, start_revision):
        revision = start_revision
        failures = 0
        while self._current(generation):
            try:
                revision = self._watch_stream(generation, lease_id, revision)
                if revision is None:
                    return
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                pass
            if not self._current(generation):
                return
            # The stream ended (etcd restarted, compaction, broken connection): is the key still
            # ours? Then watch again from just after the revision this answer was read at.
            try:
                reply = ETCD.call("/v3/kv/range", {"key": b64(KEY)})
                kvs = reply.get("kvs") or []
                if not kvs:
                    return self._lost(generation, "own key is gone")
                if kvs[0].get("lease") != lease_id:
                    return self._lost(generation, "own key is on another lease")
                revision = int(reply["header"]["revision"]) + 1
                failures = 0
            except (EtcdUnreachable, urllib.error.HTTPError, ValueError, KeyError):
                failures += 1
                self.stopping.wait(min(2.0, 0.1 * 2 ** min(failures, 5)))

    def _watch_stream(self, generation, lease_id, revision):
        """Reads one watch stream to its end; returns the next revision, or None when lost."""
        url = urllib.parse.urlsplit(ETCD.endpoint)
        conn_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = conn_class(url.hostname, url.port, timeout=2)
        try:
            conn.connect()
            conn.sock.settimeout(None)  # the stream is idle while nothing changes
            with self._lock:
                if generation != self.generation:
                    return None
                self._watch_sock = conn.sock
            body = {"create_request": {"key": b64(KEY), "start_revision": str(revision)}}
            conn.request("POST", "/v3/watch", json.dumps(body), {"Content-Type": "application/json"})
            response = conn.getresponse()
            if response.status != 200:
                raise ValueError(f"watch answered {response.status}")
            for line in response:
                message = json.loads(line).get("result") or {}
                if message.get("canceled"):
                    break  # e.g. compacted: re-check with a range and watch again
                for event in message.get("events") or []:
                    kv = event.get("kv") or {}
                    revision = int(kv.get("mod_revision", revision - 1)) + 1
                    if event.get("type") == "DELETE":
                        self._lost(generation, "own key was deleted")
                        return None
                    if kv.get("lease") != lease_id:
                        self._lost(generation, "own key was put on another lease")
                        return None
            return revision
        finally:
            with self._lock:
                if self._watch_sock is conn.sock:
                    self._watch_sock = None
            conn.close()

    def _close_watch(self):
        with self._lock:
            sock, self._watch_sock = self._watch_sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- step 6

    def _revoke(self):
        with self._lock:
            lease_id, self.lease_id = self.lease_id, None
            self.registered = False
        if not lease_id:
            return
        try:
            ETCD.call("/v3/lease/revoke", {"ID": lease_id})
            log(INFO, "lease revoked, record removed", event="deregistered", key=KEY)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                log(INFO, "lease already gone, record removed", event="deregistered", key=KEY)
            else:
                log(WARN, "could not revoke the lease; the record expires with its TTL", err=describe(err))
        except EtcdUnreachable as err:
            log(WARN, "could not revoke the lease; the record expires with its TTL", err=describe(err))


REGISTRAR = Registrar()


# --------------------------------------------------------------------------- procedures


def js_length(text):
    """String length as JavaScript (and so zod) counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "undefined"


MISSING = object()


def greet_issues(raw):
    """The issues zod reports for z.object({ name: z.string().min(1).max(100) })."""
    if not isinstance(raw, dict):
        received = "undefined" if raw is MISSING else type_name(raw)
        return [{"path": [], "message": f"Invalid input: expected object, received {received}",
                 "code": "invalid_type"}]
    name = raw.get("name", MISSING)
    if not isinstance(name, str):
        received = "undefined" if name is MISSING else type_name(name)
        return [{"path": ["name"], "message": f"Invalid input: expected string, received {received}",
                 "code": "invalid_type"}]
    if js_length(name) < 1:
        return [{"path": ["name"], "message": "Too small: expected string to have >=1 characters",
                 "code": "too_small"}]
    if js_length(name) > 100:
        return [{"path": ["name"], "message": "Too big: expected string to have <=100 characters",
                 "code": "too_big"}]
    return []


def greet(raw):
    issues = greet_issues(raw)
    if issues:
        raise RpcError("BAD_REQUEST", "invalid input: " + "; ".join(
            f"{'.'.join(map(str, i['path'])) or '(input)'}: {i['message']}" for i in issues), issues)
    return {"message": f"hello, {raw['name']}", "instance": INSTANCE_ID}


HANDLERS = {"greet": greet}


class RpcError(Exception):
    def __init__(self, code, message, issues=None):
        super().__init__(message)
        self.code, self.message, self.issues = code, message, issues


def error_body(code, message, path=None, issues=None):
    data = {"code": code, "httpStatus": HTTP_STATUS[code]}
    if path is not None:
        data["path"] = path
    if issues is not None:
        data["issues"] = issues
    return {"error": {"message": message, "code": RPC_CODES[code], "data": data}}


# --------------------------------------------------------------------------- call tokens
# docs/registry-protocol.md "Call tokens": a JWT (HS256) signed with the namespace secret, naming
# the calling role (iss, sub), the callee role (aud), the namespace (ns), iat and exp at most 60 s
# apart, and optionally the end user (principal). A few lines of hmac/hashlib/base64.

TOKEN_HEADER = "x-framework-token"
TOKEN_LIFETIME_S = 60
MAX_TOKEN_CHARS = 4096
CLOCK_TOLERANCE_S = 5
MIN_SECRET_BYTES = 32


def read_secret(name):
    inline, path = os.environ.get(name, ""), os.environ.get(name + "_FILE", "")
    if inline and path:
        config_error(name + "_FILE", path, f"set {name} or {name}_FILE, not both")
    if inline:
        secret = inline.encode()
        shown, variable = "<not shown>", name
    elif path:
        variable, shown = name + "_FILE", path
        try:
            mode = os.stat(path).st_mode
            with open(path, "rb") as file:
                secret = file.read()
        except OSError as err:
            config_error(variable, path, f"cannot read it ({err.strerror}); point it at a file this process can read")
        if mode & 0o007:
            config_error(variable, path, f"the file is readable by every user (mode {mode & 0o777:o}); chmod 600 it")
        secret = secret.rstrip(b"\n").rstrip(b"\r")
    else:
        return None
    if len(secret) < MIN_SECRET_BYTES:
        config_error(variable, shown, f"the secret is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} bytes of random data")
    return secret


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(secret, caller, audience, namespace, principal=None, lifetime_s=TOKEN_LIFETIME_S):
    now = int(time.time())
    claims = {"ns": namespace, "iss": caller, "sub": caller, "aud": audience, "iat": now,
              "exp": now + min(lifetime_s, TOKEN_LIFETIME_S)}
    if principal is not None:
        claims["principal"] = principal
    signing_input = (b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
                     + "." + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def verify_token(token, secrets, audience, namespace):
    """(claims, None) when the token is valid for `audience` in `namespace`, else (None, why)."""
    if token is None or token == "":
        return None, f"call token missing: send a call token in the {TOKEN_HEADER} header"
    if len(token) > MAX_TOKEN_CHARS:
        return None, f"call token is {len(token)} characters, over {MAX_TOKEN_CHARS}"
    parts = token.split(".")
    if len(parts) != 3:
        return None, "call token is not a valid JWT"
    try:
        header, claims = json.loads(unb64url(parts[0])), json.loads(unb64url(parts[1]))
        signature = unb64url(parts[2])
    except (ValueError, UnicodeDecodeError):
        return None, "call token is not a valid JWT"
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None, "call token must be signed with HS256"
    signing_input = (parts[0] + "." + parts[1]).encode()
    if not any(hmac.compare_digest(hmac.new(secret, signing_input, hashlib.sha256).digest(), signature)
               for secret in secrets):
        return None, "call token signature does not match the namespace secret"
    if not isinstance(claims, dict):
        return None, "call token claims are invalid"
    now = time.time()
    iat, exp, sub = claims.get("iat"), claims.get("exp"), claims.get("sub")
    if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
        return None, "call token claims are invalid (iat and exp are required)"
    if exp <= now - CLOCK_TOLERANCE_S:
        return None, "call token expired; mint a fresh one"
    if iat > now + CLOCK_TOLERANCE_S or exp - iat > TOKEN_LIFETIME_S:
        return None, f"call token lives longer than {TOKEN_LIFETIME_S} s (exp - iat); mint short-lived tokens"
    if claims.get("aud") != audience:
        return None, f"call token is for another role, not '{audience}'"
    if claims.get("ns") != namespace:
        return None, f"call token is for namespace {json.dumps(claims.get('ns'))}, not '{namespace}'"
    if not isinstance(sub, str) or not sub or claims.get("iss") != sub:
        return None, "call token must name the calling role in both iss and sub"
    return claims, None


SECRET = read_secret("FRAMEWORK_SECRET")
PREVIOUS_SECRET = read_secret("FRAMEWORK_SECRET_PREVIOUS")
AUTH = os.environ.get("FRAMEWORK_AUTH") or ("token" if SECRET else "none")
if AUTH not in ("token", "none"):
    config_error("FRAMEWORK_AUTH", AUTH, "token (needs FRAMEWORK_SECRET or FRAMEWORK_SECRET_FILE) or none")
if AUTH == "token" and not SECRET:
    config_error("FRAMEWORK_AUTH", AUTH, "token needs the namespace secret: set FRAMEWORK_SECRET_FILE (or FRAMEWORK_SECRET)")
SECRETS = [secret for secret in (SECRET, PREVIOUS_SECRET) if secret]


# --------------------------------------------------------------------------- trace context

TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
MAX_TRACEPARENT_LENGTH = 256


def parse_traceparent(value):
    """(trace_id, parent_span_id, flags) of a W3C traceparent, or None when it is invalid."""
    if not isinstance(value, str) or not 55 <= len(value) <= MAX_TRACEPARENT_LENGTH:
        return None
    head = value[:55]
    # Only a later version may carry more fields, after a dash.
    if len(value) > 55 and (value.startswith("00") or value[55] != "-"):
        return None
    match = TRACEPARENT.match(head)
    if not match:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, int(flags, 16)


class ServedSpan:
    """This peer's span of one call served with a valid traceparent: a child of the caller's."""

    def __init__(self, trace_id, parent_span_id, flags):
        self.trace_id, self.parent_span_id, self.flags = trace_id, parent_span_id, flags
        self.span_id = os.urandom(8).hex()

    def child_traceparent(self):
        """What a nested call made while serving this one would send."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.flags & 1 else '00'}"


def served_span(traceparent):
    parsed = parse_traceparent(traceparent)
    return ServedSpan(*parsed) if parsed else None


def traced_call(traceparent, path, kind, raw, method_message):
    """`call`, logged with its trace when the caller sent a valid traceparent."""
    span = served_span(traceparent)
    status, body = call(path, kind, raw, method_message)
    if span is not None:
        log(INFO, "traced call", path=path, status=status, trace_id=span.trace_id,
            span_id=span.span_id, parent_span_id=span.parent_span_id,
            child_traceparent=span.child_traceparent())
    return status, body


def call(path, kind, raw, method_message):
    """Runs one procedure call; returns (status, body) in tRPC's shapes."""
    if path not in PROCEDURES:
        return 404, error_body("NOT_FOUND", f'No procedure found on path "{path}"', path)
    if PROCEDURES[path] != kind:
        return 405, error_body("METHOD_NOT_SUPPORTED", method_message, path)
    try:
        return 200, {"result": {"data": HANDLERS[path](raw)}}
    except RpcError as err:
        return HTTP_STATUS[err.code], error_body(err.code, err.message, path, err.issues)
    except Exception as err:  # noqa: BLE001 - a procedure bug must answer 500, not drop the connection
        log(ERROR, "procedure failed", path=path, err=repr(err))
        return 500, error_body("INTERNAL_SERVER_ERROR", "Internal server error", path)


def parse_input(text):
    try:
        return json.loads(text)
    except ValueError as err:
        raise RpcError("BAD_REQUEST", f"request input is not valid JSON ({err}); "
                                      "send a JSON body or ?input=<url-encoded JSON>") from err


# --------------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the framework's client pools connections
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # caller's delayed ACK hold the body back ~40 ms on every kept-alive request.
    disable_nagle_algorithm = True
    server_version = "python-peer"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz" and method == "GET":
            return self._json(200, {"status": "alive"})
        if url.path == "/readyz" and method == "GET":
            ready = REGISTRAR.registered
            return self._json(200 if ready else 503, {"status": "ready" if ready else "not registered"})
        is_trpc, is_fast = url.path.startswith("/trpc/"), url.path.startswith("/_rpc/")
        error_path = None
        if not (is_trpc or is_fast):
            self._discard_body()
            return self._json(404, error_body("NOT_FOUND", f"no route {method} {url.path}"))
        if AUTH == "token":
            # Before the body and the route: a caller without a valid token learns nothing.
            claims, refusal = verify_token(self.headers.get(TOKEN_HEADER), SECRETS, ROLE, NAMESPACE)
            if refusal is not None:
                self._discard_body()
                return self._json(401, error_body("UNAUTHORIZED", refusal))
        LOAD.enter()
        try:
            body = self._read_body()
            if body is None:
                return None
            query = urllib.parse.parse_qs(url.query)
            path = urllib.parse.unquote(url.path.split("/", 2)[2])
            single = "," not in path and query.get("batch", ["0"])[0] not in ("1", "true")
            error_path = path if single and path != "_batch" else None
            if is_fast:
                return self._fast(method, path, query, body)
            return self._trpc(method, path, query, body)
        except RpcError as err:  # the request as a whole is malformed
            return self._json(HTTP_STATUS[err.code], error_body(err.code, err.message, error_path))
        finally:
            LOAD.leave()

    # tRPC 11's HTTP protocol at /trpc
    def _trpc(self, method, paths, query, body):
        if method not in ("GET", "POST"):
            return self._json(405, error_body("METHOD_NOT_SUPPORTED", f"Unsupported {method}-request"))
        kind = "query" if method == "GET" else "mutation"
        batch = query.get("batch", ["0"])[0] in ("1", "true")
        if method == "GET":
            raw = query.get("input", [None])[0]
            inputs = MISSING if raw is None else parse_input(raw)
        else:
            inputs = MISSING if body == b"" else parse_input(body.decode("utf-8", "replace"))
        def method_message(path):
            return f'Unsupported {method}-request to {PROCEDURES.get(path, kind)} procedure at path "{path}"'

        traceparent = self.headers.get("traceparent")
        if not batch:
            return self._json(*traced_call(traceparent, paths, kind, inputs, method_message(paths)))
        names = paths.split(",")
        if len(names) > MAX_BATCH:
            raise RpcError("PAYLOAD_TOO_LARGE", f"batch of {len(names)} calls is over {MAX_BATCH}")
        if inputs is not MISSING and not isinstance(inputs, dict):
            raise RpcError("BAD_REQUEST", '"input" needs to be an object when doing a batch call')
        outcomes = []
        for index, name in enumerate(names):
            raw_input = MISSING if inputs is MISSING else inputs.get(str(index), MISSING)
            outcomes.append(traced_call(traceparent, name, kind, raw_input, method_message(name)))
        statuses = {status for status, _ in outcomes}
        if statuses == {200}:
            status = 200
        elif len(statuses) == 1 and 200 not in statuses:
            status = statuses.pop()
        else:
            status = 207
        return self._json(status, [outcome for _, outcome in outcomes])

    # The framework client's own transport at /_rpc (single calls as tRPC, batches as NDJSON)
    def _fast(self, method, path, query, body):
        if path == "_batch" and method == "POST":
            try:
                items = json.loads(body.decode("utf-8", "replace"))
            except ValueError as err:
                raise RpcError("BAD_REQUEST", f"batch body is not valid JSON ({err})") from err
            if not isinstance(items, list) or not items or not all(
                    isinstance(item, list) and len(item) >= 2 and isinstance(item[0], str)
                    and item[1] in ("query", "mutation") for item in items):
                raise RpcError("BAD_REQUEST", "a batch body is a non-empty JSON array of "
                                              '[path, "query"|"mutation", input, deadlineMs]')
            if len(items) > MAX_BATCH:
                raise RpcError("PAYLOAD_TOO_LARGE", f"batch of {len(items)} calls is over this "
                                                    f"service's maxBatchSize {MAX_BATCH}; send smaller batches")
            lines = []
            for index, item in enumerate(items):
                name, kind = item[0], item[1]
                raw_input = item[2] if len(item) > 2 else MISSING
                # [path, kind, input, deadlineMs, metadata]: the metadata object is optional.
                metadata = item[4] if len(item) > 4 and isinstance(item[4], dict) else {}
                status, answer = traced_call(metadata.get("traceparent"), name, kind, raw_input,
                                             f"'{name}' is a {PROCEDURES.get(name)}, not a {kind}")
                lines.append(json.dumps([index, status, answer], separators=(",", ":")))
            return self._send(200, ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
        if method == "GET":
            raw = query.get("input", [None])[0]
            raw_input = MISSING if raw is None else parse_input(raw)
            return self._json(*traced_call(self.headers.get("traceparent"), path, "query", raw_input,
                                           f"'{path}' is a {PROCEDURES.get(path)}, not a query"))
        if method == "POST":
            raw_input = MISSING if body == b"" else parse_input(body.decode("utf-8", "replace"))
            return self._json(*traced_call(self.headers.get("traceparent"), path, "mutation",
                                           raw_input,
                                           f"'{path}' is a {PROCEDURES.get(path)}, not a mutation"))
        return self._json(405, error_body("METHOD_NOT_SUPPORTED",
                                          "use GET for queries and POST for mutations", path))

    # plumbing
    def _read_body(self):
        """The request body (bytes), or None after answering 413."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, size = [], 0
            while True:
                length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                size += length
                if size > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._json(413, error_body("PAYLOAD_TOO_LARGE", too_large()))
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._json(413, error_body("PAYLOAD_TOO_LARGE", too_large()))
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _discard_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        elif length > 0:
            self.close_connection = True

    def _json(self, status, body):
        self._send(status, json.dumps(body, separators=(",", ":")).encode(), "application/json")

    def _send(self, status, data, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if REGISTRAR.stopping.is_set():
            self.send_header("Connection", "close")  # shutting down: callers reconnect elsewhere
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


def too_large():
    return (f"request body is over {MAX_BODY_BYTES} bytes; send less, "
            "or raise FRAMEWORK_MAX_BODY_BYTES on the service")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    address_family = socket.AF_INET6 if ":" in HOST else socket.AF_INET


# --------------------------------------------------------------------------- main

# Step 1: listen first, so the URL in the record answers as soon as the record is visible.
try:
    SERVER = Server((HOST, PORT), Handler)
except OSError as listen_error:
    sys.stderr.write(f"cannot listen on {HOST}:{PORT}: {listen_error}\n")
    sys.exit(1)
URL_HOST = f"[{ADVERTISE_HOST}]" if ":" in ADVERTISE_HOST and not ADVERTISE_HOST.startswith("[") \
    else ADVERTISE_HOST
URL = ADVERTISE_URL or f"http://{URL_HOST}:{SERVER.server_port}"


def main():
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serving = threading.Thread(target=SERVER.serve_forever, kwargs={"poll_interval": 0.2},
                               name="http", daemon=True)
    serving.start()
    log(INFO, "starting", event="starting", namespace=NAMESPACE, etcd=ETCD_ENDPOINTS)
    log(INFO, "listening", event="listening", url=URL, port=SERVER.server_port)
    REGISTRAR.start()
    while not stop.wait(0.5):
        pass
    # Step 6: revoke first (callers see the DELETE at once), stop accepting, drain, exit 0.
    log(INFO, "shutting down: revoking lease", event="stopping")
    REGISTRAR.stop()
    SERVER.shutdown()
    SERVER.socket.close()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while LOAD.inflight > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if LOAD.inflight > 0:
        log(WARN, "drain timeout; closing remaining connections", event="drained",
            inflight=LOAD.inflight)
    else:
        log(INFO, "drained in-flight requests", event="drained")
    log(INFO, "stopped", event="stopped")


if __name__ == "__main__":
    if sys.argv[1:2] == ["mint"] and len(sys.argv) in (3, 4):
        if not SECRET:
            config_error("FRAMEWORK_SECRET", "", "mint needs the namespace secret: set FRAMEWORK_SECRET_FILE (or FRAMEWORK_SECRET)")
        print(mint_token(SECRET, sys.argv[3] if len(sys.argv) == 4 else ROLE, sys.argv[2], NAMESPACE))
        sys.exit(0)
    main()
