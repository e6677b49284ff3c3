//! The builtin probes' fork server (`exec::forkserver`): one server per worker forks every
//! builtin probe's child, and nothing of one probe reaches the next — not its Landlock
//! domain, not its fixtures, not its cgroup — while a crash, a hang or a timeout of one
//! child is seen through exactly as for an executed helper (the server, whose memory the
//! child shared, then retires and the next probe gets a new one).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nexusmon::exec::child::{self, ChildSpec, Ended, Tracking};
use nexusmon::exec::forkserver::{self, ForkServer};
use nexusmon::exec::helper::{self, HelperRequest};
use nexusmon::sandbox::compile;
use serde_json::{Value, json};

use crate::run::bundle;
use crate::util::results;
use crate::util::{self, Test};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nexusmon"))
}

use crate::util::Rng;

const PROBES: [&str; 3] = ["os-release", "mine", "absent"];

/// What each lane must see: `(profile, probe kind) -> (baseline, scenario)` outcomes.
fn expected(profile: &str, kind: &str) -> (&'static str, &'static str) {
    match (profile, kind) {
        (_, "absent") => ("error", "error"),
        ("usr" | "pids", "os-release") | ("scratch" | "pids", "mine") => ("allow", "allow"),
        _ => ("allow", "deny"),
    }
}

/// Random plans of profiles that grant different things (and one that limits processes)
/// over probes that read a host file, a fixture of their own, and the same name in a
/// scratch directory without that fixture: run on one worker (one fork server for every
/// child), every child sees exactly its own profile and its own fixtures, whatever ran
/// before it on that server.
#[test]
fn forked_probes_see_only_their_own_domain_fixtures_and_cgroup() {
    for seed in [0x5EED_F0A4_u64, 0x0DD5_EED5] {
        let mut rng = Rng(seed);
        let mut probes = serde_json::Map::new();
        let mut scenarios = serde_json::Map::new();
        let profiles = ["usr", "scratch", "share", "pids"];
        let mut kinds = std::collections::BTreeMap::new();
        for n in 0..12 {
            let kind = PROBES[rng.below(PROBES.len())];
            let id = format!("{kind}-{n:02}");
            let probe = match kind {
                "os-release" => json!({"operation": "file-read", "target": "/usr/lib/os-release"}),
                "mine" => json!({"operation": "file-read", "target": "${SCRATCH}/mine.txt",
                    "fixtures": [{"kind": "file", "path": "${SCRATCH}/mine.txt", "content": "x"}]}),
                _ => json!({"operation": "file-read", "target": "${SCRATCH}/mine.txt"}),
            };
            probes.insert(id.clone(), probe);
            kinds.insert(id, kind);
        }
        for p in profiles {
            let mut row = serde_json::Map::new();
            for (id, kind) in &kinds {
                if rng.below(4) != 0 {
                    let (_, scenario) = expected(p, kind);
                    let expect = if scenario == "deny" { "deny" } else { "allow" };
                    row.insert(id.clone(), json!(expect));
                }
            }
            scenarios.insert(p.to_string(), Value::Object(row));
        }
        let fs =
            |allow: Value| json!({"landlock": {"abi": 7, "fs": {"handle": "all", "allow": allow}}});
        let profiles_doc = json!({"schema_version": 1, "registry_id": "fs", "profiles": {
            "usr": fs(json!([{"path": "/usr", "access": ["read"]}])),
            "scratch": fs(json!([{"path": "${SCRATCH}", "access": ["read"]}])),
            "share": fs(json!([{"path": "/usr/share", "access": ["read"]}])),
            "pids": {"limits": {"processes": 4}},
        }});
        let plan = json!({"schema_version": 1, "plan_id": "fs", "kind": "experiment",
            "registry_id": "fs", "profiles": profiles, "scenarios": scenarios,
            "lanes": {"baseline": true, "scenario": true, "oracle": true}});
        let t = Test::new()
            .write(
                "registry/fs/probes.json",
                &json!({"schema_version": 1, "registry_id": "fs", "probes": probes}).to_string(),
            )
            .write("registry/fs/profiles.json", &profiles_doc.to_string())
            .write("plans/fs/plan.json", &plan.to_string());
        let out = t.path().join("out").to_string_lossy().into_owned();
        let t = t.args([
            "run",
            "--plan",
            "plans/fs/plan.json",
            "--out",
            &out,
            "--channel",
            "clean",
            "--jobs",
            "1",
        ]);
        let r = t.run();
        // A probe whose target does not exist is an error in both lanes: inconclusive.
        let absent = scenarios.values().any(|row| {
            row.as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with("absent"))
        });
        r.code(i32::from(absent));
        let b = bundle(&t);
        let mut observed = 0;
        for (file, lane) in [("baseline_results.jsonl", 0), ("runtime_results.jsonl", 1)] {
            for o in results(&b, file).as_array().unwrap() {
                let profile = o["profile_id"].as_str().unwrap();
                let kind = kinds[o["probe_id"].as_str().unwrap()];
                let (base, scen) = expected(profile, kind);
                let want = if lane == 0 { base } else { scen };
                assert_eq!(o["outcome"], want, "seed {seed:#x} {file}: {o:#}");
                assert_eq!(o["driver"], "builtin");
                assert!(o["witness"].is_object(), "a result line: {o:#}");
                if lane == 1 && profile == "pids" {
                    // It joined its own pids cgroup (passed to the server as a descriptor).
                    assert_eq!(o["processes"]["peak"], 1, "seed {seed:#x}: {o:#}");
                }
                observed += 1;
            }
        }
        assert!(observed > 10, "seed {seed:#x}: {observed} observations");
    }
}

fn request(target: &Path) -> Vec<String> {
    request_limited(target, None)
}

/// A file-read of `target`, with `RLIMIT_NOFILE` at `nofile` when given.
fn request_limited(target: &Path, nofile: Option<u64>) -> Vec<String> {
    let mut apply = compile::baseline_spec();
    apply.rlimits = nofile
        .map(|n| compile::RlimitSpec {
            name: "RLIMIT_NOFILE".into(),
            resource: libc::RLIMIT_NOFILE,
            soft: n,
            hard: n,
        })
        .into_iter()
        .collect();
    HelperRequest {
        v: helper::HELPER_VERSION,
        op: "file-read".into(),
        target: Some(target.to_string_lossy().into_owned()),
        destination: None,
        apply: Cow::Owned(apply),
        clean: true,
        cgroup_procs: None,
        connect_timeout_ms: 100,
        observe_runner: None,
        runner_pid: Some(std::process::id()),
    }
    .to_args()
    .unwrap()
}

fn spec(args: Vec<String>, cwd: &Path, server: Option<&Arc<ForkServer>>) -> ChildSpec {
    ChildSpec {
        program: bin(),
        args,
        arg0: Some(helper::HELPER_ARG0.into()),
        env: Some(vec![("HOME".into(), cwd.to_string_lossy().into_owned())]),
        cwd: Some(cwd.to_path_buf()),
        clean: true,
        pre_exec: None,
        isolation: None,
        ns_init: None,
        timeout: Duration::from_secs(10),
        grace: Duration::from_millis(200),
        output_cap: 64 * 1024,
        stdin: None,
        server: server.cloned(),
    }
}

/// The server's live children (pid, state).
fn children_of(server: u32) -> Vec<i32> {
    children_in_state(server, |state| state != "Z" && state != "X")
}

/// The pids of `server`'s children whose state (`/proc/<pid>/stat`'s third field) `keep`
/// accepts.
fn children_in_state(server: u32, keep: impl Fn(&str) -> bool) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 1 && f[1] == server.to_string() && keep(f[0]) {
            out.push(e.file_name().to_string_lossy().parse().unwrap());
        }
    }
    out
}

