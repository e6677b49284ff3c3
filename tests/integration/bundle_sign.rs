//! Signed bundles: `run --sign-with KEY` writes `artifact_index.sig` (stock
//! `ssh-keygen -Y verify -n nexusmon-bundle-v1` accepts it) and `bundle.intoto.json` (a DSSE
//! envelope the Python `securesystemslib` verifies); `validate-bundle --trust`,
//! `emit-promotion`, `promote` and `evolve` check the signer against the trust file; a trust
//! file that says `require-signed-bundles` refuses unsigned and wrongly signed bundles; a
//! key that cannot sign is an input error before anything runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Project, latest_bundle, python, ssh_keygen, ssh_pubkey};

const QUICKSTART: &str = "plans/quickstart/plan.json";

/// The DSSE check: the envelope verifies with the key (in the scheme of its type), keyid
/// the OpenSSH fingerprint, and its Statement's subject is the index.
const DSSE_CHECK: &str = r#"
import base64, hashlib, json, struct, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

env_path, pub_path, index_path = sys.argv[1:4]
kt, b64 = open(pub_path).read().split()[:2]
blob = base64.b64decode(b64)
parts, rest = [], blob
while rest:
    n = struct.unpack(">I", rest[:4])[0]
    parts.append(rest[4:4 + n])
    rest = rest[4 + n:]
keyid = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
pem = lambda k: k.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
if kt == "ssh-ed25519":
    key = SSlibKey(keyid, "ed25519", "ed25519", {"public": parts[1].hex()})
elif kt == "ecdsa-sha2-nistp256":
    k = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), parts[2])
    key = SSlibKey(keyid, "ecdsa", "ecdsa-sha2-nistp256", {"public": pem(k)})
else:
    k = rsa.RSAPublicNumbers(int.from_bytes(parts[1], "big"), int.from_bytes(parts[2], "big"))
    key = SSlibKey(keyid, "rsa", "rsa-pkcs1v15-sha512", {"public": pem(k.public_key())})
raw = json.load(open(env_path))
env = Envelope.from_dict(raw)
verified = env.verify([key], 1)
assert list(verified) == [keyid], verified
statement = json.loads(base64.b64decode(raw["payload"]))
assert statement["_type"] == "https://in-toto.io/Statement/v1"
assert statement["predicateType"] == "https://nexusmon.dev/bundle/v1"
index = open(index_path, "rb").read()
assert statement["subject"] == [{"name": "artifact_index.json", "digest": {
    "blake3": statement["subject"][0]["digest"]["blake3"],
    "sha256": hashlib.sha256(index).hexdigest()}}], statement["subject"]
# A changed payload no longer verifies.
raw["payload"] = base64.b64encode(base64.b64decode(raw["payload"]) + b" ").decode()
try:
    Envelope.from_dict(raw).verify([key], 1)
    raise SystemExit("an edited payload verified")
except Exception as e:
    if isinstance(e, SystemExit):
        raise
print("ok", keyid)
"#;

use crate::util::runner_signer_line as line;

fn run_signed(p: &Project, key: &Path) -> PathBuf {
    p.nx(&[
        "run",
        "--plan",
        QUICKSTART,
        "--out",
        "out",
        "--sign-with",
        key.to_str().unwrap(),
    ])
    .code(0);
    latest_bundle(p.root())
}

