#!/usr/bin/python3 -I
"""nexusmon worker: script executor (worker protocol 1, see docs/WORKERS.md).

Runs the POSIX shell script given as the input `script` with /bin/sh (never the plan's
argv: the script is the work), in the worker's output directory, with an empty
environment but PATH. Its stdout goes to `stdout.txt`; every file it leaves in the output
directory is listed in the result with its sha256.

Inputs: script (string, required), timeout-seconds (integer, optional, default 20).
"""
import hashlib
import json
import os
import subprocess
import sys


def files_in(out):
    listed = []
    for root, dirs, names in os.walk(out):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(root, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            listed.append({"path": os.path.relpath(p, out), "sha256": digest})
    return listed


def main():
    req = json.load(sys.stdin)
    out = req["output_dir"]
    script = req["inputs"]["script"]
    limit = req["inputs"].get("timeout-seconds", 20)
    env = {"PATH": "/usr/bin:/bin"}
    with open(os.path.join(out, "stdout.txt"), "wb") as stdout:
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", script],
                cwd=out, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                stderr=subprocess.PIPE, timeout=limit,
            )
            code, err = proc.returncode, proc.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            code, err = None, "the script ran past %d s" % limit
    sys.stderr.write(err)
    result = {
        "protocol": 1,
        "status": "ok" if code == 0 else "failed",
        "message": "the script exited %s" % code if code is not None else err,
        "outputs": {"exit_code": code},
        "files": files_in(out),
        "metrics": {"stderr_bytes": len(err)},
    }
    json.dump(result, sys.stdout)


main()