/// A forked child answers exactly as the executed helper does (random targets, some with
/// an rlimit that is the child's own), a child that hangs is killed at its timeout, one
/// that crashes is a missing line; after either its server (whose memory the child shared)
/// retires, and a new one serves many children unchanged.
#[test]
fn a_forked_child_answers_as_the_executed_helper_and_its_crash_or_hang_retires_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("file"), "hello").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.join("file"), d.join("link")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let server = Arc::new(ForkServer::start(&bin()).unwrap());
    let pid = server.pid();
    let mut rng = Rng(0xF0_4C5E_4E4E);
    let targets = [
        d.join("file"),
        d.join("sub"),
        d.join("link"),
        d.join("dangling"),
        d.join("missing"),
        PathBuf::from("/proc/self/comm"),
        PathBuf::from("/usr/lib/os-release"),
    ];
    let mut limited = 0;
    for _ in 0..24 {
        let target = &targets[rng.below(targets.len())];
        // Some children get an rlimit (3 descriptors: the open fails with EMFILE; 4: it
        // does not): it is the child's own, the next child of the same server has none.
        let nofile = [None, Some(3), Some(4)][rng.below(3)];
        limited += usize::from(nofile == Some(3));
        let forked = child::run_child(
            &spec(request_limited(target, nofile), d, Some(&server)),
            Tracking::None,
        );
        let executed = child::run_child(
            &spec(request_limited(target, nofile), d, None),
            Tracking::None,
        );
        // `/proc/self` is each child's own pid.
        let line = |kept: &[u8]| {
            helper::parse_line(kept).map(|mut l| {
                if target.starts_with("/proc/self") {
                    l.resolved_path = None;
                }
                l
            })
        };
        let (lf, le) = (line(&forked.stdout.kept), line(&executed.stdout.kept));
        assert!(lf.is_some(), "{target:?}: {forked:?}");
        assert_eq!(lf, le, "{target:?}");
        assert_eq!(forked.ended, executed.ended, "{target:?}");
        assert!(forked.stderr.kept.is_empty());
        assert!(forked.pid != pid && forked.pid != 0);
        if nofile == Some(3) && !target.ends_with("sub") {
            let l = lf.unwrap();
            assert_eq!(l.errno_name.as_deref(), Some("EMFILE"), "{target:?}: {l:?}");
        }
    }
    assert!(limited > 2, "the generator limits some children");
    // Every child ended through its own `_exit`: one server served them all.
    assert!(!server.is_broken());
    assert_eq!(server.pid(), pid);
    // A hang: killed at its timeout, with its group. The server (whose memory the child
    // shared, and which may have been stopped anywhere) ends after its reap.
    let mut hang = spec(request(&fifo), d, Some(&server));
    hang.timeout = Duration::from_millis(300);
    let r = child::run_child(&hang, Tracking::None);
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.ended, Ended::Signaled(libc::SIGTERM));
    assert!(helper::parse_line(&r.stdout.kept).is_none());
    assert!(
        server.is_broken(),
        "a server retires after a child it did not see exit"
    );
    drop((hang, server));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the retired server ended and is reaped"
    );
    // A crash: no line, the signal it died of; its server retires too.
    let server = Arc::new(ForkServer::start(&bin()).unwrap());
    let pid = server.pid();
    let crasher = std::thread::spawn(move || {
        for _ in 0..500 {
            if let Some(c) = children_of(pid).first() {
                std::thread::sleep(Duration::from_millis(20));
                // SAFETY: signalling the server's child.
                unsafe { libc::kill(*c, libc::SIGABRT) };
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    });
    let r = child::run_child(&spec(request(&fifo), d, Some(&server)), Tracking::None);
    assert!(crasher.join().unwrap(), "the child was found");
    assert_eq!(r.ended, Ended::Signaled(libc::SIGABRT), "{r:?}");
    assert!(!r.timed_out);
    assert!(helper::parse_line(&r.stdout.kept).is_none());
    assert!(server.is_broken());
    drop(server);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // A new server goes on, and after many children (half of them limited) it is
    // unchanged: same pid, no child left, the limit never reached a later child.
    let server = Arc::new(ForkServer::start(&bin()).unwrap());
    let pid = server.pid();
    for i in 0..50 {
        let r = child::run_child(
            &spec(
                request_limited(&d.join("file"), (i % 2 == 0).then_some(3)),
                d,
                Some(&server),
            ),
            Tracking::None,
        );
        let l = helper::parse_line(&r.stdout.kept).unwrap();
        let want = if i % 2 == 0 { "error" } else { "allow" };
        assert_eq!(serde_json::to_value(l.outcome).unwrap(), want, "{r:?}");
    }
    assert!(!server.is_broken());
    assert_eq!(server.pid(), pid);
    assert!(children_of(pid).is_empty(), "every child was reaped");
    drop(server);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the server ends with its socket and is reaped"
    );
}

/// The runner's privileges, which must be root with `CAP_SYS_ADMIN`: the suite runs as root
/// on its machine (README: what the tests need); a run without it fails by name here instead
/// of passing without checking anything.
fn root_with_sys_admin() -> nexusmon::sandbox::privilege::RunnerPrivileges {
    let runner = nexusmon::sandbox::privilege::RunnerPrivileges::current();
    assert!(
        runner.euid == 0 && runner.effective & (1 << 21) != 0,
        "this test needs root with CAP_SYS_ADMIN (namespaces, setns into the init's)"
    );
    runner
}

/// Generated identities and kept capabilities, with and without a PID namespace of its own
/// (shared or not), from a server with its whole bounding set and from one that dropped
/// what none of the children keeps: a forked child is who an executed helper is — same uid, gid, five capability sets, pid
/// (2, under the placeholder init), view of the runner and of its environment.
#[test]
fn a_forked_child_has_exactly_the_identity_capabilities_and_namespace_of_an_executed_one() {
    use nexusmon::exec::zygote::Zygote;
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(0x1DE_7717_CA95);
    let kepts: Vec<u64> = (0..10)
        .map(|round| {
            let k = rng.next() & runner.effective & runner.bounding & ((1u64 << 41) - 1);
            // Every third keeps nothing; some keep CAP_SYS_ADMIN (bit 21), which makes a
            // child copy a shared namespace's mounts rather than stay in them.
            match round % 3 {
                0 => 0,
                1 => k & !(1 << 21),
                _ => k | (runner.effective & (1 << 21)),
            }
        })
        .collect();
    let server = Arc::new(ForkServer::start(&bin()).unwrap());
    // A server that dropped once what none of its children keeps.
    let union = kepts.iter().fold(0, |a, k| a | k);
    let keeping = Arc::new(ForkServer::start_keeping(&bin(), Some(union)).unwrap());
    let zygote = Zygote::start(&bin()).unwrap();
    for (round, &kept) in kepts.iter().enumerate() {
        let (uid, identity) = match rng.below(3) {
            0 => (0, false),
            1 => (65534, true),
            _ => (1000 + u32::try_from(rng.below(1000)).unwrap(), true),
        };
        let pid_ns = round % 2 == 0;
        let iso = util::isolation(&runner, d, uid, identity, kept, pid_ns);
        // A shared namespace's init has its `/proc` mounted in a prepared mount namespace
        // the child joins.
        let shared = round % 4 < 2;
        let observe = |server: Option<&Arc<ForkServer>>| {
            let init = pid_ns.then(|| {
                Arc::new(if shared {
                    zygote.new_shared_init().unwrap()
                } else {
                    zygote.new_init().unwrap()
                })
            });
            let mut req: HelperRequest = serde_json::from_str(&request(d)[1]).unwrap();
            req.op = "noop".into();
            req.observe_runner = Some(std::process::id());
            let mut s = spec(req.to_args().unwrap(), Path::new("/"), server);
            s.isolation = Some(iso.clone());
            s.ns_init = init;
            let r = child::run_child(&s, Tracking::None);
            assert_eq!(r.ended, Ended::Exited(0), "round {round}: {r:?}");
            let mut me = helper::parse_line(&r.stdout.kept)
                .and_then(|l| l.child_self)
                .expect("the child saw itself");
            me.ns_pids.remove(0); // its pid in the runner's namespace differs
            if !pid_ns {
                me.pid = 0;
            }
            me
        };
        let (forked, executed) = (observe(Some(&server)), observe(None));
        assert_eq!(forked, executed, "round {round}: uid {uid} kept {kept:#x}");
        let by_keeping = observe(Some(&keeping));
        assert_eq!(
            by_keeping, executed,
            "round {round}: kept {kept:#x} of {union:#x}"
        );
        assert_eq!(forked.uid, uid);
        assert_eq!(forked.cap_eff, format!("{kept:016x}"), "round {round}");
        assert_eq!(forked.cap_bnd, format!("{kept:016x}"), "round {round}");
        if pid_ns {
            assert_eq!(forked.pid, 2, "round {round}");
            assert!(!forked.sees_runner);
        }
    }
}

