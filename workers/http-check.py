#!/usr/bin/python3 -I
"""nexusmon worker: loopback HTTP checker (worker protocol 1, see docs/WORKERS.md).

GETs a URL on the loopback interface (127.0.0.0/8, ::1, localhost; anything else is refused
before any connection) and checks its status (and, optionally, that the body contains a
string). Writes `response.json` (status, headers, body length and sha256) as an artifact.

Inputs: url (string, required), expect-status (integer, optional, default 200),
expect-body (string, optional).
"""
import hashlib
import ipaddress
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def fail(message, files=()):
    json.dump({"protocol": 1, "status": "failed", "message": message, "files": list(files)},
              sys.stdout)
    sys.exit(0)


def loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main():
    req = json.load(sys.stdin)
    inputs = req["inputs"]
    url = inputs["url"]
    want = inputs.get("expect-status", 200)
    needle = inputs.get("expect-body")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not loopback(parts.hostname):
        fail("%s is not an http:// URL on the loopback interface" % url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    try:
        resp = opener.open(url, timeout=5)
        status, headers, body = resp.status, dict(resp.headers), resp.read(1 << 20)
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, dict(e.headers), e.read(1 << 20)
    except (urllib.error.URLError, OSError) as e:
        fail("GET %s failed: %s" % (url, e))
    elapsed_ms = int((time.monotonic() - started) * 1000)
    record = {
        "url": url,
        "status": status,
        "headers": {k.lower(): v for k, v in sorted(headers.items())},
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    with open(req["output_dir"] + "/response.json", "wb") as f:
        f.write(data)
    files = [{"path": "response.json", "sha256": hashlib.sha256(data).hexdigest(),
              "media_type": "application/json"}]
    if status != want:
        fail("GET %s answered %d, expected %d" % (url, status, want), files)
    if needle is not None and needle.encode() not in body:
        fail("the body of %s does not contain %r" % (url, needle), files)
    json.dump({
        "protocol": 1,
        "status": "ok",
        "message": "GET %s answered %d" % (url, status),
        "outputs": {"status": status},
        "files": files,
        "metrics": {"elapsed_ms": elapsed_ms},
    }, sys.stdout)


main()
