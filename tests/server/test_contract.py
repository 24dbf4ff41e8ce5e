#!/usr/bin/python3
"""The API contract: embedded_server/openapi/openapi.json against a live `podwrangler serve`.

Starts the built binary on a free loopback port (temp SQLite database, local:// pods) and
talks HTTP to it. Every operation of the document is called with valid and invalid requests;
every status, header and body is checked against the document's schemas with a real JSON
Schema validator (Debian's python3-jsonschema, Draft 4: the dialect OpenAPI 3.0 extends):
  - every response status must be documented for its operation, its body must validate
    (response schemas have additionalProperties false, so an undeclared field fails);
  - every example of the document is validated against its schema and, for requests and
    parameters, sent to the server and accepted; the Pod and CommandResult examples are
    compared with what the server really returns;
  - invalid requests are derived from the request schemas (wrong types, null, unknown and
    missing fields, patterns, ranges) and from the query parameters (junk values, NUL,
    spaces, repeats): the document must reject each one and the server must answer 422
    naming the field;
  - the front end's own answers (404, 405 + Allow, OPTIONS, 413 plain and chunked, 414,
    431, 400, 503 + Retry-After, a request past its deadline closed unanswered) and 401.

    tests/server/test_contract.py BUILD_DIR [SPEC]
"""
import base64
import copy
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release")
SPEC_PATH = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "embedded_server", "openapi", "openapi.json")
BINARY = os.path.join(BUILD, "apps", "podwrangler", "podwrangler")
if not os.path.exists(BINARY):
    BINARY = os.path.join(BUILD, "apps", "podwrangler")
    if os.path.isdir(BINARY):
        BINARY = os.path.join(BINARY, "podwrangler")

SPEC = json.load(open(SPEC_PATH, encoding="utf-8"))
API_KEY = "contract-test-key-0123456789"
BODY_LIMIT = 64 * 1024

passed = 0
failed = 0
coverage = {}  # (METHOD, path template) -> set of statuses seen


def ok(what):
    global passed
    passed += 1
    print("ok   " + what)


def bad(what):
    global failed
    failed += 1
    print("FAIL " + what)


def check(cond, what):
    if cond:
        ok(what)
    else:
        bad(what)
    return cond


# ---------------------------------------------------------------------------------------------
# OpenAPI 3.0 schema → JSON Schema Draft 4: `nullable` becomes a "null" type, $refs are inlined
# (the document has no recursive schemas), OpenAPI-only keywords are dropped.