/// The probe children of one worker (forked by its fork server or exec'd) share one PID
/// namespace, one child at a time: each sees there only the placeholder init and itself
/// (and its own children) — not the runner, not the server, not an earlier child, not a
/// child of another worker running at the same moment — and whatever a child leaves behind
/// ends the namespace (listed as leaked, killed with it): the next child gets a fresh one.
#[test]
fn one_servers_children_share_a_namespace_one_at_a_time_and_a_leftover_ends_it() {
    use nexusmon::exec::zygote::{SharedNs, Zygote};
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zygote = Zygote::start(&bin()).unwrap();
    // Two workers: each its fork server and its shared namespace.
    let (one, two) = (
        (
            Arc::new(ForkServer::start(&bin()).unwrap()),
            SharedNs::default(),
        ),
        (
            Arc::new(ForkServer::start(&bin()).unwrap()),
            SharedNs::default(),
        ),
    );
    let iso = util::isolation(&runner, d, 0, false, 0, true);
    // A forked builtin child in its server's shared namespace: what it saw of itself.
    let forked = |(server, ns): &(Arc<ForkServer>, SharedNs)| {
        let mut req: HelperRequest = serde_json::from_str(&request(d)[1]).unwrap();
        req.op = "noop".into();
        req.observe_runner = Some(std::process::id());
        let mut s = spec(req.to_args().unwrap(), Path::new("/"), Some(server));
        s.isolation = Some(iso.clone());
        s.ns_init = Some(ns.get(&zygote).unwrap());
        let r = child::run_child(&s, Tracking::None);
        assert_eq!(r.ended, Ended::Exited(0), "{r:?}");
        assert!(r.leaked.is_empty(), "{r:?}");
        helper::parse_line(&r.stdout.kept)
            .and_then(|l| l.child_self)
            .expect("the child saw itself")
    };
    // A shell in a worker's namespace (an exec probe's child).
    let shell = |(_, ns): &(Arc<ForkServer>, SharedNs), script: &str| {
        let mut s = spec(vec!["-c".into(), script.into()], d, None);
        s.program = PathBuf::from("/bin/sh");
        s.arg0 = None;
        s.env = Some(vec![("PATH".into(), "/usr/bin:/bin".into())]);
        s.isolation = Some(iso.clone());
        s.ns_init = Some(ns.get(&zygote).unwrap());
        child::run_child(&s, Tracking::None)
    };
    let init_a = one.1.get(&zygote).unwrap().pid();
    let mut last = 1;
    for _ in 0..4 {
        let me = forked(&one);
        assert!(
            me.pid > last,
            "a fresh process in the same namespace: {me:?}"
        );
        last = me.pid;
        assert!(!me.sees_runner, "{me:?}");
        assert_eq!(me.runner_environ, "ENOENT", "{me:?}");
        assert_eq!(one.1.get(&zygote).unwrap().pid(), init_a);
    }
    // While a child of A runs, a child of B sees in its /proc only its init, itself and
    // its own children: nothing of A's namespace, nor anything left of its own earlier.
    std::thread::scope(|scope| {
        let long = scope.spawn(|| shell(&one, "sleep 1"));
        std::thread::sleep(Duration::from_millis(200));
        let r = shell(&two, "echo $$; cd /proc && echo [0-9]*");
        assert_eq!(r.ended, Ended::Exited(0), "{r:?}");
        let out = String::from_utf8_lossy(&r.stdout.kept).into_owned();
        let mut lines = out.lines();
        let me: u32 = lines.next().unwrap().parse().unwrap();
        let seen: Vec<u32> = lines
            .next()
            .unwrap()
            .split(' ')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(seen, vec![1, me], "{out}");
        assert!(r.leaked.is_empty(), "{r:?}");
        assert_eq!(long.join().unwrap().ended, Ended::Exited(0));
    });
    assert_ne!(two.1.get(&zygote).unwrap().pid(), init_a);
    // A leftover: listed, killed with the namespace, which the next child does not share.
    let r = shell(&one, "sleep 30 & echo $!");
    assert_eq!(r.ended, Ended::Exited(0), "{r:?}");
    assert_eq!(r.leaked.len(), 1, "{r:?}");
    assert_eq!(r.leaked[0].found_by, "pid-namespace");
    assert_eq!(r.leaked[0].action, "killed-with-namespace");
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        !Path::new(&format!("/proc/{}", r.leaked[0].pid)).exists()
    });
    assert!(gone, "the leftover died with its namespace");
    let fresh = one.1.get(&zygote).unwrap();
    assert_ne!(fresh.pid(), init_a, "a new namespace");
    assert_eq!(forked(&one).pid, 2, "the first child of the new namespace");
}

/// Every child of a server, zombies included.
fn all_children_of(server: u32) -> Vec<i32> {
    children_in_state(server, |_| true)
}

