#!/usr/bin/env python3
"""Write src/serve/openapi.json, the OpenAPI 3.1 document of the cockpit's /v1/ API.

The document is kept in the repository (the server embeds it); edit this script, run
`python3 scripts/openapi.py [OUT]`, commit both. tests/integration/serve.rs checks that
the committed document is what this script writes, and validates every response of every
endpoint against it."""
import json
import os
import sys
S = lambda t: {"type": t}
NS = {"type": ["string", "null"]}
NI = {"type": ["integer", "null"]}
ARR = lambda x: {"type": "array", "items": x}
REF = lambda n: {"$ref": f"#/components/schemas/{n}"}
OBJ = lambda props, req=None, extra=False: {"type": "object", "properties": props, "required": req if req is not None else sorted(props), "additionalProperties": extra}
strs = ARR(S("string"))
state_obj = {"type": "object", "required": ["state"], "properties": {"state": S("string")}}
schemas = {
  "Error": OBJ({"error": S("string"), "message": S("string"), "status": S("integer"),
                "detail": {"type": "object", "properties": {"reason": S("string"), "detail": S("string")}}},
               ["error", "message", "status"]),
  "RunRow": OBJ({
    "id": S("string"), "run_id": S("string"), "out_root": S("string"), "bundle": S("string"),
    "plan_id": NS, "started_at": NS,
    "state": {"type": "string", "enum": ["ok", "mismatches", "failed", "interrupted", "not-valid", "checking", "unreadable"]},
    "valid": S("boolean"), "problems": strs, "bundle_status": NS, "exit_code": NI,
    "scenarios": {"type": "integer", "minimum": 0}, "mismatches": {"type": "integer", "minimum": 0},
    "flaky": {"type": "integer", "minimum": 0},
    "signature": {"type": "object", "required": ["state"], "properties": {"state": {"enum": ["unsigned", "unverified", "valid", "invalid"]}}},
    "anchor": {"type": "object", "required": ["state"], "properties": {"state": {"enum": ["not-recorded", "not-checked", "anchored", "not-anchored"]}}},
    "promotable": {"type": ["boolean", "null"]}, "reasons": strs, "index_blake3": NS,
    "artifacts": {"type": "integer", "minimum": 0}, "verified_at": NS, "checked_at": S("string"), "error": NS, "attestation_error": NS}),
  "BundleRef": OBJ({"id": S("string"), "valid": S("boolean"),
     "state": {"type": "string", "enum": ["ok", "mismatches", "failed", "interrupted", "not-valid", "checking", "unreadable"]}}),
  "RunList": OBJ({"api": {"const": "nexusmon/v1"}, "scanned_at": S("string"), "total": S("integer"),
                  "items": ARR(REF("RunRow")), "next": NS}),
  "RunDetail": OBJ({"api": {"const": "nexusmon/v1"}, "run": REF("RunRow"),
     "verdict": {"type": "object", "required": ["integrity", "problems", "signature", "anchor"],
                 "properties": {"integrity": {"enum": ["valid", "invalid"]}, "problems": strs,
                                "bundle_status": NS, "signature": state_obj, "anchor": state_obj}},
     "summary": {"type": ["object", "null"]}, "governance": {"type": ["object", "null"]},
     "promotability": {"type": ["object", "null"], "properties": {"promotable": S("boolean"), "reasons": strs}},
     "mismatches": ARR(S("object")), "preflight": ARR(S("object")), "unreadable": strs,
     "scenarios": OBJ({"total": S("integer"), "next": NS,
        "items": ARR({"type": "object", "required": ["scenario_id", "profile_id", "expected"],
                      "properties": {"scenario_id": S("string"), "profile_id": S("string"), "mismatches": strs}})}),
     "artifacts": S("object")}, ["api", "run"]),
  "MissionRow": OBJ({"path": S("string"), "plan_id": NS,
     "state": {"enum": ["ready", "awaiting-approval", "refused", "running", "invalid"]},
     "rank": NS, "composite": NI, "band": NS, "approvals_valid": S("integer"), "approvals_required": S("integer"),
     "approvals_rejected": strs, "reasons": strs, "flags": strs, "run_id": NS, "run_started_at": NS,
     "run_out_root": NS, "error": NS}),
  "MissionList": OBJ({"api": {"const": "nexusmon/v1"}, "total": S("integer"), "items": ARR(REF("MissionRow")), "next": NS}),
  "AuditEntry": OBJ({"seq": S("integer"), "ts": S("string"), "prev": S("string"), "kind": S("string"), "data": {}}),
  "Approvals": OBJ({
     "valid": ARR({"type": "object", "required": ["approver", "key_fingerprint", "record_path", "expires_at", "nonce"],
                   "properties": {"approver": S("string"), "key_fingerprint": S("string"), "record_path": S("string"),
                                  "expires_at": S("string"), "nonce": S("string"), "uses": NI, "used": NI}}),
     "rejected": ARR({"type": "object", "required": ["path", "reason", "detail"],
                      "properties": {"path": S("string"), "reason": S("string"), "detail": S("string")}})}),
  "ToSign": OBJ({"record": S("string"), "file_name": S("string"), "sign_command": S("string"), "upload_command": S("string")}),
  "MissionDetail": OBJ({"api": {"const": "nexusmon/v1"},
     "mission": OBJ({"plan_id": S("string"), "path": S("string"), "plan_text": S("string"), "plan_digest": S("string"),
                     "mission": {"type": ["object", "null"]},
                     "decision": {"type": "object", "required": ["outcome", "reasons", "flags", "required_approvals", "valid_approvals"]},
                     "approvals": REF("Approvals"), "audit": ARR(REF("AuditEntry"))}),
     "to_sign": REF("ToSign")}, ["api", "mission"]),
  "ApprovalUpload": OBJ({"record": {"type": "string", "description": "the approval record's exact bytes, as signed"},
                         "signature": {"type": "string", "description": "the armored SSH signature (`ssh-keygen -Y sign -n nexusmon-approval-v1`)"}}),
  "ApprovalAccepted": OBJ({"api": {"const": "nexusmon/v1"}, "accepted": {"const": True}, "record": S("string"),
     "signature": S("string"), "approver": S("string"), "key_fingerprint": S("string"), "expires_at": S("string"),
     "uses": NI, "audit_head": OBJ({"seq": S("integer"), "blake3": S("string")}), "runnable": S("boolean"),
     "decision": {"type": "object", "required": ["outcome", "reasons"]}}),
  "ReviewItem": OBJ({"id": {"type": "string", "pattern": "^(mission|packet):"},
     "state": {"enum": ["awaiting-approval", "flagged-for-review", "not-promotable"]},
     "title": S("string"), "path": S("string"), "why": strs, "next": strs,
     "bundles": {**ARR(REF("BundleRef")), "description": "a packet's item: the listed bundles of its run, with their state"}}),
  "ReviewList": OBJ({"api": {"const": "nexusmon/v1"}, "total": S("integer"), "items": ARR(REF("ReviewItem")), "next": NS}),
  "VaultItem": OBJ({"id": S("string"), "run": S("string"), "plan_id": S("string"), "run_state": S("string"),
     "task_id": S("string"),
     "worker": {"type": "object", "required": ["name", "declaration", "executable"]},
     "inputs_digest": {"type": "object", "required": ["blake3"]},
     "consumed": {"type": "object", "additionalProperties": {"type": "object", "required": ["blake3"]}},
     "artifact": {"type": "object", "required": ["name", "member", "size", "digest"]}}),
  "VaultList": OBJ({"api": {"const": "nexusmon/v1"}, "total": S("integer"), "items": ARR(REF("VaultItem")), "next": NS}),
  "Omen": OBJ({"fingerprint": S("string"), "level": S("string"), "count": S("integer"), "total": S("integer"),
     "plan_id": S("string"), "scenario_id": S("string"), "mismatch_kind": S("string"), "outcome": S("string"),
     "first_seen": S("string"), "last_seen": S("string"), "last_run_id": NS, "clearances": ARR(S("object")),
     "bundles": {**ARR(REF("BundleRef")), "description": "the listed bundles of its last run, with their state"}}),
  "OmenList": OBJ({"api": {"const": "nexusmon/v1"}, "total": S("integer"), "items": ARR(REF("Omen")), "next": NS}),
  "Evolution": OBJ({"api": {"const": "nexusmon/v1"},
     "state": {"type": "object", "required": ["level", "xp", "capabilities"]},
     "next_level": {"type": ["object", "null"], "required": ["level", "xp"]},
     "levels": ARR(OBJ({"level": S("string"), "xp": S("integer"), "unlocks": strs, "reached": S("boolean")})),
     "held_because": ARR({"type": "object", "required": ["capability", "level", "earned_by"],
        "properties": {"earned_by": ARR({"type": "object", "required": ["run_id", "bundles"],
           "properties": {"run_id": S("string"), "bundles": {**ARR(REF("BundleRef")), "description": "the listed bundles of the packet's run, with their state"}}})}})}),
  "Health": OBJ({"api": {"const": "nexusmon/v1"}, "status": {"enum": ["ok", "degraded"]}, "version": S("string"),
     "host": {"type": "object", "required": ["kernel_release"]},
     "out_roots": ARR(S("object")),
     "server": OBJ({"bind": S("string"), "loopback": S("boolean"), "token": S("boolean"), "started_at": S("string"),
        "uptime_s": S("integer"), "requests": S("integer"), "refused": S("integer"), "server_errors": S("integer"),
        "scans": S("integer"), "scanned_at": S("string"), "runs": S("integer"),
        "run_states": {"type": "object", "additionalProperties": S("integer")},
        "rescan_ms": S("integer"), "reverify_s": S("integer"), "state_dir": NS, "governance_error": NS,
        "max_body_bytes": S("integer"), "request_timeout_s": S("integer")})}),
}
err = {"description": "refused or failed (the `error` code says which)", "content": {"application/json": {"schema": REF("Error")}}}
def ok(schema, desc): return {"200": {"description": desc, "headers": {"ETag": {"schema": S("string")}}, "content": {"application/json": {"schema": REF(schema)}}}, "304": {"description": "not modified (If-None-Match)"}, "default": err}
limit = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
after = {"name": "after", "in": "query", "schema": S("string"), "description": "the `next` cursor of the previous page"}
runid = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}(~[0-9]+)?$"}}
mid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"}}
tosign = [{"name": "approver", "in": "query", "schema": S("string"), "description": "show the approval record this approver would sign"},
          {"name": "expires_in", "in": "query", "schema": S("string"), "description": "its validity, e.g. 24h (default)"},
          {"name": "uses", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "runs it may be used for"}]
