//! Which mount namespace a child runs in (issue 16): a child that mounts nothing of its own
//! and can never change a mount (no `CAP_SYS_ADMIN` kept) stays in its worker's prepared
//! namespace (`Isolation::stays_in_prepared_mounts`) instead of a private copy, whose
//! teardown costs every child a grace period; every other child keeps a copy of its own.
//! Generated profiles (kept capabilities with and without `sys-admin`, identities) and
//! probes (with and without read-only inputs) on one worker: every child mounts a tmpfs if
//! it can, and no child ever sees another child's mount.

use serde_json::{Value, json};

use crate::run::bundle;
use crate::util::{Test, results};

/// What one child printed: its mount namespace's inode, how many of the probes' mounts it
/// saw, whether its own mount succeeded.
fn parse(out: &str) -> (u64, u32, bool) {
    let mut lines = out.lines();
    let ns = lines.next().and_then(|l| l.trim().parse().ok());
    let seen = lines.next().and_then(|l| l.trim().parse().ok());
    let (Some(ns), Some(seen)) = (ns, seen) else {
        panic!("unexpected child output: {out:?}");
    };
    (ns, seen, lines.any(|l| l == "mounted"))
}

#[test]
fn a_child_that_cannot_mount_shares_its_workers_mount_namespace_and_no_child_sees_another_childs_mount()
 {
    // The probe: its namespace, the probes' mounts it sees, then a mount of its own.
    let script = "stat -L -c %i /proc/self/ns/mnt; grep -c nx-mark /proc/self/mountinfo; \
                  mount -t tmpfs nx-mark ${SCRATCH} 2>/dev/null && echo mounted; exit 0";
    let probe = |reads: bool| {
        let mut p = json!({"operation": "exec", "driver": "exec", "timeout_ms": 10000,
                           "argv": ["/bin/sh", "-c", script]});
        if reads {
            p["reads"] = json!(["/etc/hostname"]);
        }
        p
    };
    let mut state = 0x6d6f_756e_745f_6e73_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let caps = ["sys-admin", "net-bind-service", "chown", "dac-override"];
    let mut profiles = serde_json::Map::new();
    let mut sys_admin = std::collections::BTreeMap::new();
    for i in 0..10 {
        let mut kept: Vec<&str> = caps.iter().copied().filter(|_| next() % 3 == 0).collect();
        // At least one profile of each kind.
        match i {
            0 if !kept.contains(&"sys-admin") => kept.push("sys-admin"),
            1 => kept.retain(|c| *c != "sys-admin"),
            _ => {}
        }
        let mut p = json!({"description": "generated", "capabilities": kept});
        if next() % 3 == 0 {
            p["identity"] = json!({"uid": 65534, "gid": 65534});
        }
        sys_admin.insert(format!("g{i}"), kept.contains(&"sys-admin"));
        profiles.insert(format!("g{i}"), p);
    }
    let scenarios: serde_json::Map<String, Value> = profiles
        .keys()
        .map(|p| (p.clone(), json!({"look": "allow", "look-reads": "allow"})))
        .collect();
    let t = Test::new()
        .registry(
            "mt",
            json!({"look": probe(false), "look-reads": probe(true)}),
            Value::Object(profiles),
        )
        .write(
            "plans/mt/plan.json",
            &json!({"schema_version": 1, "plan_id": "mt", "kind": "experiment",
                    "registry_id": "mt", "profiles": sys_admin.keys().collect::<Vec<_>>(),
                    "scenarios": scenarios})
            .to_string(),
        );
    let out = t.path().join("out").to_string_lossy().into_owned();
    // One worker: every child of the run in one shared PID namespace, one after the other.
    let t = t.args([
        "run",
        "--plan",
        "plans/mt/plan.json",
        "--out",
        &out,
        "--channel",
        "clean",
        "--jobs",
        "1",
    ]);
    let r = t.run();
    r.code(0);
    let b = bundle(&t);
    let runner_ns = std::fs::metadata("/proc/self/ns/mnt")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let mut shared = std::collections::BTreeSet::new();
    let mut own = Vec::new();
    for (file, lane) in [
        ("runtime_results.jsonl", "scenario"),
        ("baseline_results.jsonl", "baseline"),
    ] {
        for o in results(&b, file).as_array().unwrap() {
            let sid = o["scenario_id"].as_str().unwrap();
            let (profile, probe) = sid.split_once(':').unwrap();
            assert_eq!(o["isolation"]["pid_namespace"], true, "{o:#}");
            let log = o["stdout"]["log"]
                .as_str()
                .unwrap_or_else(|| panic!("{o:#}"));
            let (ns, seen, mounted) = parse(&std::fs::read_to_string(b.join(log)).unwrap());
            // No child ever sees a mount another child made.
            assert_eq!(seen, 0, "{lane} {sid} saw another child's mount");
            // Only a child that keeps CAP_SYS_ADMIN can mount at all, and not in the
            // baseline, whose read-only host is then a Landlock ruleset too (which forbids
            // changing mounts).
            assert_eq!(
                mounted,
                sys_admin[profile] && lane == "scenario",
                "{lane} {sid}"
            );
            assert_ne!(
                ns, runner_ns,
                "{lane} {sid} runs in the runner's mount namespace"
            );
            // The baseline keeps the host read-only and `reads` are bound read-only: both
            // are mounts of the child's own; and a child that can mount gets its own copy.
            let stays = lane == "scenario" && probe == "look" && !sys_admin[profile];
            if stays {
                shared.insert(ns);
            } else {
                own.push((format!("{lane} {sid}"), ns));
            }
        }
    }
    assert_eq!(
        shared.len(),
        1,
        "children that cannot mount share one namespace: {shared:?}"
    );
    for (who, ns) in own {
        assert!(!shared.contains(&ns), "{who} is in the shared namespace");
    }
}