/// The server tells each child's end in the same exchange that started it and reaps it
/// on its next request (one round trip per child): over generated sequences of normal
/// exits with different codes, crashes by different signals and timeouts, every result
/// is the one of its own child (its target in its line, the exit code or signal of its
/// own kind, a pid never seen before, the rusage the kernel kept for it), nothing is lost
/// or reported twice, the server holds at most the one zombie of its last child (reaped
/// on the next request, never re-parented), retires exactly after a child that did not
/// end through its own `_exit`, and leaves nothing when it ends.
#[test]
fn a_servers_children_each_get_their_own_end_with_one_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0);
    for seed in [0x5EED_0001_u64, 0xF01D_ED00] {
        let mut rng = Rng(seed);
        let mut server = Arc::new(ForkServer::start(&bin()).unwrap());
        let mut seen = std::collections::BTreeSet::new();
        let mut previous: Option<(u32, u32)> = None;
        let mut kinds = [0usize; 3];
        for step in 0..28 {
            // 0: a normal exit (0 for a file that exists, 2 for one that does not), 1: a
            // crash by a random signal, 2: a timeout.
            let kind = [0, 0, 0, 0, 1, 2][rng.below(6)];
            kinds[kind] += 1;
            let exists = rng.chance(50);
            let target = if kind == 0 {
                let t = d.join(format!("s{seed:x}-{step}"));
                if exists {
                    std::fs::write(&t, format!("{step}")).unwrap();
                }
                t
            } else {
                fifo.clone()
            };
            let mut child_spec = spec(request(&target), d, Some(&server));
            let sig = *rng.pick(&[libc::SIGABRT, libc::SIGKILL, libc::SIGQUIT, libc::SIGUSR1]);
            let spid = server.pid();
            // The previous child is the server's zombie until this launch reaps it, and
            // while the server reaps it `/proc` shows it dead (`X`), not a zombie: under
            // heavy load the killer once took it for this step's child, found it gone and
            // never signalled the real one, which ran to its timeout. Only a pid other
            // than the previous child's is this step's.
            let before = previous.map(|(p, _)| i32::try_from(p).unwrap());
            // Every live child of the server but the previous one is signalled once it has
            // been seen for 10 ms, until this step's run returns: a process seen only briefly
            // (gone before its 10 ms) is never taken for this step's child.
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let killer = (kind == 1).then(|| {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut first_seen = std::collections::BTreeMap::new();
                    let mut signalled = false;
                    let start = std::time::Instant::now();
                    while !done.load(std::sync::atomic::Ordering::SeqCst)
                        && start.elapsed() < Duration::from_secs(20)
                    {
                        for c in children_of(spid) {
                            if Some(c) == before {
                                continue;
                            }
                            let seen = *first_seen.entry(c).or_insert_with(std::time::Instant::now);
                            if seen.elapsed() >= Duration::from_millis(10) {
                                // SAFETY: signalling the server's child.
                                unsafe { libc::kill(c, sig) };
                                signalled = true;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    signalled
                })
            });
            if kind == 2 {
                child_spec.timeout = Duration::from_millis(150);
                child_spec.grace = Duration::from_millis(100);
            }
            let r = child::run_child(&child_spec, Tracking::None);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(k) = killer {
                assert!(
                    k.join().unwrap(),
                    "seed {seed:#x} step {step}: the child was found"
                );
            }
            let what = format!("seed {seed:#x} step {step} kind {kind}: {r:?}");
            assert!(r.pid != 0 && seen.insert(r.pid), "{what}: a pid seen once");
            // The child that ran before this one was reaped by the server (on this
            // request, or at once after a retiring child), not left or re-parented.
            if let Some((prev, _)) = previous {
                assert!(
                    !Path::new(&format!("/proc/{prev}")).exists(),
                    "{what}: {prev} reaped"
                );
            }
            match kind {
                0 => {
                    let l = helper::parse_line(&r.stdout.kept).expect(&what);
                    assert_eq!(l.target.as_deref(), target.to_str(), "{what}");
                    let code = if exists { 0 } else { 2 };
                    assert_eq!(r.ended, Ended::Exited(code), "{what}");
                    assert!(!r.timed_out, "{what}");
                    assert!(r.rusage.max_rss_kib > 0, "{what}: the kernel's rusage");
                    assert!(!server.is_broken(), "{what}");
                    // At most this child's zombie, kept for the runner's next request.
                    let left = all_children_of(server.pid());
                    assert!(
                        left.iter().all(|p| u32::try_from(*p).ok() == Some(r.pid)),
                        "{what}: {left:?}"
                    );
                }
                1 => {
                    assert_eq!(r.ended, Ended::Signaled(sig), "{what}");
                    assert!(!r.timed_out, "{what}");
                    assert!(helper::parse_line(&r.stdout.kept).is_none(), "{what}");
                }
                _ => {
                    assert!(r.timed_out, "{what}");
                    assert_eq!(r.ended, Ended::Signaled(libc::SIGTERM), "{what}");
                    assert!(helper::parse_line(&r.stdout.kept).is_none(), "{what}");
                }
            }
            if kind == 0 {
                previous = Some((r.pid, server.pid()));
            } else {
                // The server retires after a child that did not end through its own
                // `_exit`: it reaped it at once and ends; the next probe gets a new one.
                assert!(server.is_broken(), "{what}");
                let old = server.pid();
                drop(child_spec);
                server = Arc::new(ForkServer::start(&bin()).unwrap());
                for _ in 0..200 {
                    if !Path::new(&format!("/proc/{old}")).exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                assert!(!Path::new(&format!("/proc/{}", r.pid)).exists(), "{what}");
                previous = None;
            }
        }
        assert!(kinds.iter().all(|k| *k > 0), "seed {seed:#x}: {kinds:?}");
        let (last, spid) = (previous.map(|p| p.0), server.pid());
        drop(server);
        assert!(
            !Path::new(&format!("/proc/{spid}")).exists(),
            "the server ended"
        );
        if let Some(last) = last {
            assert!(
                !Path::new(&format!("/proc/{last}")).exists(),
                "the server reaped its last child before it ended"
            );
        }
    }
}

/// Processes whose command line holds `marker`, anywhere on the machine.
fn with_marker(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// A child of a worker's shared PID namespace tries to leave something behind that the
/// runner's check (`NsInit::holds_only_the_child`, then `NsInit::survivors`) does not see,
/// with no cgroup to give it away (as if it had moved every process out of its cgroups):
/// generated combinations of a background process with its pipes closed, `setsid`, a
/// double fork, a sibling started with `CLONE_PARENT` (its parent is then the runner's
/// thread, not the init: no walk from the init finds it), a nested PID namespace, and a
/// remount of its `/proc` with `hidepid=invisible` (kept `CAP_SYS_ADMIN`). Every leftover
/// is found (a pid of the runner's view, found by the namespace), killed with the
/// namespace, which the next child does not share; a child that leaves nothing keeps it.
#[test]
fn nothing_a_child_leaves_in_its_shared_namespace_escapes_the_check() {
    use nexusmon::exec::zygote::{SharedNs, Zygote};
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zygote = Zygote::start(&bin()).unwrap();
    let ns = SharedNs::default();
    let mut rng = Rng(0xE5CA_9E5E_ED00);
    let me = std::process::id();
    let mut kinds = [0usize; 6];
    for case in 0..14 {
        let sys_admin = rng.chance(50);
        let kept = if sys_admin {
            runner.effective & (1 << 21)
        } else {
            0
        };
        let iso = util::isolation(&runner, d, 0, false, kept, true);
        let marker = format!("9{me}{case:02}");
        // What it leaves: some of the ways below (none every fourth case).
        let mut parts: Vec<String> = Vec::new();
        let mut clone_parent = false;
        if case % 4 != 3 {
            loop {
                let k = rng.below(6);
                if k == 4 && !sys_admin {
                    continue;
                }
                kinds[k] += 1;
                match k {
                    0 => parts.push(format!("(exec >/dev/null 2>&1; sleep {marker}) &")),
                    1 => parts.push(format!("setsid sleep {marker} >/dev/null 2>&1 &")),
                    2 => parts.push(format!("( (sleep {marker} >/dev/null 2>&1 &) & )")),
                    3 => clone_parent = true,
                    4 => parts.push(format!(
                        "mount -o remount,hidepid=invisible /proc; \
                         unshare --pid --fork sleep {marker} >/dev/null 2>&1 &"
                    )),
                    _ => parts.push(format!(
                        "(exec >/dev/null 2>&1; sh -c 'sleep {marker} & sleep {marker}') &"
                    )),
                }
                if !rng.chance(40) {
                    break;
                }
            }
        }
        parts.push("sleep 0.05".into());
        if clone_parent {
            // The probe child itself (perl, exec'd) clones a sibling: CLONE_PARENT | SIGCHLD.
            parts.push(format!(
                "exec perl -e 'if (syscall(56, 0x8000 | 17, 0, 0, 0, 0) == 0) {{ \
                 open STDOUT, \">/dev/null\"; open STDERR, \">/dev/null\"; \
                 exec \"sleep\", \"{marker}\"; }} exit 0'"
            ));
        }
        let script = parts.join("\n");
        let before = ns.get(&zygote).unwrap().pid();
        let mut s = spec(vec!["-c".into(), script.clone()], d, None);
        s.program = PathBuf::from("/bin/sh");
        s.arg0 = None;
        s.env = Some(vec![("PATH".into(), "/usr/bin:/bin".into())]);
        s.isolation = Some(iso);
        s.ns_init = Some(ns.get(&zygote).unwrap());
        let r = child::run_child(&s, Tracking::None);
        let what = format!("case {case}: `{script}`: {r:?}");
        assert_eq!(r.ended, Ended::Exited(0), "{what}");
        let left = case % 4 != 3;
        if left {
            assert!(!r.leaked.is_empty(), "{what}");
            for l in &r.leaked {
                assert_eq!(l.found_by, "pid-namespace", "{what}");
                assert_eq!(l.action, "killed-with-namespace", "{what}");
                assert!(l.pid != 0 && !l.comm.is_empty(), "{what}");
            }
            assert_ne!(
                ns.get(&zygote).unwrap().pid(),
                before,
                "{what}: a new namespace"
            );
        } else {
            assert!(r.leaked.is_empty(), "{what}");
            assert_eq!(
                ns.get(&zygote).unwrap().pid(),
                before,
                "{what}: the same namespace"
            );
        }
        let gone = (0..200).any(|_| {
            if with_marker(&marker).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
            false
        });
        assert!(gone, "{what}: {:?} still alive", with_marker(&marker));
    }
    assert!(kinds.iter().all(|k| *k > 0), "{kinds:?}");
}

/// A forked child whose setup step fails (here its working directory is missing) is
/// reported as the spawn reports an executed helper's: the step and errno, no child, no
/// line — though the server told it only with the child's end — and the server serves on.
#[test]
fn a_forked_childs_failed_setup_step_is_reported_as_the_spawns() {
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Arc::new(ForkServer::start(&bin()).unwrap());
    let missing = d.join("no-such-directory");
    let target = d.join("t");
    std::fs::write(&target, "x").unwrap();
    for round in 0..3 {
        // With an isolation, the executed helper is started through the spawn, which
        // reports the failed `chdir` as a setup step.
        let iso = util::isolation(&runner, d, 0, false, 0, false);
        let failing = |server: Option<&Arc<ForkServer>>| {
            let mut s = spec(request(&target), &missing, server);
            s.isolation = Some(iso.clone());
            child::run_child(&s, Tracking::None)
        };
        let (forked, executed) = (failing(Some(&server)), failing(None));
        assert!(
            matches!(forked.ended, Ended::SetupFailed(_, e) if e == libc::ENOENT),
            "round {round}: {forked:?}"
        );
        assert_eq!(forked.ended, executed.ended, "round {round}");
        assert_eq!((forked.pid, executed.pid), (0, 0), "round {round}");
        assert!(forked.stdout.kept.is_empty() && forked.leaked.is_empty());
        assert!(!server.is_broken(), "round {round}");
        // The server serves the next child as before.
        let ok = child::run_child(&spec(request(&target), d, Some(&server)), Tracking::None);
        assert_eq!(ok.ended, Ended::Exited(0), "round {round}: {ok:?}");
        assert!(helper::parse_line(&ok.stdout.kept).is_some());
    }
}

/// A forked child dies with its server whatever identity it switched to (the kernel clears
/// the parent-death signal at a change of uid or gid, so it is set after that step): a
/// child blocked on a FIFO is gone at once when its server is killed, long before its
/// timeout.
#[test]
fn a_forked_child_with_an_identity_dies_with_its_server() {
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o666) }, 0);
    for (uid, identity) in [(65534, true), (0, false)] {
        let server = Arc::new(ForkServer::start(&bin()).unwrap());
        let spid = server.pid();
        let mut hung = spec(request(&fifo), d, Some(&server));
        hung.isolation = Some(util::isolation(&runner, d, uid, identity, 0, false));
        hung.timeout = Duration::from_secs(20);
        let started = std::time::Instant::now();
        let run = std::thread::spawn(move || child::run_child(&hung, Tracking::None));
        let forked = (0..1000)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(5));
                children_of(spid).first().copied()
            })
            .expect("the child started");
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: killing the server we started.
        unsafe { libc::kill(i32::try_from(spid).unwrap(), libc::SIGKILL) };
        let r = run.join().unwrap();
        assert!(!r.timed_out, "uid {uid}: {r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "uid {uid}: {r:?}"
        );
        assert!(
            !Path::new(&format!("/proc/{forked}/status")).exists() || {
                let st =
                    std::fs::read_to_string(format!("/proc/{forked}/status")).unwrap_or_default();
                st.contains("State:\tZ")
            },
            "uid {uid}: the child outlived its server"
        );
        drop(server);
    }
}

