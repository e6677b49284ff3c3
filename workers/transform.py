#!/usr/bin/python3 -I
"""nexusmon worker: file transformer (worker protocol 1, see docs/WORKERS.md).

Reads one artifact another task produced (input `source`), transforms its text and writes
the result as a new artifact in the output directory.

Inputs: source (artifact, required), transform (string, required: `upper`, `lower`,
`sort-lines`, `number-lines`), output (string, optional: the file name, default
`transformed.txt`).
"""
import hashlib
import json
import sys

TRANSFORMS = {
    "upper": lambda t: t.upper(),
    "lower": lambda t: t.lower(),
    "sort-lines": lambda t: "".join(sorted(t.splitlines(keepends=True))),
    "number-lines": lambda t: "".join(
        "%d\t%s" % (i + 1, line) for i, line in enumerate(t.splitlines(keepends=True))
    ),
}


def fail(message):
    json.dump({"protocol": 1, "status": "failed", "message": message}, sys.stdout)
    sys.exit(0)


def main():
    req = json.load(sys.stdin)
    inputs = req["inputs"]
    source = inputs["source"]
    how = inputs["transform"]
    name = inputs.get("output", "transformed.txt")
    if how not in TRANSFORMS:
        fail("unknown transform %r (known: %s)" % (how, ", ".join(sorted(TRANSFORMS))))
    if "/" in name or name in ("", ".", ".."):
        fail("output %r must be a plain file name" % name)
    with open(source["path"], "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != source["digest"]["sha256"]:
        fail("the source changed since the runner digested it")
    text = TRANSFORMS[how](data.decode("utf-8"))
    body = text.encode("utf-8")
    with open(req["output_dir"] + "/" + name, "wb") as f:
        f.write(body)
    json.dump({
        "protocol": 1,
        "status": "ok",
        "message": "%s of %s/%s" % (how, source["task"], source["name"]),
        "outputs": {"lines": text.count("\n")},
        "files": [{"path": name, "sha256": hashlib.sha256(body).hexdigest(),
                   "media_type": "text/plain"}],
        "metrics": {"bytes_in": len(data), "bytes_out": len(body)},
    }, sys.stdout)


main()