paths = {
  "/v1/runs": {"get": {"operationId": "listRuns", "summary": "Every bundle of the out roots with its verification state, newest first", "parameters": [limit, after], "responses": ok("RunList", "one page of runs")}},
  "/v1/runs/{run_id}": {"get": {"operationId": "getRun", "summary": "One run: verdict, summary, governance, promotability, and its scenarios paged (mismatches first) with the mismatch packets of the page's scenarios", "parameters": [runid, limit, after], "responses": ok("RunDetail", "the run")}},
  "/v1/missions": {"get": {"operationId": "listMissions", "summary": "Every mission plan with the gate's state now, in plan-file order", "parameters": [limit, after], "responses": ok("MissionList", "the missions")}},
  "/v1/missions/{id}": {"get": {"operationId": "getMission", "summary": "One mission: plan, decision, approvals, audit entries; with `approver`, the record to sign", "parameters": [mid] + tosign, "responses": ok("MissionDetail", "the mission")}},
  "/v1/missions/{id}/approvals": {"post": {"operationId": "uploadApproval", "summary": "Upload a signed approval; verified as `run` verifies it, stored beside the plan with an audit entry", "security": [{"bearer": []}], "parameters": [mid],
       "requestBody": {"required": True, "content": {"application/json": {"schema": REF("ApprovalUpload")}}},
       "responses": {"201": {"description": "accepted and stored", "content": {"application/json": {"schema": REF("ApprovalAccepted")}}},
                     "422": {"description": "the approval does not count; `detail.reason` is the gate's reason name", "content": {"application/json": {"schema": REF("Error")}}},
                     "default": err}}},
  "/v1/review": {"get": {"operationId": "reviewQueue", "summary": "What awaits an operator, by item id", "parameters": [limit, after], "responses": ok("ReviewList", "the review queue")}},
  "/v1/vault/artifacts": {"get": {"operationId": "listArtifacts", "summary": "Worker artifacts of every bundle, with lineage", "parameters": [limit, after], "responses": ok("VaultList", "one page of artifacts")}},
  "/v1/omens": {"get": {"operationId": "listOmens", "summary": "Failure fingerprints and their levels, highest level first", "parameters": [limit, after], "responses": ok("OmenList", "the omens")}},
  "/v1/evolution": {"get": {"operationId": "evolution", "summary": "Levels, XP, capabilities and the packets that earned them", "responses": ok("Evolution", "the evolution state")}},
  "/v1/system/health": {"get": {"operationId": "health", "summary": "What `status --json` says, plus the server's own state", "responses": ok("Health", "health")}},
  "/v1/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {"schema": S("object")}}}}}},
}
doc = {"openapi": "3.1.0",
  "info": {"title": "nexusmon cockpit API", "version": "1",
           "description": "The JSON API of `nexusmon serve` (schema `nexusmon/v1`). Lists are in a stable order and paged with `limit` and `after` (the `next` cursor); every 200 carries an ETag (a digest) and answers If-None-Match with 304. Reads need no token on loopback; anything that changes state needs `Authorization: Bearer <token>` and `Content-Type: application/json`, and a foreign Origin is refused."},
  "servers": [{"url": "/"}],
  "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
  "paths": paths}
default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "serve", "openapi.json")
with open(sys.argv[1] if len(sys.argv) > 1 else default, "w") as f:
    f.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