/// The server may hold its `started` reply while the child runs (`LaunchSpec::hold_ms`):
/// over generated holds and children that end at once, after a random delay (blocked on a
/// FIFO until then) or never (until their timeout), a launch that says its child ended
/// returns with the child a zombie already, one that does not returns only after the hold
/// is over (or at once without a hold), and either way the child's end, its line and its
/// rusage are its own; a child run through `run_child` with a timeout shorter than any
/// hold is still killed at its timeout.
#[test]
fn a_held_started_reply_tells_a_quick_childs_end_and_never_delays_a_timeout() {
    use nexusmon::exec::forkserver::LaunchSpec;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = d.join("t");
    std::fs::write(&target, "x").unwrap();
    let fifo = d.join("fifo");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0);
    let state = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ")?.1.chars().next())
    };
    let mut told = [0usize; 2];
    for seed in [0x401D_0001_u64, 0x401D_0002] {
        let mut rng = Rng(seed);
        let server = Arc::new(ForkServer::start(&bin()).unwrap());
        for step in 0..20 {
            let hold = *rng.pick(&[0u32, 1, 5, 20, 60]);
            // 0: ends at once; 1: blocked on the FIFO for a random delay around the hold.
            let delayed = rng.chance(40);
            let delay = Duration::from_millis(rng.below(80u64));
            let what = format!("seed {seed:#x} step {step} hold {hold} delayed {delayed}");
            let path = if delayed { &fifo } else { &target };
            let args = request(path);
            let env = vec![("HOME".to_string(), d.to_string_lossy().into_owned())];
            let writer = delayed.then(|| {
                let fifo = fifo.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                    w.write_all(b"x").unwrap();
                })
            });
            let t0 = std::time::Instant::now();
            let l = server
                .launch(&LaunchSpec {
                    args: &args,
                    env: &env,
                    cwd: Some(d),
                    clean: true,
                    isolation: None,
                    cgroup_fd: None,
                    ns_init: None,
                    ns_mounts: false,
                    hold_ms: hold,
                })
                .unwrap();
            let took = t0.elapsed();
            told[usize::from(l.ended)] += 1;
            if l.ended {
                assert!(hold > 0, "{what}: ended without a hold");
                assert_eq!(state(l.pid), Some('Z'), "{what}: a zombie when told");
            } else if hold > 0 {
                assert!(
                    took >= Duration::from_millis(u64::from(hold)),
                    "{what}: started after {took:?}"
                );
            }
            if let Some(w) = writer {
                w.join().unwrap();
            }
            // Not told yet: the runner waits for it (here: until it is a zombie).
            for _ in 0..2000 {
                if state(l.pid) == Some('Z') {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let end = server.exited(l.pid, false).expect(&what);
            assert_eq!(end.status, 0, "{what}");
            assert!(
                end.setup_failed.is_none() && end.rusage.ru_maxrss > 0,
                "{what}"
            );
            let mut out = String::new();
            std::fs::File::from(l.stdout)
                .read_to_string(&mut out)
                .unwrap();
            let line = helper::parse_line(out.as_bytes()).expect(&what);
            assert_eq!(line.target.as_deref(), path.to_str(), "{what}");
            assert!(l.stderr.as_raw_fd() >= 0);
            assert!(!server.is_broken(), "{what}");
        }
    }
    // Both replies were seen (a quick child within a hold; a delayed one past it).
    assert!(told.iter().all(|n| *n > 0), "{told:?}");
    // Timeouts shorter than any hold: the child hanging on the FIFO is killed at its
    // timeout, as without a server.
    let mut rng = Rng(0x401D_0003);
    for _ in 0..4 {
        let server = Arc::new(ForkServer::start(&bin()).unwrap());
        let mut s = spec(request(&fifo), d, Some(&server));
        let ms = 2 + rng.below(60u64);
        s.timeout = Duration::from_millis(ms);
        s.grace = Duration::from_millis(50);
        let r = child::run_child(&s, Tracking::None);
        assert!(r.timed_out, "timeout {ms} ms: {r:?}");
        assert_eq!(r.ended, Ended::Signaled(libc::SIGTERM), "timeout {ms} ms");
        assert!(r.rusage.wall_us >= ms * 1000, "timeout {ms} ms: {r:?}");
        assert!(
            server.is_broken(),
            "the server retires after a killed child"
        );
    }
}

/// A runner's thread sends an init's pidfd to its server once and then names it
/// (`same_ns`); the server keeps it and stays in its namespace. Over generated sequences
/// of launches into one of three namespaces, into none (the server's own), and of inits
/// killed and replaced between them, every child is born exactly in the namespace its
/// launch names: its pid there is the next of that namespace (2 for a new init's first
/// child), or its pid outside any child namespace when it names none.
#[test]
fn each_forked_child_is_born_in_exactly_the_namespace_its_launch_names() {
    use nexusmon::exec::zygote::{NsInit, Zygote};
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zygote = Zygote::start(&bin()).unwrap();
    let in_ns = util::isolation(&runner, d, 0, false, 0, true);
    let own_ns = util::isolation(&runner, d, 0, false, 0, false);
    let mut seen = [0usize; 3];
    for seed in [0x5A3E_0001_u64, 0x5A3E_0002] {
        let mut rng = Rng(seed);
        let server = Arc::new(ForkServer::start(&bin()).unwrap());
        // Each slot: an init and how many children were born in its namespace so far.
        let mut slots: Vec<(Arc<NsInit>, u32)> = (0..3)
            .map(|_| (Arc::new(zygote.new_shared_init().unwrap()), 0))
            .collect();
        for step in 0..30 {
            let what = format!("seed {seed:#x} step {step}");
            if rng.chance(15) {
                // An init ends (as after a leftover); its slot gets a new one.
                let i = rng.below(slots.len());
                slots[i].0.kill();
                slots[i] = (Arc::new(zygote.new_shared_init().unwrap()), 0);
                seen[2] += 1;
            }
            let slot = rng.below(slots.len() + 1);
            let mut req: HelperRequest = serde_json::from_str(&request(d)[1]).unwrap();
            req.op = "noop".into();
            req.observe_runner = Some(std::process::id());
            let mut s = spec(req.to_args().unwrap(), Path::new("/"), Some(&server));
            if let Some((init, _)) = slots.get(slot) {
                s.isolation = Some(in_ns.clone());
                s.ns_init = Some(init.clone());
            } else {
                s.isolation = Some(own_ns.clone());
            }
            let r = child::run_child(&s, Tracking::None);
            assert_eq!(r.ended, Ended::Exited(0), "{what}: {r:?}");
            assert!(r.leaked.is_empty() && !server.is_broken(), "{what}: {r:?}");
            let me = helper::parse_line(&r.stdout.kept)
                .and_then(|l| l.child_self)
                .expect(&what);
            if let Some((_, born)) = slots.get_mut(slot) {
                *born += 1;
                assert_eq!(me.pid, 1 + *born, "{what}: slot {slot}");
                seen[0] += 1;
            } else {
                assert_eq!(me.pid, r.pid, "{what}: in the server's own namespace");
                seen[1] += 1;
            }
        }
    }
    assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
}

