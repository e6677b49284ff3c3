#!/usr/bin/python3 -I
"""A nexusmon worker (worker protocol 1, see docs/WORKERS.md).

The runner starts this file (a checked copy of it) under the task's profile, writes one
request on stdin and reads one result from stdout:

- request: {"protocol": 1, "run_id", "plan_id", "task_id", "worker", "inputs": {...},
  "output_dir": "/abs/dir", "workspace": "/abs/dir"}
- result:  {"protocol": 1, "status": "ok" | "failed", "message": "...",
  "outputs": {...}, "files": [{"path": "rel/path", "sha256": "hex"}], "metrics": {...}}

Write files only into output_dir and list every one of them in `files` with its sha256:
the runner checks each (inside output_dir, no symlink, the digest) and copies it into the
bundle as an artifact. Exit 0 whenever a result was printed; print nothing else on stdout
(diagnostics go to stderr).
"""
import hashlib
import json
import sys


def main():
    request = json.load(sys.stdin)
    greeting = request["inputs"].get("greeting", "hello")
    body = ("%s from task %s\n" % (greeting, request["task_id"])).encode("utf-8")
    with open(request["output_dir"] + "/greeting.txt", "wb") as f:
        f.write(body)
    json.dump({
        "protocol": 1,
        "status": "ok",
        "message": "wrote greeting.txt",
        "files": [{"path": "greeting.txt", "sha256": hashlib.sha256(body).hexdigest(),
                   "media_type": "text/plain"}],
        "metrics": {"bytes": len(body)},
    }, sys.stdout)


main()
