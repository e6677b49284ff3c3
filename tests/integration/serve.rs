//! The cockpit (`nexusmon serve`), started on a free loopback port against a real project:
//! runs (one with mismatches, one tampered), a mission awaiting approval, packets, omens,
//! evolution and worker artifacts. Its pages are loaded in headless Chromium (a screenshot,
//! the DOM of the review queue and of the tampered run); every API endpoint is called and
//! each response validated against the served OpenAPI document by an independent
//! validator (Python `jsonschema`); path traversal, oversized and cross-site requests are
//! refused; a new bundle appears without a restart and an edited one stops being valid;
//! SIGTERM stops it cleanly. The approval upload: a signed approval makes a refused
//! mission runnable; an edited plan, a wrong namespace and a reused single-use approval are
//! refused with the gate's reasons.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Project, bin, chromium_url, python, read_json, repo_root};

/// A `serve` process; SIGTERM (then SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(p: &Project, extra: &[&str]) -> Self {
        Self::start_at(p, "127.0.0.1:0", extra)
    }

    fn start_at(p: &Project, bind: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .current_dir(p.root())
            .args(["serve", "--bind", bind, "--rescan", "0.3"])
            .args(extra)
            .env_remove("NEXUSMON_ROOT")
            .env_remove("NEXUSMON_STATE_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("serving http://") {
                    let addr = rest.split('/').next().unwrap();
                    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
                    let _ = tx.send(port);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let port = rx
            .recv_timeout(Duration::from_mins(2))
            .unwrap_or_else(|_| panic!("serve did not start: {}", log.lock().unwrap()));
        Self {
            child,
            port,
            stderr: log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A raw HTTP/1.1 request (the target as written, nothing normalized).
    fn raw(&self, request: &[u8]) -> Reply {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_mins(1))).unwrap();
        let _ = s.write_all(request);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        Reply::parse(&buf)
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        for (k, v) in headers {
            let _ = write!(req, "{k}: {v}\r\n");
        }
        if !body.is_empty() || method == "POST" {
            let _ = write!(req, "Content-Length: {}\r\n", body.len());
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    fn stop(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                let log = self.stderr.lock().unwrap().clone();
                return (st.code().unwrap_or(-1), log);
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(buf: &[u8]) -> Self {
        let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Reply {
                status: 0,
                headers: Vec::new(),
                body: buf.to_vec(),
            };
        };
        let head = String::from_utf8_lossy(&buf[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
            "chunked replies are not expected"
        );
        Reply {
            status,
            headers,
            body: buf[split + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Responses to validate: (OpenAPI path, method, status, file holding the body).
struct Checks {
    dir: PathBuf,
    list: Vec<(String, String, u16, PathBuf)>,
}

impl Checks {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self {
            dir: dir.to_path_buf(),
            list: Vec::new(),
        }
    }

    fn add(&mut self, template: &str, method: &str, r: &Reply) {
        let f = self.dir.join(format!("{}.json", self.list.len()));
        std::fs::write(&f, &r.body).unwrap();
        self.list
            .push((template.to_string(), method.to_string(), r.status, f));
    }

    /// Validate every response against the document with Python's `jsonschema`; the paths
    /// of the document must all have been called.
    fn validate(&self, doc: &Path, must_cover: bool) {
        let cases: Vec<serde_json::Value> = self
            .list
            .iter()
            .map(|(t, m, s, f)| serde_json::json!([t, m, s, f]))
            .collect();
        let cases_file = self.dir.join("cases.json");
        std::fs::write(&cases_file, serde_json::to_vec(&cases).unwrap()).unwrap();
        let out = python(
            &["jsonschema", "referencing"],
            r#"
import json, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
doc = json.load(open(sys.argv[1]))
assert doc["openapi"].startswith("3.1"), doc["openapi"]
registry = Registry().with_resource("urn:nexusmon:openapi", Resource.from_contents(doc, default_specification=DRAFT202012))
Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})
cases = json.load(open(sys.argv[2]))
covered = set()
for template, method, status, path in cases:
    op = doc["paths"][template][method.lower()]
    resp = op["responses"].get(str(status)) or op["responses"]["default"]
    content = resp.get("content", {}).get("application/json")
    assert content is not None, (template, status, "no JSON content documented")
    schema = dict(content["schema"])
    if "$ref" in schema:
        schema = {"$ref": "urn:nexusmon:openapi" + schema["$ref"]}
    body = json.load(open(path))
    errors = sorted(Draft202012Validator(schema, registry=registry).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        print("INVALID", template, status, [ (list(e.path), e.message[:300]) for e in errors[:5] ])
        sys.exit(1)
    covered.add((template, method.lower()))
if sys.argv[3] == "cover":
    missing = [(p, m) for p, ops in doc["paths"].items() for m in ops if (p, m) not in covered]
    if missing:
        print("NOT CALLED", missing)
        sys.exit(1)
print("ok", len(cases))
"#,
        )
        .arg(doc)
        .arg(&cases_file)
        .arg(if must_cover { "cover" } else { "some" })
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "OpenAPI validation failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn write_plan(p: &Project, id: &str, from: &str, edit: impl Fn(&mut serde_json::Value)) {
    let mut v = read_json(&p.path(&format!("plans/{from}/plan.json")));
    v["plan_id"] = serde_json::json!(id);
    edit(&mut v);
    let dir = p.path(&format!("plans/{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("plan.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn latest_id(p: &Project) -> String {
    p.latest()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn token(p: &Project) -> (PathBuf, String) {
    let f = p.path("token");
    let t = "t0k3n-for-the-cockpit-test-0123456789".to_string();
    std::fs::write(&f, format!("{t}\n")).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (f, t)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[allow(clippy::many_single_char_names, clippy::similar_names)]
fn the_cockpit_serves_pages_and_an_api_that_match_the_evidence_and_refuses_bad_requests() {
    let p = Project::shipped().init();
    // Runs: one passing (anchored), one with a violation (a mismatch, an omen), one
    // tampered after its seal; a rank-C mission (flagged for review); the worker mission
    // (artifacts with lineage) once its capability is earned.
    write_plan(&p, "mismatch", "quickstart", |v| {
        v["scenarios"]["system-ro"]["read-os-release"] = serde_json::json!("deny");
    });
    write_plan(&p, "deploy-a", "mission-demo", |v| {
        v["mission"]["rank"] = serde_json::json!("A");
    });
    p.run("quickstart", &[]).code(0);
    let ok_id = latest_id(&p);
    // Run on the `direct` channel: its packet is not promotable (not-clean-channel).
    p.nx(&[
        "run",
        "--plan",
        "plans/mismatch/plan.json",
        "--out",
        "out",
        "--channel",
        "direct",
    ])
    .code(1);
    let mm_id = latest_id(&p);
    p.emit(&p.latest(), "promotion/mismatch.json", &[]).code(0);
    p.run("mission-demo", &[]).code(0);
    let demo_id = latest_id(&p);
    p.emit(&p.latest(), "promotion/demo.json", &[]).code(0);
    p.nx(&["evolve", "--packets", "promotion/demo.json"])
        .code(0);
    p.run("worker-demo", &[]).code(0);
    let worker_id = latest_id(&p);
    p.run("quickstart", &[]).code(0);
    let bad_id = latest_id(&p);
    let f = p.latest().join("runtime_events.normalized.jsonl");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&f, text.replacen("\"deny\"", "\"allow\"", 1)).unwrap();
    p.run("deploy-a", &[]).code(4);

    let (tok_file, tok) = token(&p);
    let srv = Server::start(
        &p,
        &[
            "--out",
            "out",
            "--packets",
            "promotion",
            "--token-file",
            tok_file.to_str().unwrap(),
        ],
    );
    let mut checks = Checks::new(&p.path("responses"));

    // --- the API, every endpoint, validated against the served document -----------------
    let doc = srv.get("/v1/openapi.json");
    assert_eq!(doc.status, 200);
    let doc_file = p.path("openapi.json");
    std::fs::write(&doc_file, &doc.body).unwrap();
    assert!(
        doc.body == std::fs::read(repo_root().join("src/serve/openapi.json")).unwrap(),
        "the served document is not src/serve/openapi.json"
    );
    checks.add("/v1/openapi.json", "GET", &doc);
    // The committed document is what its generator writes.
    let generated = p.path("generated-openapi.json");
    let out = Command::new(crate::util::python_path())
        .arg(repo_root().join("scripts/openapi.py"))
        .arg(&generated)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&generated).unwrap(),
        doc.body,
        "src/serve/openapi.json is stale: run `python3 scripts/openapi.py`"
    );

    let runs = srv.get("/v1/runs");
    assert_eq!(runs.status, 200, "{}", runs.text());
    checks.add("/v1/runs", "GET", &runs);
    let v = runs.json();
    let by_id = |id: &str| -> serde_json::Value {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("run {id} not listed: {v:#}"))
    };
    assert_eq!(v["total"], 5);
    let ok = by_id(&ok_id);
    assert_eq!(ok["state"], "ok");
    assert_eq!(ok["valid"], true);
    assert_eq!(ok["anchor"]["state"], "anchored");
    assert_eq!(ok["promotable"], true);
    let mm = by_id(&mm_id);
    assert_eq!(mm["state"], "mismatches");
    assert_eq!(mm["valid"], true);
    assert_eq!(mm["mismatches"], 1);
    assert_eq!(mm["promotable"], false);
    assert!(
        mm["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "not-clean-channel"),
        "{mm:#}"
    );
    let bad = by_id(&bad_id);
    assert_eq!(bad["state"], "not-valid", "{bad:#}");
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["promotable"], false);
    assert!(
        bad["problems"].as_array().unwrap().iter().any(|x| x
            .as_str()
            .unwrap()
            .contains("runtime_events.normalized.jsonl")),
        "{bad:#}"
    );
    assert!(by_id(&worker_id)["artifacts"].as_u64().unwrap() >= 3);
    // Stable order (newest first) and pages that add up to it.
    let ids: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    let mut paged = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            None => "/v1/runs?limit=2".to_string(),
            Some(n) => format!("/v1/runs?limit=2&after={n}"),
        };
        let r = srv.get(&url);
        checks.add("/v1/runs", "GET", &r);
        let j = r.json();
        paged.extend(
            j["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_str().unwrap().to_string()),
        );
        match j["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, ids);
    assert_eq!(srv.get("/v1/runs?limit=0").status, 400);
    // ETags: the same digest, 304 when it matches.
    let etag = runs.header("etag").unwrap().to_string();
    let again = srv.request("GET", "/v1/runs", &[("If-None-Match", &etag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    for id in [&ok_id, &mm_id, &bad_id, &demo_id, &worker_id] {
        let r = srv.get(&format!("/v1/runs/{id}?limit=3"));
        assert_eq!(r.status, 200, "{}", r.text());
        checks.add("/v1/runs/{run_id}", "GET", &r);
    }
    let d = srv.get(&format!("/v1/runs/{bad_id}")).json();
    assert_eq!(d["verdict"]["integrity"], "invalid");
    let d = srv.get(&format!("/v1/runs/{mm_id}?limit=1")).json();
    assert_eq!(
        d["scenarios"]["items"][0]["scenario_id"], "system-ro:read-os-release",
        "mismatches come first"
    );
    assert_eq!(srv.get("/v1/runs/no-such-run").status, 404);

    let missions = srv.get("/v1/missions");
    assert_eq!(missions.status, 200, "{}", missions.text());
    checks.add("/v1/missions", "GET", &missions);
    let m = missions.json();
    let deploy = m["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["plan_id"] == "deploy-a")
        .unwrap();
    assert_eq!(deploy["state"], "awaiting-approval");
    let r = srv.get("/v1/missions/deploy-a?approver=alice&uses=1");
    assert_eq!(r.status, 200, "{}", r.text());
    checks.add("/v1/missions/{id}", "GET", &r);
    let j = r.json();
    assert_eq!(j["mission"]["decision"]["outcome"], "refuse");
    assert!(
        j["mission"]["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "run-refused"),
        "{j:#}"
    );
    let record: serde_json::Value =
        serde_json::from_str(j["to_sign"]["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["approver"], "alice");
    assert_eq!(record["uses"], 1);
    assert!(
        j["to_sign"]["sign_command"]
            .as_str()
            .unwrap()
            .starts_with("ssh-keygen -Y sign -f <key> -n nexusmon-approval-v1 deploy-a.alice.json")
    );

    let review = srv.get("/v1/review");
    assert_eq!(review.status, 200, "{}", review.text());
    checks.add("/v1/review", "GET", &review);
    let items = review.json()["items"].as_array().unwrap().clone();
    let state_of = |id: &str| {
        items
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["state"].as_str().unwrap().to_string())
    };
    assert_eq!(
        state_of("mission:deploy-a").as_deref(),
        Some("awaiting-approval")
    );
    assert_eq!(
        state_of(&format!("packet:{mm_id}")).as_deref(),
        Some("not-promotable")
    );
    assert_eq!(
        state_of(&format!("packet:{demo_id}")).as_deref(),
        Some("flagged-for-review")
    );
    // A packet's item names the bundle of its run, with its state.
    let demo_item = items
        .iter()
        .find(|i| i["id"] == format!("packet:{demo_id}").as_str())
        .unwrap();
    assert_eq!(
        demo_item["bundles"][0]["id"],
        demo_id.as_str(),
        "{demo_item:#}"
    );
    assert_eq!(demo_item["bundles"][0]["valid"], true, "{demo_item:#}");

    let vault = srv.get("/v1/vault/artifacts?limit=2");
    assert_eq!(vault.status, 200, "{}", vault.text());
    checks.add("/v1/vault/artifacts", "GET", &vault);
    let all = srv.get("/v1/vault/artifacts");
    checks.add("/v1/vault/artifacts", "GET", &all);
    let arts = all.json()["items"].as_array().unwrap().clone();
    let shout = arts
        .iter()
        .find(|a| a["task_id"] == "shout")
        .expect("the transformer's artifact");
    assert!(
        shout["consumed"]["generate/words.txt"]["blake3"].is_string(),
        "lineage: {shout:#}"
    );
    // The artifact is served from the verified bundle, byte for byte.
    let member = shout["artifact"]["member"].as_str().unwrap();
    let got = srv.get(&format!("/runs/{worker_id}/files/{member}"));
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body,
        std::fs::read(p.path(&format!("out/{worker_id}/{member}"))).unwrap()
    );

    for (path, template) in [
        ("/v1/omens", "/v1/omens"),
        ("/v1/evolution", "/v1/evolution"),
        ("/v1/system/health", "/v1/system/health"),
    ] {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        checks.add(template, "GET", &r);
    }
    let omens = srv.get("/v1/omens").json();
    assert!(
        omens["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["scenario_id"] == "system-ro:read-os-release"),
        "{omens:#}"
    );
    let evo = srv.get("/v1/evolution").json();
    assert_eq!(evo["state"]["level"], "AWAKENING", "{evo:#}");
    let health = srv.get("/v1/system/health").json();
    assert_eq!(health["server"]["loopback"], true);
    assert_eq!(health["server"]["run_states"]["not-valid"], 1);

    // Refusals are documented responses too.
    let r = srv.request(
        "POST",
        "/v1/missions/deploy-a/approvals",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 401);
    checks.add("/v1/missions/{id}/approvals", "POST", &r);
    let auth = format!("Bearer {tok}");
    let r = srv.request(
        "POST",
        "/v1/missions/deploy-a/approvals",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"record": "{}", "signature": "x"}"#,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    checks.add("/v1/missions/{id}/approvals", "POST", &r);
    checks.validate(&doc_file, true);

    // --- pages in headless Chromium --------------------------------------------------------
    let dom = chromium_url(&srv.url("/review"), None);
    assert!(
        dom.contains("data-id=\"mission:deploy-a\" data-state=\"awaiting-approval\""),
        "{dom}"
    );
    assert!(dom.contains(&format!(
        "data-id=\"packet:{mm_id}\" data-state=\"not-promotable\""
    )));
    assert!(
        dom.contains("nexusmon approve --plan"),
        "the exact command is shown"
    );
    let dom = chromium_url(&srv.url("/"), None);
    assert!(
        dom.contains(&format!("data-run=\"{bad_id}\" data-state=\"not-valid\"")),
        "{dom}"
    );
    assert!(dom.contains("⚠ NOT VALID"));
    assert!(dom.contains(&format!("data-run=\"{ok_id}\" data-state=\"ok\"")));
    let dom = chromium_url(&srv.url(&format!("/runs/{bad_id}")), None);
    assert!(dom.contains("data-state=\"not-valid\""), "{dom}");
    assert!(dom.contains("bundle NOT VALID"));
    assert!(
        dom.contains("nexusmon cockpit"),
        "the cockpit's bar is on the report page"
    );
    let dom = chromium_url(&srv.url(&format!("/runs/{mm_id}")), None);
    assert!(dom.contains("data-state=\"mismatches\""), "{dom}");
    assert!(dom.contains("system-ro:read-os-release"));
    for page in [
        "/missions",
        "/missions/deploy-a?approver=alice",
        "/vault",
        "/omens",
        "/evolution",
        "/audit",
    ] {
        let dom = chromium_url(&srv.url(page), None);
        assert!(dom.contains("nexusmon cockpit"), "{page}: {dom}");
        // "not valid" is said of evidence only.
        assert!(!dom.contains("data-state=\"not-valid\""), "{page}");
    }
    let png = p.path("cockpit.png");
    chromium_url(&srv.url("/"), Some(&png));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000);
    if let Ok(dir) = std::env::var("NEXUSMON_SCREENSHOTS") {
        std::fs::copy(&png, Path::new(&dir).join("cockpit-runs.png")).unwrap();
        chromium_url(
            &srv.url(&format!("/runs/{mm_id}")),
            Some(&Path::new(&dir).join("cockpit-run.png")),
        );
        chromium_url(
            &srv.url("/review"),
            Some(&Path::new(&dir).join("cockpit-review.png")),
        );
    }
    // Log links of the report page resolve through the cockpit to the bundle's bytes; a
    // tampered bundle's files are not served.
    let (run_with_logs, link) = [&mm_id, &demo_id, &worker_id]
        .iter()
        .find_map(|id| {
            let page = srv.get(&format!("/runs/{id}")).text();
            page.split("href=\"")
                .skip(1)
                .map(|s| s[..s.find('"').unwrap()].to_string())
                .find(|h| h.contains("/files/"))
                .map(|l| ((*id).clone(), l))
        })
        .expect("a log link on some run page");
    let r = srv.get(&link);
    assert_eq!(r.status, 200, "{link}");
    let rel = percent_decode(link.split("/files/").nth(1).unwrap());
    assert_eq!(
        r.body,
        std::fs::read(p.path(&format!("out/{run_with_logs}/{rel}"))).unwrap()
    );
    assert_eq!(
        srv.get(&format!("/runs/{bad_id}/files/summary.json"))
            .status,
        409
    );

    // --- hostile requests ----------------------------------------------------------------
    // Generated traversal attempts: never a 200 with a file outside a bundle's index.
    let parts = [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".",
        "%2f",
        "/",
        "%5c",
        "\\",
        "etc",
        "passwd",
        "%00",
        "logs",
        "..%2f",
        "%252e%252e",
        "LATEST",
        "~1",
    ];
    let mut seed: u64 = 19;
    let secret = std::fs::read(p.path("token")).unwrap();
    for _ in 0..120 {
        let mut tail = String::new();
        for _ in 0..(2 + seed % 6) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            tail.push_str(parts[(seed >> 33) as usize % parts.len()]);
            if (seed >> 20).is_multiple_of(2) {
                tail.push('/');
            }
        }
        for target in [
            format!("/runs/{mm_id}/files/{tail}"),
            format!("/runs/{tail}"),
            format!("/missions/{tail}"),
            format!("/v1/runs/{tail}"),
            format!("/v1/missions/{tail}"),
        ] {
            let r = srv.raw(
                format!(
                    "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    srv.port
                )
                .as_bytes(),
            );
            assert!(
                matches!(r.status, 400 | 404),
                "{target}: {} {}",
                r.status,
                r.text()
            );
            assert!(!r.text().contains("root:x:0:0"), "{target}");
            assert!(
                !r.body
                    .windows(secret.len() - 1)
                    .any(|w| w == &secret[..secret.len() - 1])
            );
        }
    }
    for target in [
        format!("/runs/{mm_id}/files/../../../../etc/passwd"),
        format!("/runs/{mm_id}/files/..%2f..%2f..%2fetc%2fpasswd"),
        "/runs/..%2F..%2Fetc/files/passwd".to_string(),
        "/missions/..%2F..%2Fplans".to_string(),
    ] {
        let r = srv.raw(
            format!(
                "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                srv.port
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 400, "{target}: {}", r.text());
    }
    // Oversized: a body over the limit, a head over the limit.
    let big = vec![b'x'; 1 << 20];
    let r = srv.request(
        "POST",
        "/v1/missions/deploy-a/approvals",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let long = "a".repeat(64 * 1024);
    let r = srv.request("GET", &format!("/runs/{long}"), &[], b"");
    assert!(matches!(r.status, 431 | 414 | 400 | 0), "{}", r.status);
    let r = srv.request("GET", "/", &[("X-Filler", &long)], b"");
    assert!(matches!(r.status, 431 | 400 | 0), "{}", r.status);
    // Cross-site and foreign hosts.
    let r = srv.request(
        "POST",
        "/v1/missions/deploy-a/approvals",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Origin", "http://evil.example"),
        ],
        br#"{"record": "x", "signature": "y"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = srv.request(
        "POST",
        "/v1/missions/deploy-a/approvals",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"record=x&signature=y",
    );
    assert_eq!(r.status, 415);
    let r = srv.request(
        "POST",
        "/v1/missions/deploy-a/approvals",
        &[
            (
                "Authorization",
                "Bearer t0k3n-for-the-cockpit-test-0123456788",
            ),
            ("Content-Type", "application/json"),
        ],
        br#"{"record": "x", "signature": "y"}"#,
    );
    assert_eq!(r.status, 401);
    let r =
        srv.raw(b"GET /v1/runs HTTP/1.1\r\nHost: rebind.example:80\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 421);
    assert!(!r.text().contains(&ok_id));
    // Every response carries the security headers.
    let r = srv.get("/");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );

    // --- corrupt and missing bundles: shown as such, the server stays up ----------------------
    std::fs::create_dir_all(p.path("out/29990101T000000.000Z-00000001")).unwrap();
    let garbage = p.path("out/29990101T000000.000Z-00000002");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(
        garbage.join("artifact_index.json"),
        b"{\"not\": \"an index\"",
    )
    .unwrap();
    std::fs::write(garbage.join("run_status.json"), vec![0xffu8; 4096]).unwrap();
    for id in [
        "29990101T000000.000Z-00000001",
        "29990101T000000.000Z-00000002",
    ] {
        wait_for("a broken bundle to be listed as such", || {
            let v = srv.get("/v1/runs").json();
            v["items"].as_array().unwrap().iter().any(|r| {
                r["id"] == id
                    && r["valid"] == false
                    && matches!(r["state"].as_str(), Some("not-valid" | "unreadable"))
            })
        });
        let page = srv.get(&format!("/runs/{id}"));
        assert_eq!(page.status, 200);
        assert!(page.text().contains("NOT VALID"), "{}", page.text());
        let r = srv.get(&format!("/v1/runs/{id}"));
        assert_eq!(r.status, 200);
        checks.add("/v1/runs/{run_id}", "GET", &r);
        assert_eq!(
            srv.get(&format!("/runs/{id}/files/summary.json")).status,
            409
        );
    }
    checks.validate(&doc_file, false);
    assert_eq!(srv.get("/v1/system/health").status, 200);

    // --- new and changed bundles without a restart ------------------------------------------
    let verified_at = |id: &str| -> String {
        let v = srv.get("/v1/runs").json();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["verified_at"].as_str().unwrap_or("").to_string())
            .unwrap()
    };
    let before: Vec<String> = [&ok_id, &mm_id, &demo_id]
        .iter()
        .map(|id| verified_at(id))
        .collect();
    p.run("quickstart", &[]).code(0);
    let new_id = latest_id(&p);
    wait_for("the new run to be listed as ok", || {
        let v = srv.get("/v1/runs").json();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == new_id.as_str() && r["state"] == "ok")
    });
    // A new run (and its audit entries) is no reason to hash the others again: two more
    // scans (the second starts after the first has finished) leave their verification alone.
    let scans = || {
        srv.get("/v1/system/health").json()["server"]["scans"]
            .as_u64()
            .unwrap()
    };
    let s0 = scans();
    wait_for("two more scans", || scans() >= s0 + 2);
    let after: Vec<String> = [&ok_id, &mm_id, &demo_id]
        .iter()
        .map(|id| verified_at(id))
        .collect();
    assert_eq!(before, after, "unchanged bundles were verified again");
    // A member edited in place (its index untouched): the metadata changes, the bundle is
    // verified again and shown as not valid; so are the mismatch run (its omen) and the
    // mission run (its packet in the review queue, the capability it earned).
    for id in [&ok_id, &mm_id, &demo_id] {
        let f = p.path(&format!("out/{id}/summary.md"));
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let mut text = std::fs::read(&f).unwrap();
        text[0] ^= 0x20;
        std::fs::write(&f, &text).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    }
    for id in [&ok_id, &mm_id, &demo_id] {
        wait_for("the edited run to be shown as not valid", || {
            let v = srv.get("/v1/runs").json();
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id.as_str() && r["state"] == "not-valid")
        });
    }
    // ... wherever its run is named: review queue, omens, evolution (pages and API).
    let not_valid = |b: &serde_json::Value, id: &str| {
        b.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["id"] == id && x["state"] == "not-valid" && x["valid"] == false)
        })
    };
    let review = srv.get("/v1/review");
    checks.add("/v1/review", "GET", &review);
    let item = review.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == format!("packet:{demo_id}").as_str())
        .cloned()
        .unwrap();
    assert!(not_valid(&item["bundles"], &demo_id), "{item:#}");
    let omens = srv.get("/v1/omens");
    checks.add("/v1/omens", "GET", &omens);
    let omen = omens.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["last_run_id"] == mm_id.as_str())
        .cloned()
        .unwrap();
    assert!(not_valid(&omen["bundles"], &mm_id), "{omen:#}");
    let evo = srv.get("/v1/evolution");
    checks.add("/v1/evolution", "GET", &evo);
    let earned: Vec<serde_json::Value> = evo.json()["held_because"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["earned_by"].as_array().unwrap().clone())
        .collect();
    assert!(
        earned
            .iter()
            .any(|e| e["run_id"] == demo_id.as_str() && not_valid(&e["bundles"], &demo_id)),
        "{earned:#?}"
    );
    checks.validate(&doc_file, false);
    for (page, id) in [
        ("/review", &demo_id),
        ("/omens", &mm_id),
        ("/evolution", &demo_id),
    ] {
        let html = srv.get(page).text();
        let marked = format!("<span data-bundle=\"not-valid\"><a href=\"/runs/{id}\">");
        let at = html
            .find(&marked)
            .unwrap_or_else(|| panic!("{page} does not mark run {id} NOT VALID: {html}"));
        let span = html[at..].split("</span></span>").next().unwrap();
        assert!(span.contains("⚠ NOT VALID"), "{page}: {span}");
    }

    let (code, log) = srv.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stopped by SIGTERM"), "{log}");
}

/// Sign `record` (text) with `key` in `namespace`; the armored signature.
fn sign(p: &Project, key: &Path, namespace: &str, record: &str) -> String {
    let f = p.path(&format!("sign-{}.json", namespace.len() + record.len()));
    std::fs::write(&f, record).unwrap();
    let _ = std::fs::remove_file(format!("{}.sig", f.display()));
    p.ssh_sign(key, namespace, &f);
    std::fs::read_to_string(format!("{}.sig", f.display())).unwrap()
}

#[test]
fn an_uploaded_approval_is_verified_as_run_verifies_it() {
    let p = Project::copy_of("govern/project").init();
    let alice = p.approver("alice", "ed25519");
    let (tok_file, tok) = token(&p);
    let srv = Server::start(&p, &["--token-file", tok_file.to_str().unwrap()]);
    let doc_file = p.path("openapi.json");
    std::fs::write(&doc_file, srv.get("/v1/openapi.json").body).unwrap();
    let mut checks = Checks::new(&p.path("responses"));
    p.run("deploy-a", &[]).code(4);
    let auth = format!("Bearer {tok}");
    let upload = |record: &str, sig: &str| -> Reply {
        let body =
            serde_json::to_vec(&serde_json::json!({"record": record, "signature": sig})).unwrap();
        srv.request(
            "POST",
            "/v1/missions/deploy-a/approvals",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
    };
    let to_sign = |uses: &str| -> String {
        let r = srv.get(&format!("/v1/missions/deploy-a?approver=alice&uses={uses}"));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["to_sign"]["record"].as_str().unwrap().to_string()
    };
    let reason = |r: &Reply| r.json()["detail"]["reason"].as_str().unwrap().to_string();

    // Signed for another namespace: wrong-namespace.
    let record = to_sign("1");
    let r = upload(&record, &sign(&p, &alice, "file", &record));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(reason(&r), "wrong-namespace");
    checks.add("/v1/missions/{id}/approvals", "POST", &r);

    // The plan edited after the record was made: plan-digest-mismatch.
    let plan = p.path("plans/deploy-a/plan.json");
    let original = std::fs::read(&plan).unwrap();
    let record = to_sign("1");
    let sig = sign(&p, &alice, "nexusmon-approval-v1", &record);
    std::fs::write(
        &plan,
        String::from_utf8_lossy(&original).replace("exercise governance", "exercise it"),
    )
    .unwrap();
    let r = upload(&record, &sig);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(reason(&r), "plan-digest-mismatch");
    std::fs::write(&plan, &original).unwrap();

    // Nothing was stored by the refusals.
    let stored = |p: &Project| -> Vec<String> {
        std::fs::read_dir(p.path("plans/deploy-a/approvals"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(stored(&p).is_empty(), "{:?}", stored(&p));

    // A single-use approval, signed by stock ssh-keygen: accepted, stored with its audit
    // entry, and the refused mission runs.
    let r = upload(&record, &sig);
    assert_eq!(r.status, 201, "{}", r.text());
    checks.add("/v1/missions/{id}/approvals", "POST", &r);
    let j = r.json();
    assert_eq!(j["runnable"], true);
    assert_eq!(j["approver"], "alice");
    let files = stored(&p);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with("deploy-a.alice.")));
    let log = std::fs::read_to_string(p.state().join("audit.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"approval-recorded\"") && l.contains("serve-upload")),
        "{log}"
    );
    assert_eq!(
        srv.get("/v1/missions").json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["plan_id"] == "deploy-a")
            .unwrap()["state"],
        "ready"
    );
    // Another approval by alice adds nothing while hers counts: duplicate-approver.
    let again = to_sign("");
    let r = upload(&again, &sign(&p, &alice, "nexusmon-approval-v1", &again));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(reason(&r), "duplicate-approver");
    assert_eq!(stored(&p).len(), 2);
    p.run("deploy-a", &[]).code(0);

    // The same single-use approval again: used up.
    let r = upload(&record, &sig);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(reason(&r), "uses-exhausted");
    checks.add("/v1/missions/{id}/approvals", "POST", &r);
    p.run("deploy-a", &[]).code(4);
    checks.validate(&doc_file, false);
    let (code, _) = srv.stop();
    assert_eq!(code, 0);
}

#[test]
fn beyond_loopback_every_request_needs_the_token_and_the_token_file_must_be_private() {
    let p = Project::copy_of("govern/project").init();
    let r = p.nx(&["serve", "--bind", "0.0.0.0:0"]);
    r.code(2);
    assert!(r.stderr.contains("--token-file"), "{}", r.stderr);
    let (tok_file, tok) = token(&p);
    std::fs::set_permissions(
        &tok_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let r = p.nx(&["serve", "--token-file", tok_file.to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    std::fs::set_permissions(
        &tok_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(&tok_file, "short\n").unwrap();
    p.nx(&["serve", "--token-file", tok_file.to_str().unwrap()])
        .code(2);
    std::fs::write(&tok_file, format!("{tok}\n")).unwrap();
    // Bound beyond loopback (every request below still goes to 127.0.0.1).
    let srv = Server::start_at(
        &p,
        "0.0.0.0:0",
        &["--token-file", tok_file.to_str().unwrap()],
    );
    // A client that never finishes its request head holds no connection for long (the
    // header-read timeout, 10 s), and others are answered meanwhile.
    let started = Instant::now();
    let mut slow = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    wait_for("it to say so at start", || {
        srv.stderr.lock().unwrap().contains("beyond loopback")
    });
    for path in ["/", "/v1/runs", "/v1/system/health"] {
        assert_eq!(srv.get(path).status, 401, "{path}");
    }
    let auth = format!("Bearer {tok}");
    let r = srv.request("GET", "/v1/system/health", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["server"]["loopback"], false);
    slow.set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let mut got = Vec::new();
    let read = slow.read_to_end(&mut got);
    let waited = started.elapsed();
    assert!(read.is_ok(), "the slow connection was not closed: {read:?}");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(25),
        "closed after {waited:?}"
    );
    let (code, _) = srv.stop();
    assert_eq!(code, 0);
}