/// The parent pid of `pid` (`None` once it is gone).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The state letter of `pid` (`None` once it is gone).
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// When the lanes are over the runner retires its workers' shared namespaces and the
/// zygote without waiting (`LiveExecutor::retire_namespaces`): the zygote then ends every
/// init it started — shared or not, killed by the runner already or not — and exits on its
/// own, no init can be asked for afterwards, and the drop, which waits for it, finds it
/// gone. Generated mixes of inits; each seed's zygote is a separate process.
#[test]
fn a_retired_zygote_ends_with_every_init_it_started_and_starts_no_more() {
    use nexusmon::exec::zygote::{SharedNs, Zygote};
    for seed in [0x2E71_0001_u64, 0x2E71_0002, 0x2E71_0003, 0x2E71_0004] {
        let mut rng = Rng(seed);
        let zygote = Zygote::start(&bin()).unwrap();
        let shared: Vec<SharedNs> = (0..=rng.below(3)).map(|_| SharedNs::default()).collect();
        let mut pids = Vec::new();
        for ns in &shared {
            pids.push(ns.get(&zygote).unwrap().pid());
        }
        let own: Vec<_> = (0..rng.below(3))
            .map(|_| zygote.new_init().unwrap())
            .collect();
        pids.extend(own.iter().map(nexusmon::exec::zygote::NsInit::pid));
        let zpid = parent_of(pids[0]).expect("the init lives");
        for p in &pids {
            assert_eq!(
                parent_of(*p),
                Some(zpid),
                "seed {seed:#x}: every init is the zygote's"
            );
        }
        let retired: Vec<bool> = shared
            .iter()
            .map(|ns| {
                let r = rng.chance(50);
                if r {
                    ns.retire();
                }
                r
            })
            .collect();
        zygote.retire();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let inits_gone = pids.iter().all(|p| state_of(*p).is_none());
            // Exited: a zombie until the drop reaps it.
            let zygote_done = matches!(state_of(zpid), Some('Z') | None);
            if inits_gone && zygote_done {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "seed {seed:#x}: the retired zygote (pid {zpid}) or an init of {pids:?} lives on"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            zygote.new_init().is_err(),
            "seed {seed:#x}: a retired zygote starts no init"
        );
        for (ns, r) in shared.iter().zip(&retired) {
            if *r {
                assert!(
                    ns.get(&zygote).is_err(),
                    "seed {seed:#x}: a retired namespace is not replaced by a retired zygote"
                );
            }
        }
        let dropped = std::time::Instant::now();
        drop(zygote);
        assert!(
            dropped.elapsed() < Duration::from_millis(500),
            "seed {seed:#x}: the drop waited {:?} for a zygote that had exited",
            dropped.elapsed()
        );
        assert_eq!(
            state_of(zpid),
            None,
            "seed {seed:#x}: the drop reaps the zygote"
        );
        drop(own);
    }
}

/// The mount namespace of a process (`/proc/<pid>/ns/mnt`'s link) and the device of the
/// `/proc` it sees on top (`/proc/<pid>/mountinfo`'s last mount at `/proc`).
fn mounts_of(pid: impl std::fmt::Display) -> (String, String) {
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let proc_dev = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4 && f[4] == "/proc").then(|| f[2].to_string())
        })
        .next_back()
        .unwrap_or_default();
    (ns, proc_dev)
}

/// The fork server joins a PID namespace init's prepared mount namespace itself, once per
/// init, so that a child of that namespace is born in it (it joined it once per child
/// before), and goes back to its own for a child of no PID namespace: over generated
/// sequences of children that stay in the shared namespace, children that copy it (they
/// keep `CAP_SYS_ADMIN`), children of a new init, children without a PID namespace and
/// children without any isolation, on one server, each child (held on a FIFO while it is
/// looked at) is in exactly the mount namespace its launch names: the init's itself, a
/// copy of it (its `/proc` the namespace's), a copy of the host's (the host's `/proc`), or
/// the host's.
#[test]
fn a_forked_child_is_born_in_the_mount_namespace_its_launch_names() {
    use nexusmon::exec::zygote::Zygote;
    use std::io::Write;
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("fifo");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o666) }, 0);
    let host = mounts_of("self");
    let zygote = Zygote::start(&bin()).unwrap();
    let sys_admin = runner.effective & (1 << 21);
    let mut seen = [0usize; 5];
    for seed in [0x3A7_0001_u64, 0x3A7_0002] {
        let mut rng = Rng(seed);
        let server = Arc::new(ForkServer::start(&bin()).unwrap());
        let spid = server.pid();
        let mut init = Arc::new(zygote.new_shared_init().unwrap());
        for step in 0..14 {
            // 0: stays in the init's namespace; 1: copies it; 2: a new init first, then
            // stays; 3: no PID namespace; 4: no isolation at all.
            let kind = rng.below(5usize);
            seen[kind] += 1;
            if kind == 2 {
                init = Arc::new(zygote.new_shared_init().unwrap());
            }
            let what = format!("seed {seed:#x} step {step} kind {kind}");
            let mut s = spec(request(&fifo), d, Some(&server));
            s.timeout = Duration::from_secs(20);
            s.isolation = match kind {
                0 | 2 => Some(util::isolation(&runner, d, 0, false, 0, true)),
                1 => Some(util::isolation(&runner, d, 0, false, sys_admin, true)),
                3 => Some(util::isolation(&runner, d, 0, false, 0, false)),
                _ => None,
            };
            s.ns_init = (kind < 3).then(|| init.clone());
            let iso = s.isolation.clone();
            let run = std::thread::spawn(move || child::run_child(&s, Tracking::None));
            let forked = (0..2000)
                .find_map(|_| {
                    std::thread::sleep(Duration::from_millis(2));
                    children_of(spid).first().copied()
                })
                .unwrap_or_else(|| panic!("{what}: the child started"));
            // Its mount steps are over once it is in its working directory (the next step).
            let blocked = (0..2000).any(|_| {
                std::thread::sleep(Duration::from_millis(2));
                std::fs::read_link(format!("/proc/{forked}/cwd")).is_ok_and(|c| c == d)
            });
            let child = mounts_of(forked);
            let of_init = mounts_of(init.pid());
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            w.write_all(b"x").unwrap();
            drop(w);
            let r = run.join().unwrap();
            assert!(blocked, "{what}: {r:?}");
            assert_eq!(r.ended, Ended::Exited(0), "{what}: {r:?}");
            assert!(r.leaked.is_empty(), "{what}: {r:?}");
            let own_mounts = iso
                .as_ref()
                .is_some_and(nexusmon::sandbox::privilege::Isolation::mount_namespace);
            match kind {
                0 | 2 => assert_eq!(child.0, of_init.0, "{what}: the init's own"),
                1 => {
                    assert!(child.0 != of_init.0 && child.0 != host.0, "{what}");
                    assert_eq!(child.1, of_init.1, "{what}: the namespace's /proc");
                    assert_ne!(child.1, host.1, "{what}");
                }
                3 if own_mounts => {
                    assert!(child.0 != of_init.0 && child.0 != host.0, "{what}");
                    assert_eq!(child.1, host.1, "{what}: the host's /proc");
                }
                _ => assert_eq!(child, host, "{what}: the host's"),
            }
        }
    }
    assert!(
        seen.iter().all(|n| *n > 0),
        "every kind generated: {seen:?}"
    );
}

