//! The exec driver's PID namespace per child (`exec::child`'s `EnteredPidNs`): a spawner
//! thread stays in the namespace of the last init it cloned a child for, so every child
//! must still be born exactly in the namespace its spec names — another worker's, a
//! replacement for a killed init, a one-child init, or none (the runner's own) — whichever
//! thread (a spawner, or the calling thread for a child that keeps the whole bounding set)
//! clones it, in any order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nexusmon::exec::child::{self, ChildSpec, Ended, Tracking};
use nexusmon::exec::zygote::{NsInit, SharedNs, Zygote};
use nexusmon::sandbox::privilege::RunnerPrivileges;

use crate::util::{self, Rng};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nexusmon"))
}

fn ns_of(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Generated sequences of exec children, each naming one of two workers' shared
/// namespaces, a fresh one-child init, a shared namespace whose init was just killed (so
/// replaced), or none; keeping nothing, one capability (both cloned by a spawner thread)
/// or the whole bounding set (cloned by the calling thread, which enters and leaves around
/// each clone). Each child reads its own `/proc/self/ns/pid`: it is the named init's
/// namespace, or the runner's.
#[test]
fn each_exec_child_is_born_in_the_pid_namespace_its_spec_names() {
    let runner = RunnerPrivileges::current();
    assert!(
        runner.euid == 0 && runner.effective & (1 << 21) != 0,
        "this test needs root with CAP_SYS_ADMIN (namespaces, setns into the init's)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zygote = Zygote::start(&bin()).unwrap();
    let (one, two) = (SharedNs::default(), SharedNs::default());
    let own = ns_of("self");
    for seed in [0x5EA_B0A7_u64, 0x0BAD_5EED] {
        let mut rng = Rng(seed);
        for round in 0..30 {
            let init: Option<Arc<NsInit>> = match rng.below(5u8) {
                0 => None,
                1 => Some(one.get(&zygote).unwrap()),
                2 => Some(two.get(&zygote).unwrap()),
                3 => Some(Arc::new(zygote.new_init().unwrap())),
                _ => {
                    let old = one.get(&zygote).unwrap();
                    old.kill();
                    old.wait_gone(1000);
                    Some(one.get(&zygote).unwrap())
                }
            };
            let kept = match rng.below(3u8) {
                0 => 0,
                1 => runner.bounding & (1 << 10),
                _ => runner.bounding,
            };
            let want = init
                .as_ref()
                .map_or_else(|| own.clone(), |i| ns_of(&i.pid().to_string()));
            let spec = ChildSpec {
                program: PathBuf::from("/bin/sh"),
                args: vec!["-c".into(), "exec readlink /proc/self/ns/pid".into()],
                arg0: None,
                env: Some(vec![("PATH".into(), "/usr/bin:/bin".into())]),
                cwd: Some(d.to_path_buf()),
                clean: true,
                pre_exec: None,
                isolation: Some(crate::util::isolation(
                    &runner,
                    d,
                    0,
                    false,
                    kept,
                    init.is_some(),
                )),
                ns_init: init.clone(),
                timeout: Duration::from_secs(10),
                grace: Duration::from_millis(200),
                output_cap: 4096,
                stdin: None,
                server: None,
            };
            let r = child::run_child(&spec, Tracking::None);
            let why = format!("seed {seed:#x} round {round} kept {kept:#x}: {r:?}");
            assert_eq!(r.ended, Ended::Exited(0), "{why}");
            assert!(r.leaked.is_empty(), "{why}");
            let got = String::from_utf8_lossy(&r.stdout.kept);
            assert_eq!(got.trim(), want, "{why}");
        }
    }
}

/// The processes whose parent is the calling thread (its `/proc/thread-self/children`).
fn own_children() -> Vec<i32> {
    std::fs::read_to_string("/proc/thread-self/children")
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// `NsInit::holds_nothing_but` (the two `children` files an exec child's leftover check
/// reads before it lists the namespace) against what is really left: generated children of
/// a shared namespace, cloned by this thread as the exec driver's worker clones them,
/// leaving nothing or some of a background process (re-parented to the init), a double
/// fork, `setsid`, a sibling started with `CLONE_PARENT` (this thread's child, not the
/// init's), one such sibling that starts a process and exits at once (it becomes a zombie
/// of this thread and its child the init's), a nested PID namespace, a process that moves
/// to another cgroup; checked at once after the child's exit or a generated moment later.
/// Whenever anything is left the check says no (and so does the listing); when nothing is,
/// both say yes. Either read skipped fails a case.
#[test]
fn the_children_files_never_call_a_namespace_with_leftovers_clean() {
    let runner = RunnerPrivileges::current();
    assert!(
        runner.euid == 0 && runner.effective & (1 << 21) != 0,
        "this test needs root with CAP_SYS_ADMIN (setns into the init's namespace)"
    );
    // The zygote is this thread's child: the children are cloned by another thread (as a
    // worker clones them), whose only children are they.
    let zygote = Zygote::start(&bin()).unwrap();
    std::thread::scope(|s| s.spawn(|| clone_and_check(&zygote)).join().unwrap());
}

fn clone_and_check(zygote: &Zygote) {
    use std::os::unix::process::CommandExt;
    let ns = SharedNs::default();
    let own = std::fs::File::open("/proc/thread-self/ns/pid").unwrap();
    let parent_children = std::fs::File::open("/proc/thread-self/children").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&parent_children);
    let mut rng = Rng(0xC41D_F11E5);
    let mut cases = util::LeftoverCases::default();
    for case in 0..40 {
        let this = cases.next(&mut rng);
        let init = ns.get(zygote).unwrap();
        // Born in the init's namespace, as the exec driver's clone is; this thread's
        // children are born in its own again before anything else is started.
        // SAFETY: setns on descriptors we hold.
        assert_eq!(unsafe { libc::setns(init.pidfd(), libc::CLONE_NEWPID) }, 0);
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", &this.script])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn();
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&own), libc::CLONE_NEWPID) },
            0
        );
        let child = child.unwrap();
        let pid = child.id();
        drop(child);
        // Until it exited (a zombie, not reaped).
        // SAFETY: zeroed plain data filled by waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child, leaving it unreaped.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(rc, 0);
        let what = cases.judge(&mut rng, case, &this, &init, fd, pid);
        // Reap the child and what this thread holds of the namespace (killed with it).
        for p in own_children() {
            let mut st = 0;
            // SAFETY: reaping our own children.
            unsafe { libc::waitpid(p, &raw mut st, 0) };
        }
        if this.left {
            init.wait_gone(2000);
        }
        assert!(own_children().is_empty(), "{what}");
    }
    cases.assert_covered();
}