/// The read-only host of the exec baseline, attacked (issue 16): a baseline child has no
/// profile's Landlock domain, so only its private mount namespace (every mount read-only
/// but its own scratch directory; with a Landlock ruleset to the same effect when it keeps
/// `CAP_SYS_ADMIN`, which could remount) keeps it from other children's files. Generated
/// profiles (kept capabilities, `sys-admin` in one, identities) × probes, on two workers;
/// every child tries, each in a generated order, to write into its own scratch (must
/// work), the scratch root, its lane's directory, every other probe's and profile's
/// scratch directory (created first, the next child's among them), the scenario lane's,
/// `/dev/shm`; to plant a symlink where a later child's directory goes; to mount; some
/// leave a process behind; and some hand descriptors of their `/` and their scratch
/// directory to an accomplice outside (this test, over an abstract socket), which keeps
/// trying, for as long as the run lasts, to create files through them in every other
/// child's scratch directory. A namespace shared by consecutive children would let a
/// descriptor of one child's `/` reach the next child's writable scratch; a private one
/// reaches only the donor's own. Afterwards no planted file exists anywhere, every child
/// saw only its PID namespace's init and itself, and every process left behind was
/// recorded and is gone.
#[test]
fn a_baseline_child_cannot_plant_files_in_another_childs_scratch_directory() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};

    let seed = std::env::var("NEXUSMON_MOUNT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5c7a_7c11_u64);
    let mut rng = crate::util::Rng(seed);
    let n_profiles = 3;
    let n_probes = 5;
    let profiles: Vec<String> = (0..n_profiles).map(|i| format!("g{i}")).collect();
    let probes: Vec<String> = (0..n_probes).map(|i| format!("q{i}")).collect();
    let sock_name = format!("nx-accomplice-{}-{seed:x}", std::process::id());
    let leave_marker = format!("37.{}", seed % 1000);
    // The attacks of one probe, in a generated order. `S` is its scratch directory.
    // The donors' sender (the clean channel has no PATH).
    let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("python3 (scripts/test installs it) sends the donors' descriptors");
    let mut leavers = std::collections::BTreeSet::new();
    let mut donors = 0;
    let mut script = |rng: &mut crate::util::Rng, profile: &str, probe: &str| -> String {
        // The first child always does both, so every seed tests both.
        let first = profile == "g0" && probe == "q0";
        // Its scratch directory is its HOME (the clean channel).
        let s = "$S";
        let mut attacks: Vec<String> = vec![
            format!("t own 'echo x > {s}/own'"),
            format!("t root 'echo x > {s}/../../../planted-root'"),
            format!("t lane 'echo x > {s}/../../planted-lane'"),
            format!("t shm 'echo x > $D/planted-{sock_name}-{profile}-{probe}'"),
            format!(
                "t scenario 'mkdir -p {s}/../../../scenario/{profile}/{profile}-{probe}.a1 && echo x > {s}/../../../scenario/{profile}/{profile}-{probe}.a1/planted-lane'"
            ),
            format!("t mount 'mount -t tmpfs nx-mark {s}/..'"),
            format!(
                "t remount 'mount -o remount,bind,rw {s}/.. && echo x > {s}/../planted-remount'"
            ),
        ];
        for o in probes.iter().filter(|o| *o != probe) {
            let sib = format!("{s}/../{profile}-{o}.a1");
            attacks.push(format!(
                "t sib-{o} 'mkdir -p {sib} && echo x > {sib}/planted-sibling'"
            ));
            attacks.push(format!("t link-{o} 'ln -s $E {sib}/etc-link'"));
        }
        for p in profiles.iter().filter(|p| *p != profile) {
            let other = format!("{s}/../../{p}/{p}-{probe}.a1");
            attacks.push(format!(
                "t prof-{p} 'mkdir -p {other} && echo x > {other}/planted-profile'"
            ));
        }
        for i in (1..attacks.len()).rev() {
            attacks.swap(i, rng.below(i + 1));
        }
        let mut body = vec![
            "t() { if eval \"$2\" 2>/dev/null; then echo \"R $1 ok\"; else echo \"R $1 fail\"; fi; }".to_string(),
            "S=\"$HOME\"; D=/dev/shm; E=/etc".to_string(),
            // Before anything of its own: what its PID namespace holds.
            "set -- /proc/[0-9]*; echo \"PROCS $#\"".to_string(),
        ];
        body.extend(attacks);
        body.push("echo \"MOUNTS $(grep -c nx-mark /proc/self/mountinfo)\"".to_string());
        if rng.chance(50) || first {
            donors += 1;
            body.push(format!(
                "{python} -c \"import os,socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); h=os.environ['HOME']; s.connect('\\0{sock_name}'); socket.send_fds(s, [h.encode()], [os.open('/', os.O_PATH), os.open(h, os.O_PATH)])\" && echo 'R leak ok'"
            ));
        }
        if rng.chance(30) || first {
            leavers.insert(format!("{profile}:{profile}-{probe}"));
            body.push(format!("setsid sleep {leave_marker} >/dev/null 2>&1 &"));
        }
        body.push("exit 0".to_string());
        body.join("\n")
    };
    let mut registry_probes = serde_json::Map::new();
    let mut scenarios = serde_json::Map::new();
    let mut registry_profiles = serde_json::Map::new();
    let mut sys_admin = std::collections::BTreeSet::new();
    for profile in &profiles {
        let mut caps: Vec<&str> = [
            "dac-override",
            "chown",
            "fowner",
            "net-bind-service",
            "sys-admin",
        ]
        .into_iter()
        .filter(|_| rng.chance(40))
        .collect();
        // One profile keeps CAP_SYS_ADMIN (which could remount the host writable), one
        // does not.
        match profile.as_str() {
            "g0" if !caps.contains(&"sys-admin") => caps.push("sys-admin"),
            "g1" => caps.retain(|c| *c != "sys-admin"),
            _ => {}
        }
        if caps.contains(&"sys-admin") {
            sys_admin.insert(profile.clone());
        }
        let mut p = json!({"description": "generated", "capabilities": caps});
        if rng.chance(40) {
            p["identity"] = json!({"uid": 65534, "gid": 65534});
        }
        registry_profiles.insert(profile.clone(), p);
        let mut row = serde_json::Map::new();
        for probe in &probes {
            let id = format!("{profile}-{probe}");
            registry_probes.insert(
                id.clone(),
                // The script is a fixture (lint checks argv for host paths, NX221; the
                // attacks name them on purpose).
                json!({"operation": "exec", "driver": "exec", "timeout_ms": 20000,
                       "fixtures": [{"kind": "file", "path": "${SCRATCH}/attack.sh",
                                     "content": script(&mut rng, profile, probe)}],
                       "argv": ["/bin/sh", "${SCRATCH}/attack.sh"]}),
            );
            row.insert(id, json!("allow"));
        }
        scenarios.insert(profile.clone(), Value::Object(row));
    }
    let t = Test::new()
        .registry(
            "mt",
            Value::Object(registry_probes),
            Value::Object(registry_profiles),
        )
        .write(
            "plans/mt/plan.json",
            &json!({"schema_version": 1, "plan_id": "mt", "kind": "experiment",
                    "registry_id": "mt", "profiles": profiles, "scenarios": scenarios,
                    "lanes": {"baseline": true, "scenario": false, "oracle": false}})
            .to_string(),
        );
    let out = t.path().join("out").to_string_lossy().into_owned();
    let t = t.args([
        "run",
        "--plan",
        "plans/mt/plan.json",
        "--out",
        &out,
        "--channel",
        "clean",
        "--jobs",
        "2",
        "--keep-scratch",
    ]);

    // The accomplice: receives descriptors from children and, until the run ends, tries
    // to create a file through each of them in every other child's scratch directory.
    let sock = std::os::unix::net::UnixDatagram::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            sock_name.as_bytes(),
        )
        .unwrap(),
    )
    .unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(20)))
        .unwrap();
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let accomplice = {
        let done = done.clone();
        let targets: Vec<String> = profiles
            .iter()
            .flat_map(|p| {
                probes
                    .iter()
                    .map(move |q| format!("baseline/{p}/{p}-{q}.a1"))
            })
            .collect();
        std::thread::spawn(move || {
            // (donor's scratch directory, its `/`, its scratch directory)
            let mut held: Vec<(String, OwnedFd, OwnedFd)> = Vec::new();
            let mut received = 0;
            while !done.load(Ordering::SeqCst) {
                let mut data = [0u8; 4096];
                let mut cmsg = [0u64; 8];
                let mut iov = libc::iovec {
                    iov_base: data.as_mut_ptr().cast(),
                    iov_len: data.len(),
                };
                // SAFETY: zeroed plain data, then pointed at the buffers above.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = &raw mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cmsg.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&cmsg);
                // SAFETY: recvmsg into the buffers above.
                let n = unsafe {
                    libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC)
                };
                if n > 0 {
                    // SAFETY: walking the control messages the kernel filled.
                    let fds: Vec<OwnedFd> = unsafe {
                        let mut fds = Vec::new();
                        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
                        while !c.is_null() {
                            if (*c).cmsg_level == libc::SOL_SOCKET
                                && (*c).cmsg_type == libc::SCM_RIGHTS
                            {
                                let count =
                                    ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                                let p = libc::CMSG_DATA(c);
                                for i in 0..count {
                                    let fd = p.add(4 * i).cast::<i32>().read_unaligned();
                                    fds.push(OwnedFd::from_raw_fd(fd));
                                }
                            }
                            c = libc::CMSG_NXTHDR(&raw const msg, c);
                        }
                        fds
                    };
                    let n = usize::try_from(n).unwrap();
                    let donor = String::from_utf8_lossy(&data[..n]).into_owned();
                    let mut fds = fds.into_iter();
                    if let (Some(root), Some(own)) = (fds.next(), fds.next()) {
                        held.push((donor, root, own));
                        received += 1;
                    }
                }
                for (donor, root, own) in &held {
                    let scratch_root = std::path::Path::new(donor)
                        .ancestors()
                        .nth(3)
                        .unwrap()
                        .to_string_lossy()
                        .trim_start_matches('/')
                        .to_string();
                    for target in &targets {
                        if donor.ends_with(target.as_str()) {
                            continue;
                        }
                        for (fd, rel) in [
                            (
                                root,
                                format!("{scratch_root}/{target}/planted-by-descriptor"),
                            ),
                            (own, format!("../../../{target}/planted-by-descriptor")),
                        ] {
                            let c = std::ffi::CString::new(rel).unwrap();
                            // SAFETY: openat on a received descriptor; closed at once.
                            let f = unsafe {
                                libc::openat(
                                    fd.as_raw_fd(),
                                    c.as_ptr(),
                                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                                    0o644,
                                )
                            };
                            if f >= 0 {
                                // SAFETY: our descriptor.
                                unsafe { libc::close(f) };
                            }
                        }
                    }
                }
            }
            received
        })
    };
    let r = t.run();
    done.store(true, Ordering::SeqCst);
    let received = accomplice.join().unwrap();
    assert!(r.status == 0 || r.status == 1, "{}", r.stderr);
    let b = bundle(&t);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(b.join("run_manifest.json")).unwrap()).unwrap();
    let scratch = std::path::PathBuf::from(manifest["scratch"].as_str().unwrap());
    let observations = results(&b, "baseline_results.jsonl");
    let observations = observations.as_array().unwrap();
    assert_eq!(observations.len(), n_profiles * n_probes);
    let mut senders = 0;
    let mut stderr = String::new();
    for o in observations {
        let sid = o["scenario_id"].as_str().unwrap();
        let (profile, _) = sid.split_once(':').unwrap();
        let how = if sys_admin.contains(profile) {
            "mount-namespace+landlock"
        } else {
            "mount-namespace"
        };
        assert_eq!(o["isolation"]["host_read_only"], how, "{o:#}");
        let log = o["stdout"]["log"]
            .as_str()
            .unwrap_or_else(|| panic!("{sid}: no output {o:#}"));
        let text = std::fs::read_to_string(b.join(log)).unwrap();
        if let Some(err) = o["stderr"]["log"].as_str() {
            stderr.push_str(&std::fs::read_to_string(b.join(err)).unwrap());
        }
        let mut results = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("R ") {
                results += 1;
                let (what, how) = rest.split_once(' ').unwrap();
                let want = if what == "own" || what == "leak" {
                    "ok"
                } else {
                    "fail"
                };
                assert_eq!(how, want, "{sid}: `{what}` ({seed:#x})\n{text}");
                if what == "leak" {
                    senders += 1;
                }
            } else if let Some(n) = line.strip_prefix("PROCS ") {
                // Its namespace's init and itself: nothing of an earlier child.
                assert_eq!(
                    n, "2",
                    "{sid} saw another child's process ({seed:#x})\n{text}"
                );
            } else if let Some(n) = line.strip_prefix("MOUNTS ") {
                assert_eq!(n, "0", "{sid} saw a mount ({seed:#x})");
            }
        }
        assert!(results > 8, "{sid}: {text}");
        if leavers.contains(sid) {
            let leaked = o["leaked"].as_array().unwrap();
            // Named `sh` or `sleep`: whichever it was when it was found.
            assert!(
                !leaked.is_empty(),
                "{sid} left a process that was not recorded: {o:#}"
            );
        }
    }
    assert_eq!(
        senders, donors,
        "every donor sent its descriptors\n{stderr}"
    );
    assert_eq!(
        received, donors,
        "every descriptor sent reached the accomplice"
    );
    // Nothing planted anywhere in the scratch tree; every child's own file is there.
    let mut planted = Vec::new();
    let mut own = 0;
    let mut stack = vec![scratch.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if name.starts_with("planted") || name == "etc-link" {
                planted.push(e.path());
            } else if name == "own" {
                own += 1;
            }
        }
    }
    assert!(planted.is_empty(), "planted ({seed:#x}): {planted:?}");
    assert_eq!(own, n_profiles * n_probes);
    assert!(
        std::fs::read_dir("/dev/shm").unwrap().flatten().all(|e| !e
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("planted-{sock_name}"))),
        "a child wrote into /dev/shm"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("nx-mark"),
        "a child's mount reached the host"
    );
    // Every process left behind is gone.
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&format!("sleep {leave_marker}")),
            "left behind and alive: {cmdline}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