/// A fork server (and the zygote) holds no descriptor the runner inherited without
/// close-on-exec (a shell's, a build tool's pipe): each one is copied into every child's
/// table at its clone, and a pipe's end held there keeps that pipe open for its reader. Over generated
/// descriptor numbers (some beyond the first 64, which would make each clone copy a larger
/// table), the server's `/proc/<pid>/fd` names none of the file they open, and its
/// children still answer.
#[test]
fn a_fork_server_and_the_zygote_hold_no_descriptor_the_runner_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = d.join("t");
    std::fs::write(&target, "x").unwrap();
    let marker = d.join("inherited");
    std::fs::write(&marker, "").unwrap();
    let marker_c = std::ffi::CString::new(marker.to_str().unwrap()).unwrap();
    let mut rng = Rng(0xFD_0001);
    for round in 0..4 {
        // SAFETY: opening a file of ours and duplicating it, without close-on-exec, onto
        // the lowest free numbers from generated ones (never one another test holds),
        // closed again below.
        let fd = unsafe { libc::open(marker_c.as_ptr(), libc::O_RDONLY) };
        assert!(fd >= 0);
        let numbers: Vec<i32> = (0..3)
            .map(|_| {
                let from = 3 + i32::try_from(rng.below(1000u32)).unwrap();
                // SAFETY: as above.
                let n = unsafe { libc::fcntl(fd, libc::F_DUPFD, from) };
                assert!(n >= from);
                n
            })
            .collect();
        let server = Arc::new(ForkServer::start(&bin()).unwrap());
        let zygote = nexusmon::exec::zygote::Zygote::start(&bin()).unwrap();
        for &n in numbers.iter().chain([fd].iter()) {
            // SAFETY: closing what this test opened.
            unsafe { libc::close(n) };
        }
        // Once it served a child it is past its start.
        let r = child::run_child(&spec(request(&target), d, Some(&server)), Tracking::None);
        assert_eq!(r.ended, Ended::Exited(0), "round {round}: {r:?}");
        let line = helper::parse_line(&r.stdout.kept).expect("a line");
        assert_eq!(
            line.outcome,
            nexusmon::model::results::Outcome::Allow,
            "{line:?}"
        );
        let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == marker))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            held.is_empty(),
            "round {round}: {numbers:?} held as {held:?}"
        );
        // Nor does the zygote (past its start once it started an init; the init's parent).
        let init = zygote.new_init().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", init.pid())).unwrap();
        let ppid = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        let held: Vec<String> = std::fs::read_dir(format!("/proc/{ppid}/fd"))
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == marker))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(held.is_empty(), "round {round}: the zygote holds {held:?}");
    }
}

/// The lanes' worker threads start before the preflight and get ready meanwhile (each
/// joins its cgroup, starts its fork server, takes its PID namespace's init): generated
/// plans of builtin probes that each connect to a TCP listener of the test's (every child
/// that runs leaves a connection in its backlog, counted after the run), over random
/// profiles and worker counts, with the plan's `apply_preflight_profile` one that cannot
/// apply here (a `hard` profile pinning ABI 10) or one that can. When it cannot, the run
/// stops with exit 5 before any lane: no probe's child ran (no connection, no result
/// written), and the ready workers' fork servers and threads ended with the run (its
/// cgroups are gone, which the kernel refuses while a process or thread is in one). When
/// it can, every child of both lanes ran on those workers.
#[test]
fn a_required_preflight_failure_runs_no_child_though_the_workers_got_ready_meanwhile() {
    let mut rng = Rng(0x9E_F1_16_47);
    let mut stopped = 0;
    for round in 0..6 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fs =
            |allow: Value| json!({"landlock": {"abi": 7, "fs": {"handle": "all", "allow": allow}}});
        let all_profiles = ["usr", "share", "etc"];
        let chosen: Vec<&str> = all_profiles
            .iter()
            .copied()
            .filter(|_| rng.chance(70))
            .collect();
        let chosen = if chosen.is_empty() {
            vec!["usr"]
        } else {
            chosen
        };
        // No profile handles the network: both lanes' children connect.
        let mut probes = serde_json::Map::new();
        let mut scenarios = serde_json::Map::new();
        for p in &chosen {
            let mut row = serde_json::Map::new();
            for i in 0..=rng.below(5usize) {
                let id = format!("connect-{p}-{i}");
                probes.insert(
                    id.clone(),
                    json!({"operation": "tcp-connect", "target": format!("127.0.0.1:{port}")}),
                );
                row.insert(id, json!("allow"));
            }
            scenarios.insert((*p).to_string(), Value::Object(row));
        }
        let n_probes = probes.len();
        let fails = rng.chance(60);
        let required = if fails { "udp-hard" } else { chosen[0] };
        let profiles_doc = json!({"schema_version": 1, "registry_id": "pf", "profiles": {
            "usr": fs(json!([{"path": "/usr", "access": ["read"]}])),
            "share": fs(json!([{"path": "/usr/share", "access": ["read"]}])),
            "etc": fs(json!([{"path": "/etc", "access": ["read"]}])),
            "udp-hard": {"landlock": {"abi": 10, "net": {"udp_connect": [53]}}},
        }});
        let plan = json!({"schema_version": 1, "plan_id": "pf", "kind": "experiment",
            "registry_id": "pf", "profiles": chosen, "scenarios": scenarios,
            "apply_preflight_profile": required,
            "lanes": {"baseline": true, "scenario": true, "oracle": true}});
        let jobs = (1 + rng.below(4usize)).to_string();
        let t = Test::new()
            .write(
                "registry/pf/probes.json",
                &json!({"schema_version": 1, "registry_id": "pf", "probes": probes}).to_string(),
            )
            .write("registry/pf/profiles.json", &profiles_doc.to_string())
            .write("plans/pf/plan.json", &plan.to_string());
        let out = t.path().join("out").to_string_lossy().into_owned();
        let t = t.args([
            "run",
            "--plan",
            "plans/pf/plan.json",
            "--out",
            &out,
            "--channel",
            "clean",
            "--jobs",
            &jobs,
        ]);
        let r = t.run();
        let why = format!("round {round}: jobs {jobs}, profiles {chosen:?}, required {required}");
        r.code(if fails { 5 } else { 0 });
        // Every connection a child made is in the backlog (completed by the kernel).
        listener.set_nonblocking(true).unwrap();
        let mut connections = 0;
        while listener.accept().is_ok() {
            connections += 1;
        }
        let b = bundle(&t);
        let run_id = b.file_name().unwrap().to_string_lossy().into_owned();
        let cgroup = Path::new("/sys/fs/cgroup/pids/nexusmon").join(&run_id);
        assert!(!cgroup.exists(), "{why}: the run's cgroups are removed");
        if fails {
            stopped += 1;
            assert_eq!(connections, 0, "{why}: a probe's child ran");
            assert!(!b.join("runtime_results.jsonl").exists(), "{why}");
            assert!(!b.join("baseline_results.jsonl").exists(), "{why}");
            let st: Value =
                serde_json::from_slice(&std::fs::read(b.join("run_status.json")).unwrap()).unwrap();
            assert_eq!(st["failure_stage"], "preflight", "{why}");
            let pre: Value =
                serde_json::from_slice(&std::fs::read(b.join("apply_preflight.json")).unwrap())
                    .unwrap();
            let rec = pre["profiles"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["profile"] == "udp-hard")
                .unwrap_or_else(|| panic!("{why}: {pre:#}"));
            assert_eq!(rec["apply_ok"], false, "{why}");
            assert_eq!(rec["required"], true, "{why}");
        } else {
            assert_eq!(connections, 2 * n_probes, "{why}");
            for file in ["baseline_results.jsonl", "runtime_results.jsonl"] {
                let lines = results(&b, file);
                assert_eq!(lines.as_array().unwrap().len(), n_probes, "{why}");
                for o in lines.as_array().unwrap() {
                    assert_eq!(o["outcome"], "allow", "{why} {file}: {o:#}");
                    assert_eq!(o["driver"], "builtin", "{why}");
                }
            }
        }
    }
    assert!(
        (1..6).contains(&stopped),
        "both kinds of run were generated ({stopped} stopped of 6)"
    );
}

