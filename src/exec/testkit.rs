//! Test helpers shared by the stage files' unit tests: a scripted fake executor and
//! scenario, task, verdict and assembly-context builders.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::assemble::AssembleCtx;
use super::seam::{LaneAttempt, ProbeExecutor, ScenarioRun};
use crate::load::ScenarioSpec;
use crate::load::mission::TaskMeta;
use crate::model::Id;
use crate::model::plan::Expectation;
use crate::model::registry::{Driver, Operation, Probe};
use crate::model::results::{
    Attempt, ChannelKind, Lane, OracleDecision, OracleVerdict, Outcome, Stage, TimeoutSetting,
    TimeoutSource,
};
use crate::util::digest::Digest;

/// A fake executor: outcomes scripted per (scenario, lane, attempt).
pub struct Fake {
    pub script: BTreeMap<(String, Lane), Vec<Outcome>>,
    pub calls: Mutex<Vec<(String, Lane, u32)>>,
}

impl ProbeExecutor for Fake {
    fn observe(&self, sc: &ScenarioRun, lane: Lane, attempt: u32) -> LaneAttempt {
        self.calls
            .lock()
            .unwrap()
            .push((sc.spec.scenario_id.clone(), lane, attempt));
        let outs = &self.script[&(sc.spec.scenario_id.clone(), lane)];
        let o = outs[(attempt as usize - 1).min(outs.len() - 1)];
        let mut a = Attempt::without_child(o, Stage::Operation, format!("fake {}", o.as_str()));
        if o == Outcome::Deny {
            a.errno = Some(libc::EACCES);
            a.errno_name = Some("EACCES".into());
        }
        a.rusage.wall_us = 100;
        a.rusage.max_rss_kib = 10 * u64::from(attempt);
        LaneAttempt {
            attempt: a,
            target: sc.probe.target.clone(),
            argv: Vec::new(),
        }
    }
}

/// A builtin `file-read` scenario `<profile>:<probe>`.
pub fn scenario(profile: &str, probe: &str, expected: Expectation) -> ScenarioRun {
    ScenarioRun {
        spec: ScenarioSpec {
            scenario_id: format!("{profile}:{probe}"),
            profile_id: Id::new(profile).unwrap(),
            probe_id: Id::new(probe).unwrap(),
            expected,
            control: false,
        },
        probe: std::sync::Arc::new(Probe {
            operation: Operation::FileRead,
            target: Some("/etc/hostname".into()),
            destination: None,
            driver: Driver::Builtin,
            argv: None,
            allow_exit_codes: None,
            deny_exit_codes: None,
            timeout_ms: None,
            fixtures: Vec::new(),
            reads: Vec::new(),
            notes: None,
            tags: Vec::new(),
        }),
        timeout: TimeoutSetting {
            ms: 1000,
            source: TimeoutSource::Default,
            kill_grace_ms: 500,
        },
        task: None,
        worker: None,
    }
}

/// A verdict of `d` for `sc`.
pub fn verdict(sc: &ScenarioRun, d: OracleDecision) -> OracleVerdict {
    OracleVerdict {
        scenario_id: sc.spec.scenario_id.clone(),
        profile_id: sc.spec.profile_id.to_string(),
        probe_id: sc.spec.probe_id.to_string(),
        operation: sc.probe.operation,
        decision: d,
        reason: format!("fake {}", d.as_str()),
        rule: crate::model::results::CitedRule {
            kind: "absent".into(),
            index: None,
            path: None,
            resolved_path: None,
            access: Vec::new(),
            port: None,
        },
        checks: Vec::new(),
        blockers: Vec::new(),
        notes: Vec::new(),
    }
}

/// An assembly context for run `r1`.
pub fn ctx() -> AssembleCtx {
    AssembleCtx {
        run_id: "r1".into(),
        plan_id: "p".into(),
        plan_digest: Digest::blake3_of(b"x"),
        channel: ChannelKind::Clean,
        fail_on_flaky: true,
        wall_us: 1,
        runner_max_rss_kib: 1,
        layers: Vec::new(),
        max_parallel: 1,
        interrupted: None,
    }
}

/// A mission task (expecting `allow`) depending on `deps`.
pub fn task(profile: &str, probe: &str, id: &str, deps: &[&str]) -> ScenarioRun {
    let mut sc = scenario(profile, probe, Expectation::Allow);
    sc.task = Some(Box::new(TaskMeta {
        task_id: id.into(),
        depends_on: deps.iter().map(ToString::to_string).collect(),
        worker: None,
    }));
    sc
}