def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = SPEC
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def to_jsonschema(node):
    if isinstance(node, list):
        return [to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_jsonschema(deref(node))
    out = {}
    for k, v in node.items():
        if k in ("example", "examples", "discriminator", "nullable", "description", "xml",
                 "externalDocs", "deprecated", "readOnly", "writeOnly"):
            continue
        if k in ("properties",):
            out[k] = {name: to_jsonschema(s) for name, s in v.items()}
        elif k == "additionalProperties" and isinstance(v, dict):
            out[k] = to_jsonschema(v)
        else:
            out[k] = to_jsonschema(v)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


FORMATS = jsonschema.FormatChecker(formats=())
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@FORMATS.checks("date-time")
def _date_time(value):
    # The document promises RFC 3339 UTC with milliseconds.
    return not isinstance(value, str) or bool(TIME_RE.match(value))


@FORMATS.checks("byte")
def _byte(value):
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except Exception:
        return False
    return len(value) % 4 == 0


@FORMATS.checks("int64")
def _int64(value):
    return not isinstance(value, int) or -(2 ** 63) <= value < 2 ** 63


def validator(schema):
    return jsonschema.Draft4Validator(to_jsonschema(schema), format_checker=FORMATS)


def schema_errors(schema, instance):
    return sorted((e.message[:200] + " at " + "/".join(map(str, e.absolute_path))
                   for e in validator(schema).iter_errors(instance)))


def valid(schema, instance):
    return not schema_errors(schema, instance)


# ---------------------------------------------------------------------------------------------
# The document's operations.

OPS = {}  # (METHOD, template) -> operation (with "parameters" merged from the path item)
for tpl, item in SPEC["paths"].items():
    for m, op in item.items():
        if m not in ("get", "post", "put", "patch", "delete"):
            continue
        merged = dict(op)
        merged["parameters"] = [deref(p) for p in item.get("parameters", []) + op.get("parameters", [])]
        OPS[(m.upper(), tpl)] = merged


def path_methods(tpl):
    return sorted(m.upper() for m in SPEC["paths"][tpl] if m in ("get", "post", "put", "patch", "delete"))


def response_spec(method, tpl, status):
    op = OPS[(method, tpl)]
    r = op["responses"].get(str(status))
    return deref(r) if r is not None else None


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.raw = body
        self.json = None
        ctype = headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                self.json = json.loads(body.decode("utf-8"))
            except Exception:
                self.json = None


def check_result_bytes(result, what):
    """output_b64, when present, decodes to bytes whose lossy rendition is `output`."""
    if not isinstance(result, dict) or "output_b64" not in result:
        return
    raw = base64.b64decode(result["output_b64"])
    check(raw.decode("utf-8", "replace") == result["output"] or
          _lossy_per_byte(raw) == result["output"], what + ": output is the lossy rendition of output_b64")
    try:
        raw.decode("utf-8")
        bad(what + ": output_b64 is only sent for bytes that are not UTF-8")
    except UnicodeDecodeError:
        ok(what + ": output_b64 carries bytes that are not UTF-8")


def _lossy_per_byte(raw):
    out = []
    i = 0
    while i < len(raw):
        for n in (1, 2, 3, 4):
            try:
                out.append(raw[i:i + n].decode("utf-8"))
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def conform(method, tpl, reply, what, spec=None):
    """The reply's status is documented for the operation and its body validates."""
    coverage.setdefault((method, tpl), set()).add(reply.status)
    r = spec if spec is not None else response_spec(method, tpl, reply.status)
    if r is None:
        bad("%s: status %d is not documented for %s %s (body %s)" % (what, reply.status, method, tpl, reply.raw[:300]))
        return False
    good = True
    for name, h in (r.get("headers") or {}).items():
        if deref(h).get("required") and name.lower() not in reply.headers:
            bad("%s: required header %s missing" % (what, name))
            good = False
    content = r.get("content")
    if not content:
        if reply.raw:
            bad("%s: %d must have no body, got %r" % (what, reply.status, reply.raw[:100]))
            return False
        ok("%s: %d (documented, no body)" % (what, reply.status))
        return good
    ctype = reply.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in content:
        bad("%s: content type %r not documented (%s)" % (what, ctype, list(content)))
        return False
    schema = content[ctype].get("schema", {})
    if ctype == "application/json":
        if reply.json is None:
            bad("%s: body is not JSON: %r" % (what, reply.raw[:200]))
            return False
        instances = [reply.json]
    elif ctype == "application/x-ndjson":
        lines = reply.raw.decode("utf-8").split("\n")
        if lines[-1] != "":
            bad(what + ": NDJSON does not end with a newline")
            return False
        instances = [json.loads(line) for line in lines[:-1]]
    else:
        ok("%s: %d %s (documented)" % (what, reply.status, ctype))
        return good
    for inst in instances:
        errs = schema_errors(schema, inst)
        if errs:
            bad("%s: %d body does not match the document: %s\n     body: %s" %
                (what, reply.status, "; ".join(errs[:3]), json.dumps(inst)[:400]))
            return False
        for res in _results_in(inst):
            check_result_bytes(res, what)
    ok("%s: %d matches the document" % (what, reply.status))
    return good


def _results_in(inst):
    if isinstance(inst, dict):
        if "output" in inst and "status" in inst:
            yield inst
        for key in ("result",):
            if isinstance(inst.get(key), dict):
                yield inst[key]
        for key in ("results", "items"):
            for r in inst.get(key, []) if isinstance(inst.get(key), list) else []:
                yield r


# ---------------------------------------------------------------------------------------------
# HTTP


class Server:
    def __init__(self, work, name, env_extra=None, args=()):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODWRANGLER_")}
        env["XDG_DATA_HOME"] = os.path.join(work, name + "-data")
        env["PODWRANGLER_SECRET_KEY"] = "contract-test-secret-key"
        # Capsules only ever on the private daemon of this test (or nowhere: 503).
        env["PODWRANGLER_DOCKER_HOST"] = ENGINE["host"] or "unix:///nonexistent/pw-contract-docker.sock"
        if ENGINE["agent"]:
            env["PODWRANGLER_AGENT_PATH"] = ENGINE["agent"]
        env.update(env_extra or {})
        self.log = open(os.path.join(work, name + ".log"), "wb")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--database-url", "sqlite:///" + os.path.join(work, name + ".db")] + list(args),
            env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited with %s" % self.proc.returncode)
            try:
                if self.request("GET", "/health").status in (200, 503):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("serve did not answer /health")

    def request(self, method, target, body=None, headers=None, ctype="application/json", timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
            if ctype:
                h.setdefault("Content-Type", ctype)
        conn.request(method, target, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        reply = Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
        conn.close()
        return reply

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raw_exchange(port, data, wait_s=5.0, send_pause=None):
    """Sends raw bytes, returns (status, headers, body) of the reply (the connection closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait_s)
    try:
        if send_pause is None:
            s.sendall(data)
        else:
            for chunk in data:
                s.sendall(chunk)
                time.sleep(send_pause)
    except OSError:
        pass  # the server may answer and close while we still send
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
    except OSError:
        pass
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/1."):
        return Reply(0, {}, buf)
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Reply(status, headers, body)


def target(tpl, path_params=None, query=None):
    path = tpl
    for k, v in (path_params or {}).items():
        path = path.replace("{" + k + "}", urllib.parse.quote(str(v), safe=""))
    if query:
        if isinstance(query, str):
            path += "?" + query
        else:
            path += "?" + urllib.parse.urlencode(query)
    return path


def call(srv, method, tpl, path_params=None, query=None, body=None, what=None, expect=None, **kw):
    """A request to a documented operation; its reply must conform. Returns the reply."""
    what = what or "%s %s" % (method, target(tpl, path_params, query))
    reply = srv.request(method, target(tpl, path_params, query), body=body, **kw)
    conform(method, tpl, reply, what)
    if expect is not None:
        exp = expect if isinstance(expect, (set, tuple, list)) else (expect,)
        check(reply.status in exp, "%s: status %d, expected %s (%r)" %
              (what, reply.status, "/".join(map(str, exp)), reply.raw[:160]))
    return reply


def request_schema(method, tpl):
    rb = OPS[(method, tpl)].get("requestBody")
    return deref(rb)["content"]["application/json"]["schema"] if rb else None


def send_valid(srv, method, tpl, body, path_params=None, what=None, expect=(200, 201, 204)):
    """A request the document calls valid: the schema agrees, the server accepts it."""
    schema = request_schema(method, tpl)
    errs = schema_errors(schema, body)
    what = what or "%s %s %s" % (method, tpl, json.dumps(body)[:120])
    if errs:
        bad("%s: the test's valid body fails the document: %s" % (what, errs))
    return call(srv, method, tpl, path_params=path_params, body=body, what=what, expect=expect)


def send_invalid(srv, method, tpl, body, field, path_params=None, what=None, raw=None):
    """A request the document calls invalid: the schema rejects it, the server answers 422 naming `field`."""
    schema = request_schema(method, tpl)
    what = what or "%s %s %s" % (method, tpl, (raw or json.dumps(body))[:120])
    if raw is None and valid(schema, body):
        bad("%s: the document accepts this body; the server must too, or the document must say why not" % what)
    reply = call(srv, method, tpl, path_params=path_params, body=raw if raw is not None else body, what=what,
                 expect=422)
    if reply.json and field is not None:
        fields = field if isinstance(field, (set, tuple)) else (field,)
        check(reply.json.get("field") in fields, "%s: field is %r (got %r)" % (what, field, reply.json.get("field")))
    return reply


# ---------------------------------------------------------------------------------------------
# Schema-driven invalid bodies.

def wrong_values(prop):
    p = deref(prop)
    t = p.get("type")
    out = []
    if t == "string":
        out += [12345, True, ["x"], {"x": "y"}]
        if "pattern" in p or "minLength" in p:
            out.append("")
        if "pattern" in p:
            out += ["bad value\u0001!", " x", "x\u0000y"]
        if "maxLength" in p:
            out.append("a" * (p["maxLength"] + 1))
    elif t in ("integer", "number"):
        out += ["12", True, [1], {"n": 1}]
        if t == "integer":
            out.append(1.5)
        if "minimum" in p:
            out.append(p["minimum"] - 1 if t == "integer" else p["minimum"] - 0.5)
            if p.get("exclusiveMinimum"):
                out.append(p["minimum"])
        if "maximum" in p:
            out.append(p["maximum"] + 1)
    elif t == "boolean":
        out += ["true", 1, [True]]
        if "enum" in p:
            out += [v for v in (True, False) if v not in p["enum"]]
    elif t == "array":
        out += ["x", {"a": 1}, [1]]
        if p.get("minItems"):
            out.append([])
        if p.get("uniqueItems"):
            out.append(["web-1", "web-1"])
        items = deref(p.get("items", {}))
        if "pattern" in items:
            out.append(["bad alias!"])
    elif t == "object":
        out += ["x", 5, ["x"]]
        ap = p.get("additionalProperties")
        if isinstance(ap, dict) and "pattern" in deref(ap):
            out.append({"app": "not valid!"})
    out.append(None)  # null is no field's value
    return out


def mutate_body(srv, method, tpl, base, path_params=None, oneof_fields=()):
    schema = deref(request_schema(method, tpl))
    props = schema.get("properties", {})
    for name, prop in props.items():
        for v in wrong_values(prop):
            body = copy.deepcopy(base)
            body[name] = v
            # Some wrong values of an optional field are fine when its siblings are (a
            # selector "" next to aliases is still one target too many): keep only
            # those the document rejects.
            if valid(schema, body):
                continue
            expected = name
            if isinstance(v, dict) and deref(prop).get("type") == "object" and "app" in v:
                expected = name + ".app"
            if name in oneof_fields:
                expected = (name,) + tuple(oneof_fields) + (name + ".app",)
            send_invalid(srv, method, tpl, body, expected, path_params,
                         what="%s %s: %s=%s" % (method, tpl, name, json.dumps(v)[:40]))
    body = copy.deepcopy(base)
    body["zz_unknown"] = 1
    send_invalid(srv, method, tpl, body, "zz_unknown", path_params, what="%s %s: unknown field" % (method, tpl))
    for name in schema.get("required", []):
        body = copy.deepcopy(base)
        body.pop(name, None)
        send_invalid(srv, method, tpl, body, name, path_params, what="%s %s: without %s" % (method, tpl, name))
    # A key given twice is ambiguous (JSON Schema cannot see it: the raw text is sent).
    if base:
        first = next(iter(base))
        raw = json.dumps(base)[:-1] + ", " + json.dumps(first) + ": " + json.dumps(base[first]) + "}"
        send_invalid(srv, method, tpl, None, first, path_params, raw=raw,
                     what="%s %s: %s given twice" % (method, tpl, first))


# ---------------------------------------------------------------------------------------------
# Examples


def walk_examples(node, where):
    """Yields (where, schema, example) for every `example` next to a schema."""
    if isinstance(node, dict):
        if "example" in node and ("type" in node or "properties" in node or "allOf" in node or "oneOf" in node):
            yield where, node, node["example"]
        for k, v in node.items():
            if k in ("example",):
                continue
            yield from walk_examples(v, where + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_examples(v, where + "/" + str(i))


def media_examples():
    """Yields (where, schema, media type, example) for media-type examples."""
    def visit(node, where, media=None):
        if isinstance(node, dict):
            if "schema" in node and ("example" in node or "examples" in node):
                if "example" in node:
                    yield where, node["schema"], media, node["example"]
                for name, ex in (node.get("examples") or {}).items():
                    yield where + "#" + name, node["schema"], media, deref(ex)["value"]
            for k, v in node.items():
                if k in ("example", "examples", "schema"):
                    continue
                yield from visit(v, where + "/" + k, k)
    yield from visit(SPEC["paths"], "#/paths")
    yield from visit(SPEC["components"]["responses"], "#/components/responses")


def document_checks():
    # Every response schema is closed: an undeclared field fails validation.
    def closed(schema, where, seen):
        s = deref(schema)
        if id(s) in seen:
            return
        seen.add(id(s))
        if s.get("type") == "object" and "properties" in s:
            check(s.get("additionalProperties") is False, "%s: additionalProperties false" % where)
        for k in ("properties",):
            for n, sub in (s.get(k) or {}).items():
                closed(sub, where + "." + n, seen)
        for k in ("allOf", "oneOf", "anyOf"):
            for i, sub in enumerate(s.get(k) or []):
                closed(sub, "%s.%s[%d]" % (where, k, i), seen)
        if isinstance(s.get("items"), dict):
            closed(s["items"], where + "[]", seen)

    seen = set()
    for (m, tpl), op in OPS.items():
        for status, r in op["responses"].items():
            for media, c in (deref(r).get("content") or {}).items():
                if tpl == "/openapi.json" or media == "text/html":
                    continue
                closed(c["schema"], "%s %s %s" % (m, tpl, status), seen)
    for where, schema, example in walk_examples(SPEC, "#"):
        errs = schema_errors(schema, example)
        check(not errs, "example %s is valid against its schema%s" % (where, (": " + "; ".join(errs)) if errs else ""))
    for name, prm in SPEC["components"]["parameters"].items():
        if "example" in prm:
            errs = schema_errors(prm["schema"], prm["example"])
            check(not errs, "example of parameter %s is valid against its schema%s" %
                  (name, (": " + "; ".join(errs)) if errs else ""))
    for where, schema, media, example in media_examples():
        if media == "application/x-ndjson":
            lines = example.split("\n")
            check(lines[-1] == "", "example %s ends with a newline" % where)
            errs = [e for line in lines[:-1] for e in schema_errors(schema, json.loads(line))]
        else:
            errs = schema_errors(schema, example)
        check(not errs, "example %s is valid against its schema%s" % (where, (": " + "; ".join(errs)) if errs else ""))


# ---------------------------------------------------------------------------------------------
# The capsule operations need a container engine: a private dockerd (tests/fixtures/dockerd.sh)
# when this runs as root with dockerd installed; otherwise they are checked without one
# (validation, 404, 503 engine_unavailable) and left out of the success coverage.

ENGINE = {"host": None, "agent": None, "state": None}
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "dockerd.sh")
CAPSULE_IMAGE = "busybox:latest"  # the examples' image: the fixture's busybox, tagged so


def start_engine(work):
    if os.geteuid() != 0 or not shutil.which("dockerd") or os.environ.get("PW_CONTRACT_NO_DOCKER"):
        print("note: capsule operations run without an engine (not root, no dockerd, or PW_CONTRACT_NO_DOCKER)")
        return
    d = os.path.join(work, "d")
    script = ('source "$1" && pw_dockerd_start "$2" >&2 && pw_dockerd_image pw-test-busybox:1 >&2 && '
              'pw_docker tag pw-test-busybox:1 %s >&2 && '
              'printf "%%s %%s %%s %%s\\n" "$PW_DOCKER_HOST" "$PW_DOCKERD_PID" "$PW_CONTAINERD_PID" "$PW_DOCKER_CLI"'
              % CAPSULE_IMAGE)
    r = subprocess.run(["bash", "-c", script, "bash", FIXTURE, d], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        bad("the private dockerd did not start (see above)")
        return
    host, dpid, cpid, cli = r.stdout.split()
    ENGINE.update(host=host, state={"PW_DOCKERD_DIR": d, "PW_DOCKERD_PID": dpid, "PW_CONTAINERD_PID": cpid,
                                    "PW_DOCKER_CLI": cli, "PW_DOCKER_HOST": host})
    found = subprocess.run(["find", BUILD, "-name", "pw-agent", "-type", "f", "-perm", "-u+x"],
                           stdout=subprocess.PIPE, text=True).stdout.split()
    ENGINE["agent"] = found[0] if found else None


def engine_docker(*args):
    env = dict(os.environ, **ENGINE["state"])
    return subprocess.run(["bash", "-c", 'source "$1"; shift; pw_docker "$@"', "bash", FIXTURE] + list(args),
                          env=env, stdout=subprocess.PIPE, text=True).stdout


def stop_engine():
    if not ENGINE["state"]:
        return
    left = engine_docker("ps", "-aq", "--filter", "label=podwrangler.capsule").split()
    check(not left, "no capsule container left behind (%s)" % " ".join(left))
    env = dict(os.environ, **ENGINE["state"])
    subprocess.run(["bash", "-c", 'source "$1" && pw_dockerd_stop', "bash", FIXTURE], env=env)
    ENGINE["state"] = None


def is_capsule_op(key):
    return key[1].startswith("/api/v1/capsules")


# ---------------------------------------------------------------------------------------------
# The run


def main():
    if not os.path.exists(BINARY):
        print("FAIL no podwrangler binary under %s" % BUILD)
        return 1
    document_checks()
    work = tempfile.mkdtemp(prefix="pw-contract.")
    os.chmod(work, 0o700)
    servers = []
    start_engine(work)
    try:
        srv = Server(work, "main", {"PODWRANGLER_MAX_BODY_BYTES": str(BODY_LIMIT),
                                    "PODWRANGLER_REQUEST_TIMEOUT": "2"}, args=["--shutdown-grace", "1"])
        servers.append(srv)
        live(srv, work)
        front_end(srv)
        keyed = Server(work, "keyed", {"PODWRANGLER_API_KEY": API_KEY})
        servers.append(keyed)
        auth(keyed)
        keyed.stop()
        capped = Server(work, "capped", {"PODWRANGLER_MAX_CONNECTIONS_PER_CLIENT": "2"})
        servers.append(capped)
        connection_cap(capped)
        capped.stop()
        shutting_down(srv, work)
    finally:
        for s in servers:
            s.stop()
        stop_engine()
        subprocess.run(["rm", "-rf", work])

    # Coverage: every operation of the document was called, with a success.
    for key, op in OPS.items():
        seen = coverage.get(key, set())
        if is_capsule_op(key) and not ENGINE["host"]:
            print("     %s %s: %s (no engine: successes not checked)" % (key[0], key[1], ",".join(map(str, sorted(seen)))))
            continue
        check(any(200 <= s < 300 for s in seen), "operation %s %s answered a success" % key)
        print("     %s %s: %s" % (key[0], key[1], ",".join(map(str, sorted(seen)))))
    print("contract: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def live(srv, work):
    S = SPEC["components"]["schemas"]

    # /openapi.json is this document.
    r = call(srv, "GET", "/openapi.json", expect=200)
    check(r.json == SPEC, "GET /openapi.json serves the document under test")
    etag = r.headers.get("etag")
    call(srv, "GET", "/openapi.json", headers={"If-None-Match": etag}, what="GET /openapi.json (etag)", expect=304)
    r = call(srv, "GET", "/docs", expect=200)
    call(srv, "GET", "/docs", headers={"If-None-Match": r.headers.get("etag")}, what="GET /docs (etag)", expect=304)
    call(srv, "GET", "/health", expect=200)

    # ---- the examples, sent live
    pod_ex = S["Pod"]["example"]
    create = {k: pod_ex[k] for k in ("alias", "provider", "labels")}
    create["url"] = S["PodCreate"]["properties"]["url"]["example"]
    send_valid(srv, "POST", "/api/v1/pods/", create, what="Pod example registered", expect=201)
    got = call(srv, "GET", "/api/v1/pods/{alias}", {"alias": pod_ex["alias"]}, expect=200).json or {}
    for k in ("alias", "url", "provider", "labels"):
        check(got.get(k) == pod_ex[k], "Pod example: %s is what the server returns (%r)" % (k, got.get(k)))
    call(srv, "DELETE", "/api/v1/pods/{alias}", {"alias": pod_ex["alias"]}, expect=204)

    ex = S["PodCreate"]["example"]
    send_valid(srv, "POST", "/api/v1/pods/", ex, what="PodCreate example", expect=201)
    # Each property example, on the PodCreate example.
    for name, prop in S["PodCreate"]["properties"].items():
        if "example" in deref(prop):
            call(srv, "DELETE", "/api/v1/pods/{alias}", {"alias": ex["alias"]}, expect=204)
            body = dict(ex)
            body[name] = deref(prop)["example"]
            send_valid(srv, "POST", "/api/v1/pods/", body, what="PodCreate.%s example" % name, expect=201)
    send_valid(srv, "PATCH", "/api/v1/pods/{alias}", S["PodUpdate"]["example"], {"alias": ex["alias"]},
               what="PodUpdate example", expect=200)
    for name, prop in S["PodUpdate"]["properties"].items():
        if "example" in deref(prop):
            send_valid(srv, "PATCH", "/api/v1/pods/{alias}", {name: deref(prop)["example"]}, {"alias": ex["alias"]},
                       what="PodUpdate.%s example" % name, expect=200)
    composed = {name: deref(prop).get("example") for name, prop in S["PodUpdate"]["properties"].items()}
    composed = {k: v for k, v in composed.items() if v is not None}
    send_valid(srv, "PATCH", "/api/v1/pods/{alias}", composed, {"alias": ex["alias"]},
               what="PodUpdate from all its property examples", expect=200)
    call(srv, "DELETE", "/api/v1/pods/{alias}", {"alias": ex["alias"]}, expect=204)
    composed = {name: deref(prop).get("example") for name, prop in S["PodCreate"]["properties"].items()}
    send_valid(srv, "POST", "/api/v1/pods/", {k: v for k, v in composed.items() if v is not None},
               what="PodCreate from all its property examples", expect=201)
    call(srv, "DELETE", "/api/v1/pods/{alias}", {"alias": composed["alias"]}, expect=204)

    # Local pods named like the examples, so exec examples run for real.
    send_valid(srv, "POST", "/api/v1/pods/", {"alias": "web-1", "url": "local://web-1", "labels": {"app": "web", "env": "prod"}},
               expect=201)
    send_valid(srv, "POST", "/api/v1/pods/", {"alias": "web-2", "url": "local://web-2", "provider": "local",
                                              "labels": {"app": "web", "env": "staging"}}, expect=201)
    r = send_valid(srv, "POST", "/api/v1/pods/{alias}/exec", S["ExecRequest"]["example"], {"alias": "web-1"},
                   what="ExecRequest example", expect=200)
    cr_ex = S["CommandResult"]["example"]
    if r.json:
        for k in ("alias", "command", "status", "exit_code", "output", "error", "truncated"):
            check(r.json.get(k) == cr_ex[k], "CommandResult example: %s is what the server returns (%r)" % (k, r.json.get(k)))
    send_valid(srv, "POST", "/api/v1/exec", S["FanOutRequest"]["example"], what="FanOutRequest example", expect=200)
    send_valid(srv, "POST", "/api/v1/exec/stream", S["FanOutRequest"]["example"],
               what="FanOutRequest example (stream)", expect=200)
    # Parameter examples, sent as they are.
    for (m, tpl), op in OPS.items():
        for p in op["parameters"]:
            if "example" not in p:
                continue
            pp, q = {}, {}
            for other in op["parameters"]:
                if other["in"] == "path":
                    pp[other["name"]] = other.get("example", "web-1")
                elif other.get("required") and "example" in other:
                    q[other["name"]] = other["example"]  # a required query parameter (a file's path)
            (pp if p["in"] == "path" else q)[p["name"]] = p["example"]
            if m == "GET":
                r = call(srv, m, tpl, pp, q, what="parameter example %s=%s on %s %s" % (p["name"], p["example"], m, tpl))
                check(r.status not in (400, 422), "parameter example %s accepted (%d)" % (p["name"], r.status))

    # ---- pods: every operation, valid and invalid
    r = call(srv, "GET", "/api/v1/pods/", expect=200)
    check(isinstance(r.json, list) and [p["alias"] for p in r.json] == ["web-1", "web-2"], "pods listed by alias")
    r = call(srv, "GET", "/api/v1/pods/", query={"selector": "env=staging"}, expect=200)
    check([p["alias"] for p in r.json or []] == ["web-2"], "selector filters")
    call(srv, "GET", "/api/v1/pods/", query="selector=", what="empty selector", expect=200)
    r = call(srv, "POST", "/api/v1/pods/", body={"alias": "web-1", "url": "local://x"}, expect=409)
    call(srv, "GET", "/api/v1/pods/{alias}", {"alias": "nope"}, expect=404)
    call(srv, "GET", "/api/v1/pods/{alias}", {"alias": "bad alias"}, expect=404)
    call(srv, "PATCH", "/api/v1/pods/{alias}", {"alias": "nope"}, body={"labels": {}}, expect=404)
    call(srv, "DELETE", "/api/v1/pods/{alias}", {"alias": "nope"}, expect=404)
    call(srv, "POST", "/api/v1/pods/", body="{\"alias\": ", what="malformed JSON", expect=400)
    call(srv, "POST", "/api/v1/pods/", body="[1]", what="JSON array body", expect=400)
    call(srv, "POST", "/api/v1/pods/", body="alias=x", ctype="application/x-www-form-urlencoded",
         what="form body", expect=415)
    call(srv, "POST", "/api/v1/pods/", body="{}", ctype="application/jsonx", what="application/jsonx", expect=415)
    mutate_body(srv, "POST", "/api/v1/pods/", {"alias": "mut-1", "url": "local://mut-1", "labels": {"a": "b"}})
    mutate_body(srv, "PATCH", "/api/v1/pods/{alias}", {"labels": {"app": "web", "env": "prod"}}, {"alias": "web-1"})
    send_invalid(srv, "POST", "/api/v1/pods/", {"alias": "u1", "url": "local://a b"}, "url", what="a space in a URL")
    send_invalid(srv, "POST", "/api/v1/pods/", {"alias": "u1", "url": "local://a\u0000b"}, "url", what="NUL in a URL")
    call(srv, "GET", "/api/v1/pods/", expect=200)

    # ---- exec on one pod
    e = "/api/v1/pods/{alias}/exec"
    r = send_valid(srv, "POST", e, {"command": "echo hello"}, {"alias": "web-1"}, expect=200)
    check(r.json and r.json["output"] == "hello\n", "exec output")
    r = send_valid(srv, "POST", e, {"command": "exit 3"}, {"alias": "web-1"}, expect=200)
    check(r.json and r.json["status"] == "failed" and r.json["exit_code"] == 3, "non-zero exit is a result")
    r = send_valid(srv, "POST", e, {"command": "false", "check": True}, {"alias": "web-1"}, expect=422)
    check(r.json and r.json["code"] == "pod_command_failed", "check=true: pod_command_failed")
    r = send_valid(srv, "POST", e, {"command": "echo partial; sleep 5", "timeout": 0.5}, {"alias": "web-1"}, expect=504)
    check(r.json and r.json["result"]["status"] == "timeout", "timeout: 504 with the partial result")
    send_valid(srv, "POST", e, {"command": "true"}, {"alias": "no-such-pod"}, expect=404)
    send_valid(srv, "POST", "/api/v1/pods/", {"alias": "dead", "url": "wss://127.0.0.1:1/exec/1/?token=t&pod=dead"}, expect=201)
    r = send_valid(srv, "POST", e, {"command": "true", "timeout": 3}, {"alias": "dead"}, expect=502)
    check(r.json and r.json["code"] == "pod_connection_error", "unreachable pod: 502 pod_connection_error")
    call(srv, "DELETE", "/api/v1/pods/{alias}", {"alias": "dead"}, expect=204)
    # Bytes that are not UTF-8: output_b64 carries them (whatever the session layer does
    # to them, output_b64 and output must agree: checked by conform()).
    r = send_valid(srv, "POST", e, {"command": "printf 'a\\377b\\200\\n'"}, {"alias": "web-1"}, expect=200)
    check(r.json and "output_b64" in r.json, "invalid UTF-8 output comes with output_b64")
    r = send_valid(srv, "POST", e, {"command": "printf 'caf\\303\\251\\n'"}, {"alias": "web-1"}, expect=200)
    check(r.json and r.json.get("output") == "café\n" and "output_b64" not in r.json, "valid UTF-8 output passes as is")
    mutate_body(srv, "POST", e, {"command": "true", "timeout": 5, "check": False}, {"alias": "web-1"})

    # ---- fan-out and stream
    for path in ("/api/v1/exec", "/api/v1/exec/stream"):
        send_valid(srv, "POST", path, {"command": "echo fan", "aliases": ["web-2", "web-1", "ghost"]}, expect=200)
        send_valid(srv, "POST", path, {"command": "echo fan", "all": True, "parallel": 2, "timeout": 5}, expect=200)
        send_valid(srv, "POST", path, {"command": "printf '\\377'", "selector": "app=web"}, expect=200)
        mutate_body(srv, "POST", path, {"command": "true", "aliases": ["web-1"]},
                    oneof_fields=("aliases", "selector", "all"))
        send_invalid(srv, "POST", path, {"command": "true", "aliases": ["web-1"], "all": True}, ("aliases", "all", "selector"),
                     what=path + ": two targets")
    r = send_valid(srv, "POST", "/api/v1/exec", {"command": "echo s", "aliases": ["web-1", "ghost"]}, expect=200)
    if r.json:
        check(r.json["summary"] == {"total": 2, "succeeded": 1, "failed": 0, "timeout": 0, "error": 1, "interrupted": 0},
              "fan-out summary counts (interrupted declared)")
        check(r.json["results"][1]["id"] is None, "unknown alias: a result without a history id")

    # ---- history
    h = "/api/v1/commands"
    r = call(srv, "GET", h, expect=200)
    items = (r.json or {}).get("items", [])
    check(len(items) > 5, "history lists the commands")
    r = call(srv, "GET", h, query={"limit": 2}, expect=200)
    nb = (r.json or {}).get("next_before")
    check(isinstance(nb, int), "a full page has a cursor")
    call(srv, "GET", h, query={"limit": 2, "before": nb}, expect=200)
    call(srv, "GET", h, query={"alias": "web-1", "status": "succeeded", "since": "2000-01-01T00:00:00Z"}, expect=200)
    call(srv, "GET", h, query={"since": "946684800"}, expect=200)
    call(srv, "GET", h, query="since=2000-01-01+00:00", what="since with a space separator", expect=200)
    if items:
        call(srv, "GET", "/api/v1/commands/{id}", {"id": items[0]["id"]}, expect=200)
    for junk in ("abc", "5abc", " 5", "0", "-1", "99999999"):
        r = call(srv, "GET", "/api/v1/commands/{id}", {"id": junk}, what="command id %r" % junk, expect=404)
    r = srv.request("GET", "/api/v1/commands/1%00abc")
    conform("GET", "/api/v1/commands/{id}", r, "command id 1%00abc")
    check(r.status == 404, "command id 1%00abc is not command 1")
    capsules(srv)
    query_junk(srv)


def capsules(srv):
    """Every capsule operation: invalid bodies (no engine needed), then, with the private
    engine, the examples and every operation's success."""
    S = SPEC["components"]["schemas"]
    C = "/api/v1/capsules"
    CAP = "cap-0123456789abcdef"
    img = {"image": CAPSULE_IMAGE}
    mutate_body(srv, "POST", C, dict(img, owner="o1"))
    mutate_body(srv, "POST", C + "/get-or-create", dict(img, owner="o1", session="s1"))
    mutate_body(srv, "POST", C + "/run", dict(img, argv=["true"]), oneof_fields=("argv", "cmd"))
    for tpl in (C + "/{id}/exec", C + "/{id}/exec/stream"):
        mutate_body(srv, "POST", tpl, {"argv": ["true"], "timeout_sec": 5, "cwd": "/"}, {"id": CAP},
                    oneof_fields=("argv", "cmd"))
    mutate_body(srv, "POST", C + "/{id}/processes", {"argv": ["true"], "cwd": "/"}, {"id": CAP},
                oneof_fields=("argv", "cmd"))
    for m in ("PUT", "POST"):
        mutate_body(srv, m, C + "/{id}/timeout", {"timeout_sec": 60}, {"id": CAP})
    mutate_body(srv, "POST", C + "/{id}/files/mkdir", {"path": "/x", "parents": True}, {"id": CAP})
    send_invalid(srv, "POST", C, {"image": CAPSULE_IMAGE, "template": "t"}, "template", what="image and template")
    send_invalid(srv, "POST", C, {"owner": "o"}, "image", what="neither image nor template")
    send_invalid(srv, "POST", C + "/{id}/exec", {"argv": ["a"], "cmd": "b"}, ("argv", "cmd"), {"id": CAP},
                 what="argv and cmd")
    call(srv, "DELETE", C, what="DELETE /api/v1/capsules without owner", expect=422)
    for bad_id in ("nope", "cap-XYZ", "cap-0123456789ABCDEF"):
        r = call(srv, "GET", C + "/{id}", {"id": bad_id}, expect=(404, 503))
        if ENGINE["host"]:
            check(r.status == 404 and (r.json or {}).get("code") == "capsule_not_found",
                  "malformed capsule id %r: 404 capsule_not_found" % bad_id)
    if not ENGINE["host"]:
        r = call(srv, "GET", C, expect=503)
        check((r.json or {}).get("code") == "engine_unavailable", "no engine: 503 engine_unavailable")
        call(srv, "POST", C, body=S["CapsuleCreate"]["example"], what="CapsuleCreate example (no engine)", expect=503)
        return

    # ---- with the engine: the examples, then every operation
    ex = S["CapsuleCreate"]["example"]
    r = send_valid(srv, "POST", C, ex, what="CapsuleCreate example", expect=201)
    cid = (r.json or {}).get("id", CAP)
    check(r.headers.get("location") == C + "/" + cid, "create: Location names the capsule")
    check((r.json or {}).get("spec", {}).get("env") == {"MODE": "***"}, "create: env values are not returned")
    P = {"id": cid}
    call(srv, "GET", C, expect=200)
    r = call(srv, "GET", C, query="owner=alice&label=team=ml&label=team=ml&state=running&limit=5",
             what="list with every filter", expect=200)
    check([c.get("id") for c in (r.json if isinstance(r.json, list) else [])] == [cid], "list filters (label repeated)")
    call(srv, "GET", C, query="label=team=ml&label=team=other", what="one label key with two values", expect=422)
    call(srv, "GET", C + "/{id}", P, expect=200)
    call(srv, "GET", C + "/{id}/events", P, query={"limit": 10}, expect=200)
    for verb in ("pause", "resume", "stop", "start", "ping"):
        call(srv, "POST", C + "/{id}/" + verb, P, expect=200)
    call(srv, "POST", C + "/{id}/resume", P, what="resume a running capsule", expect=(200, 409))
    send_valid(srv, "PUT", C + "/{id}/timeout", S["CapsuleTimeout"]["example"], P, expect=200)
    send_valid(srv, "POST", C + "/{id}/timeout", {"timeout_sec": 0}, P, expect=200)
    r = send_valid(srv, "POST", C + "/{id}/exec", S["CapsuleExecRequest"]["example"], P,
                   what="CapsuleExecRequest example", expect=200)
    check(r.json and r.json == S["CapsuleExecResult"]["example"] | {"duration_ms": r.json["duration_ms"]},
          "CapsuleExecResult example is what the server returns (%r)" % (r.json,))
    r = send_valid(srv, "POST", C + "/{id}/exec", {"cmd": "printf 'a\\377'", "env": {"A": "1"}, "stdin": "x"}, P,
                   expect=200)
    check(r.json and r.json.get("stdout_b64") == "Yf8=", "exec: bytes that are not UTF-8 come in stdout_b64")
    r = send_valid(srv, "POST", C + "/{id}/exec/stream", {"cmd": "echo 1; sleep 1; echo 2 >&2"}, P, expect=200)
    events = [json.loads(line)["event"] for line in r.raw.decode().splitlines()]
    check(events[-1:] == ["exit"] and "stdout" in events and "stderr" in events, "exec stream events %s" % events)
    r = send_valid(srv, "POST", C + "/{id}/processes", S["CapsuleProcessRequest"]["example"], P, expect=201)
    pid = (r.json or {}).get("pid", 1)
    call(srv, "GET", C + "/{id}/processes", P, expect=200)
    call(srv, "DELETE", C + "/{id}/processes/{pid}", {"id": cid, "pid": pid}, query={"signal": 9}, expect=204)
    data = bytes(range(256)) * 4096
    r = srv.request("PUT", target(C + "/{id}/files", P, {"path": "/tmp/x/data.bin", "mode": "600"}), body=data,
                    ctype="application/octet-stream")
    conform("PUT", C + "/{id}/files", r, "upload 1 MiB")
    check(r.status == 201 and (r.json or {}).get("size") == len(data), "upload: 201 with the file's stat")
    r = call(srv, "GET", C + "/{id}/files", P, {"path": "/tmp/x/data.bin"}, expect=200)
    check(r.raw == data, "download: the bytes uploaded")
    call(srv, "GET", C + "/{id}/files/stat", P, {"path": "/tmp/x/data.bin"}, expect=200)
    call(srv, "GET", C + "/{id}/files/list", P, {"path": "/tmp", "depth": 2}, expect=200)
    send_valid(srv, "POST", C + "/{id}/files/mkdir", S["CapsuleMkdir"]["example"], P, expect=201)
    call(srv, "DELETE", C + "/{id}/files", P, {"path": "/tmp/x", "recursive": "true"}, expect=204)
    call(srv, "GET", C + "/{id}/files/stat", P, {"path": "/tmp/x"}, expect=404)
    r = send_valid(srv, "POST", C + "/get-or-create", S["CapsuleGetOrCreate"]["example"], what="get-or-create example",
                   expect=201)
    goc = (r.json or {}).get("id")
    r = send_valid(srv, "POST", C + "/get-or-create", S["CapsuleGetOrCreate"]["example"], expect=200)
    check((r.json or {}).get("id") == goc, "get-or-create: the same capsule the second time")
    r = send_valid(srv, "POST", C + "/run", S["CapsuleRunRequest"]["example"], what="CapsuleRunRequest example",
                   expect=200)
    check((r.json or {}).get("stdout") == "hello\n", "run: the command's output")
    r = call(srv, "DELETE", C + "/{id}", P, expect=200)
    check((r.json or {}).get("state") == "destroyed", "destroy: destroyed")
    call(srv, "DELETE", C + "/{id}", P, what="destroy again (idempotent)", expect=200)
    call(srv, "POST", C + "/{id}/exec", P, body={"argv": ["true"]}, what="exec on a destroyed capsule",
         expect=(404, 409))
    r = call(srv, "DELETE", C, query={"owner": "bob"}, expect=200)
    check((r.json or {}).get("destroyed") == [goc], "destroy all of an owner")


def query_junk(srv):
    """Every query parameter: junk the document rejects gets 422 naming the parameter."""
    junk_for = {
        "integer": ["5%00abc", "%205", "5%20", "+5", "5abc", "0x10", "1e3", "", "abc", "5.0"],
        "string": ["x%00y", "%20x", "x%20", "x%0a", "a%3Db%2C", "a%3Db%2C%2Cc%3Dd"],
    }
    for (m, tpl), op in OPS.items():
        qparams = [p for p in op["parameters"] if p["in"] == "query"]
        for p in qparams:
            schema = deref(p["schema"])
            t = schema.get("type", "string")
            values = list(junk_for.get(t, junk_for["string"]))
            if "minimum" in schema:
                values.append(str(schema["minimum"] - 1))
            if "maximum" in schema:
                values.append(str(schema["maximum"] + 1))
            if "enum" in schema:
                values.append("bogus")
            for raw in values:
                decoded = urllib.parse.unquote_plus(raw)
                if t == "integer":
                    doc_ok = bool(re.fullmatch(r"-?[0-9]+", decoded)) and valid(schema, int(decoded))
                else:
                    doc_ok = valid(schema, decoded)
                if doc_ok:
                    continue  # e.g. an alias "x y" is refused by its pattern, not this loop
                what = "%s %s?%s=%s" % (m, tpl, p["name"], raw)
                r = srv.request(m, tpl + "?" + p["name"] + "=" + raw)
                conform(m, tpl, r, what)
                check(r.status == 422 and (r.json or {}).get("field") == p["name"],
                      "%s: 422 naming %s (got %d %s)" % (what, p["name"], r.status, (r.json or {}).get("field")))
            # Given twice (a repeatable parameter, an array, takes several values).
            if t == "array":
                continue
            good = str(p.get("example", schema.get("minimum", "x")))
            if "enum" in schema:
                good = schema["enum"][0]
            r = srv.request(m, tpl + "?" + urllib.parse.urlencode([(p["name"], good), (p["name"], good)]))
            conform(m, tpl, r, "%s %s: %s twice" % (m, tpl, p["name"]))
            check(r.status == 422 and (r.json or {}).get("field") == p["name"],
                  "%s %s: %s given twice: 422 naming it" % (m, tpl, p["name"]))
        if qparams:
            r = srv.request(m, tpl + "?zz_unknown=1")
            conform(m, tpl, r, "%s %s?zz_unknown=1" % (m, tpl))
            check(r.status == 422 and (r.json or {}).get("field") == "zz_unknown",
                  "%s %s: an unknown query parameter is 422" % (m, tpl))


def front_end(srv):
    """The answers the HTTP front end gives itself, for any path."""
    comp = SPEC["components"]["responses"]
    # 404 for an unknown route.
    r = srv.request("GET", "/api/v2/nothing")
    conform("GET", "/docs", r, "unknown route", spec=comp["NotFound"])
    check(r.status == 404 and (r.json or {}).get("code") == "not_found", "unknown route: 404 not_found")
    # 405 + Allow on every documented path, for a method it does not have; OPTIONS → 204.
    for tpl in SPEC["paths"]:
        concrete = target(tpl, {"alias": "web-1", "id": 1})
        methods = path_methods(tpl)
        expected = set(methods) | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
        other = next(m for m in ("PUT", "DELETE", "PATCH", "POST") if m not in methods)
        r = srv.request(other, concrete, body="{}" if other in ("PUT", "PATCH", "POST") else None)
        conform(other, tpl, r, "%s %s" % (other, concrete), spec=comp["MethodNotAllowed"])
        allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
        check(r.status == 405 and (r.json or {}).get("code") == "method_not_allowed",
              "%s %s: 405 method_not_allowed" % (other, concrete))
        check(allow == expected, "%s: Allow %s is the document's methods %s" % (concrete, sorted(allow), sorted(expected)))
        r = srv.request("OPTIONS", concrete)
        allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
        check(r.status == 204 and allow == expected, "OPTIONS %s: 204 with Allow" % concrete)
    # 413, with Content-Length and chunked.
    big = json.dumps({"alias": "big", "url": "local://big", "labels": {"k": "v" * 50}}) + " " * (BODY_LIMIT + 10)
    r = srv.request("POST", "/api/v1/pods/", body=big)
    conform("POST", "/api/v1/pods/", r, "body over the limit")
    check(r.status == 413 and (r.json or {}).get("code") == "payload_too_large", "body over the limit: 413")
    chunks = [b"POST /api/v1/pods/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"]
    piece = b"x" * 16384
    for _ in range(BODY_LIMIT // len(piece) + 2):
        chunks.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    chunks.append(b"0\r\n\r\n")
    r = raw_exchange(srv.port, b"".join(chunks))
    conform("POST", "/api/v1/pods/", r, "chunked body over the limit")
    check(r.status == 413, "chunked body over the limit: 413")
    # 414, 431, 400.
    r = srv.request("GET", "/api/v1/pods/?selector=" + "a" * 9000)
    conform("GET", "/api/v1/pods/", r, "9 KB target")
    check(r.status == 414 and (r.json or {}).get("code") == "uri_too_long", "9 KB target: 414 uri_too_long")
    r = srv.request("GET", "/api/v1/pods/", headers={"X-Big": "h" * 40000})
    conform("GET", "/api/v1/pods/", r, "40 KB of headers")
    check(r.status == 431 and (r.json or {}).get("code") == "headers_too_large", "40 KB of headers: 431")
    r = raw_exchange(srv.port, b"NOT HTTP AT ALL\r\n\r\n")
    conform("GET", "/health", r, "malformed request")
    check(r.status == 400 and (r.json or {}).get("code") == "bad_request", "malformed request: 400 bad_request")
    # Headers that never end (the server runs with a 2 s request deadline): the connection
    # is closed at the deadline, without an answer (the document says so).
    t0 = time.time()
    r = raw_exchange(srv.port, [b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"X-Slow: 1\r\n"], wait_s=10, send_pause=0.3)
    took = time.time() - t0
    check(r.status == 0 and r.raw == b"" and 1.5 < took < 8,
          "headers never finished: closed without an answer at the 2 s deadline (%.1f s)" % took)


def auth(srv):
    for (m, tpl), op in OPS.items():
        concrete = target(tpl, {"alias": "web-1", "id": 1})
        body = {} if "requestBody" in op else None
        r = srv.request(m, concrete, body=body)
        conform(m, tpl, r, "no key: %s %s" % (m, concrete))
        if tpl == "/health":
            check(r.status == 200, "/health needs no key")
        else:
            check(r.status == 401 and r.headers.get("www-authenticate", "").lower().startswith("bearer"),
                  "no key: %s %s is 401 with WWW-Authenticate" % (m, concrete))
    r = srv.request("GET", "/api/v1/pods/", headers={"Authorization": "bearer " + API_KEY})
    conform("GET", "/api/v1/pods/", r, "lowercase bearer")
    check(r.status == 200, "the Bearer scheme is case-insensitive")
    r = srv.request("GET", "/api/v1/pods/", headers={"Authorization": "Bearer wrong-key-0123456789"})
    conform("GET", "/api/v1/pods/", r, "wrong key")
    check(r.status == 401, "a wrong key is 401")


def connection_cap(srv):
    held = []
    try:
        for _ in range(2):
            # A keep-alive request answered on each: the server has surely counted them.
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            held.append(s)
        # The answer comes at once, before any request is read: send nothing (a request left
        # unread in the server's buffer would turn its close into a reset that can eat the
        # answer).
        r = raw_exchange(srv.port, b"")
        conform("GET", "/api/v1/pods/", r, "over the per-client connection cap")
        check(r.status == 503 and (r.json or {}).get("code") == "too_many_connections" and r.headers.get("retry-after") == "1",
              "over the per-client connection cap: 503 too_many_connections, Retry-After: 1 (got %d %r %r)" %
              (r.status, r.headers, r.raw[:100]))
    finally:
        for s in held:
            s.close()


def shutting_down(srv, work):
    """SIGTERM while a command runs past the grace: 503 server_shutting_down with the result."""
    out = {}
    started = os.path.join(work, "shutting-down.started")  # the command marks its start

    def run():
        out["r"] = srv.request("POST", "/api/v1/pods/web-2/exec",
                               body={"command": "touch '%s'; sleep 30" % started, "timeout": 60})

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 10
    while not os.path.exists(started) and time.time() < deadline:
        time.sleep(0.01)
    srv.proc.send_signal(signal.SIGTERM)
    t.join(30)
    r = out.get("r")
    if check(r is not None, "the command's request got an answer during shutdown"):
        conform("POST", "/api/v1/pods/{alias}/exec", r, "exec cut short by SIGTERM")
        check(r.status == 503 and (r.json or {}).get("code") == "server_shutting_down" and
              (r.json or {}).get("result", {}).get("status") == "interrupted",
              "exec cut short by SIGTERM: 503 server_shutting_down with an interrupted result")


if __name__ == "__main__":
    sys.exit(main())