/// The CPUs `pid` may run on, as `/proc/<pid>/status` lists them.
fn cpus_of(pid: impl std::fmt::Display) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// `cpus` as the kernel lists them (`0-2,5`).
fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// A fork server started on one CPU runs there only, and each child it forks runs where
/// the thread that started the server could (generated sets of CPUs for that thread, a
/// CPU inside it or not): a child's CPUs are an executed helper's, not its server's.
#[test]
fn a_pinned_servers_children_run_where_the_runner_could() {
    let allowed = forkserver::allowed_cpus().expect("this thread's CPUs");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(0xC9_0AFF_1417);
    let mut pinned_rounds = 0;
    for round in 0..8 {
        // A non-empty subset of the allowed CPUs for the thread that starts the server.
        let mut set: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|_| rng.below(2) == 0)
            .collect();
        if set.is_empty() {
            set.push(allowed[rng.below(allowed.len())]);
        }
        // The server's CPU: mostly one of the set, sometimes one outside it (not pinned).
        let cpu = if rng.below(4) == 0 {
            (0..64).find(|c| !set.contains(c)).unwrap()
        } else {
            set[rng.below(set.len())]
        };
        let fifo = d.join(format!("fifo{round}"));
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (set2, fifo2) = (set.clone(), fifo.clone());
        let d2 = d.to_path_buf();
        // The runner's worker thread: its CPUs, its server, its child (which blocks opening
        // the fifo until this test opens the other end).
        let worker = std::thread::spawn(move || {
            // SAFETY: zeroed plain data.
            let mut s: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            for c in &set2 {
                // SAFETY: an index below the set's size, into a local set.
                unsafe { libc::CPU_SET(*c, &mut s) };
            }
            // SAFETY: this thread's own affinity.
            assert_eq!(
                unsafe {
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const s)
                },
                0
            );
            let server = Arc::new(ForkServer::start_on(&bin(), None, Some(cpu)).unwrap());
            let tx = server.pid();
            let r = std::thread::scope(|sc| {
                let h = sc.spawn(|| {
                    child::run_child(&spec(request(&fifo2), &d2, Some(&server)), Tracking::None)
                });
                (tx, h.join().unwrap())
            });
            (r, server)
        });
        // Wait for the server's child to block on the fifo: its setup is over.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (server_pid, child) = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no child"
            );
            let found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                let (_, rest) = stat.rsplit_once(") ")?;
                let f: Vec<&str> = rest.split_whitespace().collect();
                let parent: u32 = f.get(1)?.parse().ok()?;
                let comm = std::fs::read_to_string(format!("/proc/{parent}/cmdline")).ok()?;
                // Blocked in `openat` (system call 257): past its setup.
                let call = std::fs::read_to_string(e.path().join("syscall")).unwrap_or_default();
                (comm.starts_with("nexusmon-forkserver")
                    && f[0] == "S"
                    && call.starts_with(&format!("{} ", libc::SYS_openat))
                    && std::fs::read_link(e.path().join("cwd")).ok()? == d)
                    .then_some((parent, pid))
            });
            if let Some(f) = found {
                break f;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let pinned = set.contains(&cpu);
        // A round a pinned child would fail: the server on one CPU of several.
        pinned_rounds += usize::from(pinned && set.len() > 1);
        let expect_server = if pinned {
            cpu.to_string()
        } else {
            cpu_list(&set)
        };
        assert_eq!(
            cpus_of(server_pid),
            expect_server,
            "round {round}: the server"
        );
        assert_eq!(cpus_of(child), cpu_list(&set), "round {round}: the child");
        // Let the child read and end.
        std::fs::write(&fifo, "x").unwrap();
        let ((_, r), server) = worker.join().unwrap();
        assert_eq!(r.ended, Ended::Exited(0), "round {round}: {r:?}");
        assert!(
            helper::parse_line(&r.stdout.kept).is_some(),
            "round {round}"
        );
        assert!(!server.is_broken());
    }
    if allowed.len() > 1 {
        assert!(
            pinned_rounds > 1,
            "the generator pins some servers to one CPU of several"
        );
    }
}

/// The stand-in for a fork server in the test below: a single-threaded process (perl) that
/// enters the init's PID namespace (its pidfd is descriptor 3), starts the case's script as
/// its child there, prints the child's pid, waits until it has exited without reaping it
/// (`waitid(WEXITED | WNOWAIT)`), prints `exited`, and at the end of its stdin reaps every
/// child it has and exits: what the server does with the child the runner checks.
const STAND_IN: &str = r#"
$| = 1;
syscall(308, 3, 0x20000000) == 0 or die "setns: $!";
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    open STDOUT, ">/dev/null";
    exec "/bin/sh", "-c", $ARGV[0];
    exit 127;
}
print "$pid\n";
my $info = "\0" x 128;
syscall(247, 1, $pid, $info, 4 | 0x01000000, 0) == 0 or die "waitid: $!";
print "exited\n";
my $rest = <STDIN>;
1 while waitpid(-1, 0) > 0;
"#;

/// The fork server's `children` file in the leftover check of its children's shared PID
/// namespace (`ForkServer::children_file`, read by `NsInit::holds_nothing_but` before the
/// namespace is listed). First the real server: each of its clean children (generated
/// probes, told by their end within the hold or started and ended in two replies) is
/// called clean by the two files, as by the listing, so the cheap check is the one taken. Then, since a probe's
/// child cannot run what a hostile one would, a stand-in server ([`STAND_IN`]: a
/// single-threaded process whose child the case's script is) with generated leftovers: a
/// background process (re-parented to the init), `setsid`, a double fork, a sibling
/// started with `CLONE_PARENT` (the server's child, not the init's), one that starts a
/// process and exits at once (a zombie of the server; its child the init's), a nested PID
/// namespace, a move to another cgroup; checked at once after the child's exit or a
/// generated moment later. Whenever anything is left the check says no (and so does the
/// listing); when nothing is, both say yes.
#[test]
fn a_servers_children_file_never_calls_a_namespace_with_leftovers_clean() {
    use nexusmon::exec::forkserver::LaunchSpec;
    use nexusmon::exec::zygote::{SharedNs, Zygote};
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let runner = root_with_sys_admin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zygote = Zygote::start(&bin()).unwrap();
    let ns = SharedNs::default();
    let iso = util::isolation(&runner, d, 0, false, 0, true);
    let mut rng = Rng(0x5E4_C41D);
    // The real server's clean children.
    let server = ForkServer::start(&bin()).unwrap();
    let files = server.children_file().expect("the server's children file");
    for step in 0..30 {
        let target = d.join(format!("t{}", rng.below(3u8)));
        if rng.chance(50) {
            std::fs::write(&target, "x").unwrap();
        }
        let init = ns.get(&zygote).unwrap();
        let args = request(&target);
        let env = vec![("HOME".to_string(), d.to_string_lossy().into_owned())];
        let launched = server
            .launch(&LaunchSpec {
                args: &args,
                env: &env,
                cwd: Some(d),
                clean: true,
                isolation: Some(&iso),
                cgroup_fd: None,
                ns_init: Some(&init),
                ns_mounts: init.proc_mounted(),
                hold_ms: *rng.pick(&[0, 20]),
            })
            .unwrap();
        let end = server.exited(launched.pid, false).unwrap();
        let what = format!("step {step}: {end:?}");
        assert!(libc::WIFEXITED(end.status), "{what}");
        let pid = u32::try_from(launched.pid).unwrap();
        assert!(init.holds_nothing_but(files, pid), "{what}");
        assert_eq!(init.holds_only_the_child(), Some(true), "{what}");
    }
    drop(server);
    // A stand-in server's children, leaving something behind or not.
    let mut cases = util::LeftoverCases::default();
    for case in 0..40 {
        let this = cases.next(&mut rng);
        let init = ns.get(&zygote).unwrap();
        let pidfd = init.pidfd();
        let mut cmd = std::process::Command::new("perl");
        cmd.args(["-e", STAND_IN, &this.script])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        // SAFETY: dup2 and fcntl (async-signal-safe) of a descriptor this process holds.
        unsafe {
            cmd.pre_exec(move || {
                // The pidfd may be descriptor 3 already (another test's descriptors come and
                // go): `dup2` onto itself keeps its close-on-exec, so clear it instead.
                let ok = if pidfd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(pidfd, 3) == 3
                };
                if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut stand_in = cmd.spawn().unwrap();
        let children = forkserver::children_file_of(stand_in.id()).expect("its children file");
        let mut out = std::io::BufReader::new(stand_in.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let pid: u32 = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "exited\n", "case {case}");
        let what = cases.judge(&mut rng, case, &this, &init, children.as_raw_fd(), pid);
        // The stand-in reaps its child and what it holds of the namespace (killed with it).
        let mut stdin = stand_in.stdin.take().unwrap();
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        assert!(stand_in.wait().unwrap().success(), "{what}");
        if this.left {
            init.wait_gone(2000);
        }
    }
    cases.assert_covered();
}
