//! Unit tests of template parameters: declarations, `--set` parsing, identity.

use super::*;

fn spec(kind: ParamType) -> ParamSpec {
    ParamSpec {
        kind,
        description: "d".into(),
        default: None,
        minimum: None,
        maximum: None,
        min_items: None,
        max_items: None,
        min_length: None,
        max_length: None,
        values: None,
        beneath: None,
        exclude: Vec::new(),
        disjoint_with: Vec::new(),
        example: None,
        why: None,
    }
}

#[test]
fn ports_and_port_lists() {
    let s = spec(ParamType::PortList);
    assert_eq!(
        from_cli(&s, "8443, 443").unwrap(),
        serde_json::json!([443, 8443])
    );
    assert_eq!(from_cli(&s, "").unwrap(), serde_json::json!([]));
    let e = from_cli(&s, "443,70000").unwrap_err();
    assert_eq!(e.value, "70000");
    assert!(e.rule.contains("1-65535"));
    assert!(
        from_cli(&s, "443,,8443")
            .unwrap_err()
            .rule
            .contains("empty item")
    );
    assert!(from_cli(&s, "443,443").unwrap_err().rule.contains("twice"));
    assert!(from_cli(&s, "0x1bb").is_err());
    assert!(from_cli(&s, "+443").is_err());
    assert!(from_cli(&s, "0443").is_err());
    let mut s = spec(ParamType::Port);
    s.minimum = Some(1024);
    assert!(
        from_cli(&s, "80")
            .unwrap_err()
            .rule
            .contains("minimum 1024")
    );
    assert_eq!(from_cli(&s, "8080").unwrap(), serde_json::json!(8080));
}

#[test]
fn paths() {
    let s = spec(ParamType::Path);
    assert!(from_cli(&s, "/usr/bin/true").is_ok());
    assert!(from_cli(&s, "/").is_ok());
    for bad in [
        "usr/bin",
        "/usr/../etc",
        "/usr/./bin",
        "/usr//bin",
        "/usr/",
        "${SCRATCH}/x",
        "/a,b",
        " /usr",
        "/usr/${X}",
        "",
    ] {
        assert!(from_cli(&s, bad).is_err(), "{bad}");
    }
    let mut s = spec(ParamType::Path);
    s.beneath = Some("${SCRATCH}".into());
    s.exclude = vec!["${SCRATCH}/outside".into()];
    assert!(from_cli(&s, "${SCRATCH}/ws").is_ok());
    assert!(from_cli(&s, "${SCRATCH}/a/b").is_ok());
    assert!(
        from_cli(&s, "${SCRATCH}")
            .unwrap_err()
            .rule
            .contains("beneath")
    );
    assert!(from_cli(&s, "/usr").unwrap_err().rule.contains("beneath"));
    assert!(
        from_cli(&s, "${HOME}/x")
            .unwrap_err()
            .rule
            .contains("beneath")
    );
    let e = from_cli(&s, "${SCRATCH}/outside/ws").unwrap_err();
    assert!(e.rule.contains("lies beneath"), "{e:?}");
    let mut s = spec(ParamType::PathList);
    s.exclude = vec!["/etc".into()];
    assert!(
        from_cli(&s, "/")
            .unwrap_err()
            .rule
            .contains("contains `/etc`")
    );
    assert!(from_cli(&s, "/etc").unwrap_err().rule.contains("is `/etc`"));
    assert_eq!(
        from_cli(&s, "/usr,/lib").unwrap(),
        serde_json::json!(["/lib", "/usr"])
    );
}

#[test]
fn scalars() {
    assert_eq!(
        from_cli(&spec(ParamType::Boolean), "true").unwrap(),
        Value::Bool(true)
    );
    assert!(from_cli(&spec(ParamType::Boolean), "yes").is_err());
    let mut e = spec(ParamType::Enum);
    e.values = Some(vec!["strict".into(), "relaxed".into()]);
    let err = from_cli(&e, "strcit").unwrap_err();
    assert!(err.rule.contains("did you mean `strict`"), "{err:?}");
    assert!(from_cli(&spec(ParamType::Id), "Bad").is_err());
    let mut s = spec(ParamType::String);
    s.max_length = Some(3);
    assert!(from_cli(&s, "abcd").unwrap_err().rule.contains("longer"));
    assert!(from_cli(&spec(ParamType::String), "a\nb").is_err());
}

#[test]
fn declarations_are_checked() {
    let all = BTreeMap::new();
    let mut s = spec(ParamType::Integer);
    s.values = Some(vec!["a".into()]);
    assert!(check_spec("n", &s, &all).unwrap_err().contains("`values`"));
    let mut s = spec(ParamType::Port);
    s.default = Some(serde_json::json!(70000));
    assert!(check_spec("n", &s, &all).unwrap_err().contains("default"));
    assert!(
        check_spec("format", &spec(ParamType::String), &all)
            .unwrap_err()
            .contains("reserved")
    );
    let mut s = spec(ParamType::Enum);
    s.values = Some(vec![]);
    assert!(check_spec("e", &s, &all).is_err());
    let mut s = spec(ParamType::PortList);
    s.disjoint_with = vec![crate::model::template::ParamName::new("other").unwrap()];
    assert!(
        check_spec("l", &s, &all)
            .unwrap_err()
            .contains("not a parameter")
    );
}

#[test]
fn identity_depends_on_non_defaults_only() {
    assert_eq!(identity("t", &BTreeMap::new()).unwrap(), "t");
    let mut a = BTreeMap::new();
    a.insert("x".to_string(), serde_json::json!([1, 2]));
    a.insert("y".to_string(), serde_json::json!(true));
    let mut b = BTreeMap::new();
    b.insert("y".to_string(), serde_json::json!(true));
    b.insert("x".to_string(), serde_json::json!([1, 2]));
    let id = identity("t", &a).unwrap();
    assert_eq!(id, identity("t", &b).unwrap());
    assert_eq!(id.len(), "t-".len() + 8);
    b.insert("y".to_string(), serde_json::json!(false));
    assert_ne!(id, identity("t", &b).unwrap());
}