#[test]
fn ssh_keygen_and_securesystemslib_verify_what_each_key_type_signs() {
    let p = Project::shipped();
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let key = ssh_keygen(p.root(), &format!("runner-{kind}"), kind);
        let b = run_signed(&p, &key);
        let signers = p.path(&format!("allowed-{kind}"));
        std::fs::write(
            &signers,
            line("ci", &key, "namespaces=\"nexusmon-bundle-v1\" "),
        )
        .unwrap();
        // Stock OpenSSH over the index's exact bytes, in the bundle namespace.
        let out = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(&signers)
            .args(["-I", "ci", "-n", "nexusmon-bundle-v1", "-s"])
            .arg(b.join("artifact_index.sig"))
            .stdin(std::fs::File::open(b.join("artifact_index.json")).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Another namespace is refused by ssh-keygen too.
        let wrong = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(&signers)
            .args(["-I", "ci", "-n", "nexusmon-approval-v1", "-s"])
            .arg(b.join("artifact_index.sig"))
            .stdin(std::fs::File::open(b.join("artifact_index.json")).unwrap())
            .output()
            .unwrap();
        assert!(!wrong.status.success(), "{kind}");
        // An independent DSSE implementation.
        let out = python(&["securesystemslib"], DSSE_CHECK)
            .arg(b.join("bundle.intoto.json"))
            .arg(format!("{}.pub", key.display()))
            .arg(b.join("artifact_index.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // And nexusmon itself, against the trust file.
        let r = p.nx(&[
            "validate-bundle",
            "--bundle",
            b.to_str().unwrap(),
            "--trust",
            signers.to_str().unwrap(),
        ]);
        r.code(0);
        assert!(
            r.stdout.contains("checked signature: verified"),
            "{}",
            r.stdout
        );
        let env: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.join("bundle.intoto.json")).unwrap()).unwrap();
        assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
        // Both documents match their published schemas.
        crate::bundle::assert_matches_schema(
            &b.join("bundle.intoto.json"),
            "bundle-envelope.schema.json",
        );
        let payload = p.path(&format!("statement-{kind}.json"));
        let out = python(&[], "import base64, json, sys\nsys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))['payload']))")
            .arg(b.join("bundle.intoto.json"))
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(&payload, &out.stdout).unwrap();
        crate::bundle::assert_matches_schema(&payload, "bundle-statement.schema.json");
        let st = crate::util::read_json(&payload);
        assert_eq!(
            st["predicate"]["run_id"],
            b.file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(st["predicate"]["runner"]["name"], "nexusmon");
        assert!(
            st["predicate"]["host"]["kernel_release"].is_string(),
            "{st}"
        );
    }
}

#[test]
fn the_trust_file_decides_whose_signature_counts_and_can_require_one() {
    let p = Project::shipped();
    let runner = ssh_keygen(p.root(), "runner", "ed25519");
    let other = ssh_keygen(p.root(), "other", "ed25519");
    let signed = run_signed(&p, &runner);
    let by_other = run_signed(&p, &other);
    p.nx(&["run", "--plan", QUICKSTART, "--out", "out"]).code(0);
    let unsigned = latest_bundle(p.root());
    let trust = p.path("trust");
    let check = |b: &Path, policy: &str| {
        std::fs::write(&trust, policy).unwrap();
        p.nx(&[
            "--json",
            "validate-bundle",
            "--bundle",
            b.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ])
    };
    let kinds = |r: &crate::util::Ran| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let require = "# nexusmon: require-signed-bundles\n";
    let runner_line = line("ci", &runner, "");
    // Without the policy line an unsigned bundle is fine; with it, it is not.
    check(&unsigned, &runner_line).code(0);
    let r = check(&unsigned, &format!("{require}{runner_line}"));
    r.code(1);
    assert_eq!(kinds(&r), ["bundle-unsigned"]);
    check(&signed, &format!("{require}{runner_line}")).code(0);
    check(
        &by_other,
        &format!("ci {} roles=approver\n", ssh_pubkey(&other)),
    )
    .code(0);
    // A key the file does not list, a key without the runner role, a key limited to
    // another namespace, a key no longer valid: all `bundle-signature-invalid`.
    // (A file that names no runner and requires nothing says nothing about signers.)
    for policy in [
        format!("{require}{runner_line}"),
        format!("{runner_line}ci {} roles=approver\n", ssh_pubkey(&other)),
        format!(
            "{runner_line}ci namespaces=\"nexusmon-approval-v1\" {} roles=runner\n",
            ssh_pubkey(&other)
        ),
        format!(
            "{runner_line}ci valid-before=\"20200101\" {} roles=runner\n",
            ssh_pubkey(&other)
        ),
    ] {
        let r = check(&by_other, &policy);
        r.code(1);
        assert_eq!(kinds(&r), ["bundle-signature-invalid"], "{policy}");
    }
    // The packet says so too, and --require-promotable writes nothing.
    std::fs::write(&trust, format!("{require}{runner_line}")).unwrap();
    let t = trust.to_str().unwrap();
    let r = p.emit(
        &unsigned,
        "pk/u.json",
        &["--trust", t, "--require-promotable"],
    );
    r.code(1);
    assert!(r.stderr.contains("bundle-unsigned"), "{}", r.stderr);
    assert!(!p.path("pk/u.json").exists());
    let r = p.emit(
        &by_other,
        "pk/o.json",
        &["--trust", t, "--require-promotable"],
    );
    r.code(1);
    assert!(
        r.stderr.contains("bundle-signature-invalid"),
        "{}",
        r.stderr
    );
    p.emit(
        &signed,
        "pk/s.json",
        &["--trust", t, "--require-promotable"],
    )
    .code(0);
    let g = &p.json("pk/s.json")["promotability"]["gating_inputs"]["signature"];
    assert_eq!(g["state"], "verified", "{g}");
    assert_eq!(g["required"], true);
    // promote re-checks: the same packet is refused once the bundle's signature is
    // replaced by one from a key the trust file does not know.
    p.nx(&[
        "promote",
        "--packets",
        "pk/s.json",
        "--out",
        "maps",
        "--trust",
        t,
    ])
    .code(0);
    std::fs::copy(signed.join("artifact_index.json"), p.path("s.idx")).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-f"])
        .arg(&other)
        .args(["-n", "nexusmon-bundle-v1"])
        .arg(p.path("s.idx"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::copy(p.path("s.idx.sig"), signed.join("artifact_index.sig")).unwrap();
    let r = p.nx(&[
        "promote",
        "--packets",
        "pk/s.json",
        "--out",
        "maps2",
        "--trust",
        t,
    ]);
    r.code(1);
    assert!(
        r.stderr.contains("bundle-signature-invalid"),
        "{}",
        r.stderr
    );
    assert!(!p.path("maps2/runtime_signatures.json").exists());
}

#[test]
fn evolve_refuses_a_packet_whose_bundle_signature_no_longer_checks_out() {
    let p = Project::shipped().init();
    let runner = ssh_keygen(p.root(), "runner", "ed25519");
    let other = ssh_keygen(p.root(), "other", "ed25519");
    let signers = p.state().join("trusted_signers");
    let mut text = std::fs::read_to_string(&signers).unwrap();
    text.push_str("# nexusmon: require-signed-bundles\n");
    text.push_str(&line("ci", &runner, ""));
    std::fs::write(&signers, text).unwrap();
    let b = run_signed(&p, &runner);
    p.emit(&b, "pk.json", &["--require-promotable"]).code(0);
    p.nx(&["evolve", "--packets", "pk.json"]).code(0);
    // Re-signed by someone else (the index unchanged): the bundle still verifies by
    // itself, but not against the trust file.
    std::fs::copy(b.join("artifact_index.json"), p.path("other.idx")).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-f"])
        .arg(&other)
        .args(["-n", "nexusmon-bundle-v1"])
        .arg(p.path("other.idx"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::copy(p.path("other.idx.sig"), b.join("artifact_index.sig")).unwrap();
    let r = p.nx(&["evolve", "--packets", "pk.json"]);
    r.code(1);
    assert!(
        r.stderr.contains("bundle-signature-invalid"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_key_that_cannot_sign_is_an_input_error_before_anything_runs() {
    let p = Project::shipped();
    let key = ssh_keygen(p.root(), "locked", "ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-p", "-q", "-P", "", "-N", "secret", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pubkey = format!("{}.pub", key.display());
    for (k, says) in [
        (
            p.path("keys/missing").to_string_lossy().into_owned(),
            "keys/missing",
        ),
        (key.to_string_lossy().into_owned(), "passphrase-protected"),
        (pubkey, "not an OpenSSH private key"),
    ] {
        let r = p.nx(&[
            "run",
            "--plan",
            QUICKSTART,
            "--out",
            "out",
            "--sign-with",
            &k,
        ]);
        r.code(2);
        assert!(r.stderr.contains(says), "{k}: {}", r.stderr);
        assert!(!p.path("out").exists(), "something was written for {k}");
    }
    // NEXUSMON_SIGNING_KEY is the same option.
    let good = ssh_keygen(p.root(), "good", "ed25519");
    let r = crate::util::nexusmon(p.root())
        .args(["run", "--plan", QUICKSTART, "--out", "out"])
        .env("NEXUSMON_SIGNING_KEY", &good)
        .output()
        .unwrap();
    assert!(r.status.success());
    assert!(latest_bundle(p.root()).join("artifact_index.sig").is_file());
}

#[test]
fn a_passphrase_protected_key_signs_through_ssh_agent_when_the_agent_holds_it() {
    let p = Project::shipped();
    let sock = p.path("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let key = ssh_keygen(p.root(), &format!("a-{kind}"), kind);
        // The agent holds the key; the file given to --sign-with is a passphrase-protected
        // copy of it.
        let locked = p.path(&format!("keys/locked-{kind}"));
        std::fs::copy(&key, &locked).unwrap();
        let out = Command::new("ssh-keygen")
            .args(["-p", "-q", "-P", "", "-N", "secret", "-f"])
            .arg(&locked)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = |sock_env: &Path| {
            crate::util::nexusmon(p.root())
                .args(["run", "--plan", QUICKSTART, "--out", "out", "--sign-with"])
                .arg(&locked)
                .env("SSH_AUTH_SOCK", sock_env)
                .output()
                .unwrap()
        };
        // Not loaded yet: refused before anything runs.
        let r = run(&sock);
        assert_eq!(r.status.code(), Some(2), "{kind}");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("does not hold it"),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        let out = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = run(&sock);
        assert!(
            r.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let b = latest_bundle(p.root());
        let trust = p.path("trust");
        std::fs::write(&trust, line("ci", &key, "")).unwrap();
        let v = p.nx(&[
            "validate-bundle",
            "--bundle",
            b.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ]);
        v.code(0);
        assert!(
            v.stdout.contains("checked signature: verified"),
            "{}",
            v.stdout
        );
        let out = python(&["securesystemslib"], DSSE_CHECK)
            .arg(b.join("bundle.intoto.json"))
            .arg(format!("{}.pub", key.display()))
            .arg(b.join("artifact_index.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
}

/// The private scalar of an ECDSA key is an `mpint` without leading zero bytes, so about one
/// `ssh-keygen -t ecdsa` key in 512 stores a shorter scalar (which `ssh-key` 0.6.7 cannot
/// read). Seeded scalars with 1–3 leading zero bytes, written by `ssh-keygen` itself (it
/// re-encodes a key we hand it), load, sign, and verify with `ssh-keygen -Y verify`.
#[test]
fn ecdsa_keys_whose_private_scalar_is_short_load_and_sign() {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    let t = tempfile::tempdir().unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for case in 0..6 {
        let zeros = 1 + case % 3;
        let mut scalar = [0u8; 32];
        for b in scalar.iter_mut().skip(zeros) {
            *b = (next() & 0xff) as u8;
        }
        // Exactly `zeros` leading zero bytes and the next below 0x80: the `mpint` is then
        // shorter than 32 bytes (a high bit set would need a zero byte in front again).
        scalar[zeros] = (scalar[zeros] & 0x7f) | 1;
        let secret = p256::SecretKey::from_slice(&scalar).unwrap();
        let kp = EcdsaKeypair::NistP256 {
            public: secret.public_key().into(),
            private: secret.into(),
        };
        let key = ssh_key::PrivateKey::new(KeypairData::Ecdsa(kp), "short@test").unwrap();
        let path = t.path().join(format!("k{case}"));
        std::fs::write(
            &path,
            key.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        // ssh-keygen rewrites the key in its own encoding: the scalar without its zeros.
        let st = Command::new("ssh-keygen")
            .args(["-q", "-p", "-P", "", "-N", "", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        assert!(
            ssh_key::PrivateKey::read_openssh_file(&path).is_err(),
            "case {case}: the ssh-key crate reads this key now; the workaround in sign.rs can go"
        );
        let nexusmon::sign::SigningKey::Ready(loaded) =
            nexusmon::sign::load_private_key(&path).unwrap()
        else {
            panic!("case {case}: read as encrypted")
        };
        assert_eq!(loaded.public_key(), key.public_key(), "case {case}");
        let msg = format!("message {case}");
        let sig =
            nexusmon::sign::sign_in(&loaded, "nexusmon-bundle-v1", msg.as_bytes(), &path).unwrap();
        let sig_path = t.path().join(format!("k{case}.sig"));
        std::fs::write(&sig_path, sig).unwrap();
        let signers = t.path().join("signers");
        std::fs::write(
            &signers,
            format!("ci {}\n", key.public_key().to_openssh().unwrap()),
        )
        .unwrap();
        let mut c = Command::new("ssh-keygen");
        c.args(["-Y", "verify", "-n", "nexusmon-bundle-v1", "-I", "ci", "-f"])
            .arg(&signers)
            .arg("-s")
            .arg(&sig_path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), msg.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "case {case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
