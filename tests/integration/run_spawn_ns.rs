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

use crate::util::Rng;

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
