#![allow(clippy::cast_possible_truncation)] // small generated sizes

use super::*;

use crate::util::testrng::Rng;

const GROUPS: &[&[&str]] = &[&["kind", "target"], &["profile", "limits"], &["witness"]];
const FILES: [&str; 2] = ["a.jsonl", "b.jsonl"];

/// Item `i` of a generated run: a few values repeat across items (the shareable ones),
/// others are unique; some items lack a group entirely.
fn item(rng: &mut Rng, i: usize) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), Value::String(format!("s{i:06}")));
    o.insert("n".into(), Value::from(rng.next() % 1000));
    if rng.below(4) != 0 {
        o.insert("kind".into(), Value::String(format!("k{}", rng.below(3))));
        o.insert(
            "target".into(),
            Value::String(format!("/t/{}", rng.below(5))),
        );
    }
    if rng.below(3) != 0 {
        o.insert(
            "profile".into(),
            Value::String(format!("p{}", rng.below(4))),
        );
        o.insert(
            "limits".into(),
            serde_json::json!({"ms": 10 * rng.below(3), "list": [1, rng.below(2)]}),
        );
    }
    if rng.below(2) == 0 {
        o.insert(
            "witness".into(),
            serde_json::json!({"v": 1, "detail": format!("read {} bytes", rng.below(40))}),
        );
    }
    Value::Object(o)
}

/// What one completed item writes: one line per file (the second file only for some).
fn write_item(w: &mut ResultWriter<Vec<u8>>, i: usize, v: &Value) -> Result<()> {
    let key = format!("s{i:06}");
    w.line(FILES[0], &key, v)?;
    if i % 3 != 1 {
        w.line(
            FILES[1],
            &key,
            &serde_json::json!({"id": key, "kind": v.get("kind")}),
        )?;
    }
    Ok(())
}

fn writer(cap: usize) -> ResultWriter<Vec<u8>> {
    let mut w = ResultWriter::new(cap);
    for f in FILES {
        w.add_file(f, Vec::new(), GROUPS);
    }
    w
}

type Files = (BTreeMap<String, Vec<u8>>, Vec<u8>);

/// The reference: everything held, sorted, then written.
fn sort_everything(items: &[Value], cap: usize) -> Files {
    let mut w = writer(cap);
    let mut sorted: Vec<(usize, &Value)> = items.iter().enumerate().collect();
    sorted.sort_by_key(|(i, _)| format!("s{i:06}"));
    for (i, v) in sorted {
        write_item(&mut w, i, v).unwrap();
    }
    w.finish(2).unwrap()
}

/// The stream: items start in index order while the window admits them (as the
/// scheduler's FIFO queue starts jobs) and complete in a random order among those in
/// flight; completed items go through the window into the writer.
fn streamed(rng: &mut Rng, items: &[Value], window: usize, workers: usize, cap: usize) -> Files {
    let mut w = writer(cap);
    let mut win = ReorderWindow::new(window);
    let mut started = 0usize;
    let mut in_flight: Vec<usize> = Vec::new();
    while started < items.len() || !in_flight.is_empty() {
        let can_start = started < items.len() && in_flight.len() < workers && win.admits(started);
        if can_start && (in_flight.is_empty() || rng.below(2) == 0) {
            in_flight.push(started);
            started += 1;
            continue;
        }
        assert!(!in_flight.is_empty(), "the window stalled the producer");
        let done = in_flight.swap_remove(rng.below(in_flight.len() as u64) as usize);
        win.push(done, items[done].clone(), &mut |i, v| {
            write_item(&mut w, i, &v)
        })
        .unwrap();
        assert!(win.held() <= window, "held {} > cap {window}", win.held());
    }
    assert!(win.high_water() <= window);
    assert_eq!(win.held(), 0);
    w.finish(2).unwrap()
}

#[test]
fn streamed_result_files_are_byte_identical_to_sorting_everything() {
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let n = rng.below(300_usize);
        let window = 1 + rng.below(40_usize);
        let workers = 1 + rng.below(8_usize);
        // Sometimes a cap small enough that later groups stay inline.
        let cap = if rng.below(3) == 0 {
            rng.below(6_usize)
        } else {
            1000
        };
        let items: Vec<Value> = (0..n).map(|i| item(&mut rng, i)).collect();
        let reference = sort_everything(&items, cap);
        let got = streamed(&mut rng, &items, window, workers, cap);
        assert_eq!(
            got, reference,
            "seed {seed}: n {n}, window {window}, workers {workers}, cap {cap}"
        );
        // Reading back gives every item as given.
        let shared = SharedValues::parse(&reference.1, Path::new(SHARED_FILE)).unwrap();
        assert!(shared.len() <= cap);
        let mut back = Vec::new();
        let bytes = &reference.0[FILES[0]];
        for_each_line::<Value>(&mut &bytes[..], Path::new(FILES[0]), &shared, &mut |v| {
            back.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(back, items, "seed {seed}");
        assert_eq!(
            String::from_utf8_lossy(bytes).lines().count(),
            n,
            "one line per item"
        );
    }
}

#[test]
fn a_line_below_the_previous_key_is_refused() {
    let mut w = writer(10);
    w.line(FILES[0], "b", &serde_json::json!({"x": 1})).unwrap();
    w.line(FILES[0], "b", &serde_json::json!({"x": 2})).unwrap();
    let e = w
        .line(FILES[0], "a", &serde_json::json!({"x": 3}))
        .unwrap_err();
    assert!(e.to_string().contains("in order"), "{e}");
    assert!(w.line("other.jsonl", "z", &serde_json::json!({})).is_err());
    assert!(w.line(FILES[0], "c", &serde_json::json!([1])).is_err());
}

#[test]
fn the_window_refuses_what_it_does_not_admit_and_drops_nothing() {
    let mut win = ReorderWindow::new(3);
    let mut out = Vec::new();
    let mut rel = |i: usize, v: u32| {
        out.push((i, v));
        Ok(())
    };
    assert!(win.admits(2) && !win.admits(3));
    win.push(2, 20, &mut rel).unwrap();
    assert!(win.push(3, 30, &mut rel).is_err(), "beyond the window");
    assert!(win.push(2, 21, &mut rel).is_err(), "twice");
    win.push(1, 10, &mut rel).unwrap();
    win.push(0, 0, &mut rel).unwrap();
    assert!(win.push(0, 0, &mut rel).is_err(), "already released");
    win.push(3, 30, &mut rel).unwrap();
    assert_eq!(out, vec![(0, 0), (1, 10), (2, 20), (3, 30)]);
    assert_eq!(win.high_water(), 3);
}

#[test]
fn bad_references_are_findings_naming_the_line() {
    let shared = SharedValues::parse(
        br#"{"schema_version": 2, "values": {"aaaaaaaaaaaa": {"k": 1}}}"#,
        Path::new(SHARED_FILE),
    )
    .unwrap();
    for (text, want) in [
        (&b"{\"$shared\": [\"bbbbbbbbbbbb\"]}\n"[..], "is not in"),
        (
            b"{\"$shared\": [\"aaaaaaaaaaaa\"], \"k\": 2}\n",
            "both in the line",
        ),
        (b"{\"$shared\": \"aaaaaaaaaaaa\"}\n", "not a list"),
        (b"{}\n[1]\n", "line 2 is not an object"),
        (b"{\n", "line 1 does not parse"),
    ] {
        let e = for_each_line::<Value>(&mut &text[..], Path::new("f.jsonl"), &shared, &mut |_| {
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains(want), "{e} (want {want})");
        assert_eq!(e.kind(), ErrorKind::Findings);
    }
    let long = vec![b'x'; MAX_LINE_BYTES + 10];
    let e = for_each_line::<Value>(&mut &long[..], Path::new("f"), &shared, &mut |_| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
}

/// A typed line, as the result types are: an enum, optional and defaulted fields, a small
/// integer, a nested map.
#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
struct Typed {
    id: String,
    n: u16,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    limits: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    witness: Value,
}

#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    K0,
    K1,
    K2,
}

/// The reader before it read lines in place: the shared values merged into the line's
/// object, then the object deserialized.
fn reference_lines<T: DeserializeOwned>(bytes: &[u8], shared: &SharedValues) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let what = format!("line {}", i + 1);
        let v: Value = serde_json::from_slice(line)
            .map_err(|_| Error::new(ErrorKind::Findings, "does not parse"))?;
        let Value::Object(mut obj) = v else {
            return Err(Error::new(ErrorKind::Findings, "not an object"));
        };
        shared.expand(&mut obj, &what)?;
        out.push(
            serde_json::from_value(Value::Object(obj))
                .map_err(|_| Error::new(ErrorKind::Findings, "not what the runner writes"))?,
        );
    }
    Ok(out)
}

fn read_lines<T: DeserializeOwned>(bytes: &[u8], shared: &SharedValues) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for_each_line::<T>(&mut &bytes[..], Path::new("f.jsonl"), shared, &mut |v| {
        out.push(v);
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn lines_read_in_place_equal_the_merged_objects_deserialized() {
    let mut seen = [0u32; 2];
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let n = 1 + rng.below(60_usize);
        let items: Vec<Value> = (0..n).map(|i| item(&mut rng, i)).collect();
        let (files, shared_doc) = sort_everything(&items, 1000);
        let shared = SharedValues::parse(&shared_doc, Path::new(SHARED_FILE)).unwrap();
        let ids: Vec<String> = serde_json::from_slice::<Value>(&shared_doc).unwrap()["values"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut text = String::from_utf8(files[FILES[0]].clone()).unwrap();
        // Edits: a repeated key, a key also in a shared value, an unknown or repeated
        // id, a value of the wrong type, a line that is not an object, broken JSON.
        for _ in 0..rng.below(3) {
            let lines: Vec<&str> = text.lines().collect();
            let i = rng.below(lines.len() as u64) as usize;
            let mut l = lines[i].to_string();
            let id = ids
                .get(rng.below(ids.len() as u64) as usize)
                .cloned()
                .unwrap_or_default();
            match rng.below(8) {
                0 => l = l.replacen('{', "{\"n\":7,", 1),
                1 => l = l.replacen('{', "{\"kind\":\"k1\",", 1),
                2 => l = l.replacen('{', &format!("{{\"$shared\":[\"{id}\",\"{id}\"],"), 1),
                3 => l = l.replacen('{', "{\"$shared\":[\"000000000000\"],", 1),
                4 => l = l.replacen("\"n\":", "\"n\":70000,\"x\":", 1),
                5 => l = "[1,2]".into(),
                6 => l.truncate(l.len() / 2),
                _ => l = l.replacen('{', "{\"kind\":\"k9\",", 1),
            }
            let mut v: Vec<String> = lines.iter().map(|s| (*s).to_string()).collect();
            v[i] = l;
            text = v.join("\n");
        }
        for t in [&text, &String::from_utf8(files[FILES[0]].clone()).unwrap()] {
            let (a, b) = (
                read_lines::<Value>(t.as_bytes(), &shared),
                reference_lines::<Value>(t.as_bytes(), &shared),
            );
            assert_eq!(a.as_ref().ok(), b.as_ref().ok(), "seed {seed}: Value\n{t}");
            let (a, b) = (
                read_lines::<Typed>(t.as_bytes(), &shared),
                reference_lines::<Typed>(t.as_bytes(), &shared),
            );
            assert_eq!(a.as_ref().ok(), b.as_ref().ok(), "seed {seed}: Typed\n{t}");
            seen[usize::from(a.is_ok())] += 1;
        }
    }
    assert!(seen[0] > 10 && seen[1] > 10, "{seen:?}");
}

#[test]
fn the_shared_values_document_is_the_sorted_pretty_document_of_every_value() {
    // Written one value at a time: the bytes of `to_sorted_pretty` over the whole
    // document, for seeded sets of values (none, nested, unicode, numbers).
    for seed in 0..40u64 {
        let mut r = Rng(seed);
        let mut interner = Interner::new(1000);
        for _ in 0..r.below(30u32) {
            let mut obj = Map::new();
            obj.insert("k".into(), serde_json::json!(r.below(5u32)));
            obj.insert(
                "v".into(),
                serde_json::json!({"z": [1.5, null, "é\u{1F600}\n"], "a": {"b": r.below(3u32)}, "e": {}, "l": []}),
            );
            interner.compact(&mut obj, &[&["k", "v"]]).unwrap();
        }
        let mut values = Map::new();
        for (id, text) in &interner.values {
            values.insert(hex(*id), serde_json::from_str(text).unwrap());
        }
        let whole = crate::util::json::to_sorted_pretty(&serde_json::json!({
            "schema_version": 2,
            "values": values,
        }))
        .unwrap();
        assert_eq!(
            String::from_utf8(interner.document(2).unwrap()).unwrap(),
            String::from_utf8(whole).unwrap(),
            "seed {seed}"
        );
    }
}

/// `shared_values.json` is written without one `Value` of the whole document, byte for
/// byte as `util::json::to_sorted_pretty` writes that `Value` (generated values: nested
/// objects and arrays, empty ones, strings that need escaping, numbers).
#[test]
fn the_shared_values_document_is_the_sorted_pretty_json_of_its_values() {
    fn generate(rng: &mut Rng, depth: u32) -> Value {
        match rng.below(if depth > 2 { 4 } else { 6 }) {
            0 => Value::from(rng.next() % 100_000),
            1 => Value::String(["a\"b", "x\\y", "\u{1}é", "", "plain"][rng.below(5)].into()),
            2 => Value::Bool(rng.chance(50)),
            3 => Value::Null,
            4 => Value::Array(
                (0..rng.below(3))
                    .map(|_| generate(rng, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.below(4))
                    .map(|_| (format!("k{}", rng.below(6)), generate(rng, depth + 1)))
                    .collect(),
            ),
        }
    }
    for seed in 0..20u64 {
        let mut rng = Rng(seed);
        let mut interner = Interner::new(1000);
        for i in 0..rng.below(30) {
            let mut obj = Map::new();
            obj.insert("id".into(), Value::from(i));
            obj.insert("g".into(), generate(&mut rng, 0));
            obj.insert("h".into(), generate(&mut rng, 0));
            interner.compact(&mut obj, &[&["g", "h"]]).unwrap();
        }
        let mut values = Map::new();
        for (id, text) in &interner.values {
            values.insert(hex(*id), serde_json::from_str(text).unwrap());
        }
        let want = crate::util::json::to_sorted_pretty(&serde_json::json!({
            "schema_version": 2,
            "values": values,
        }))
        .unwrap();
        assert_eq!(interner.document(2).unwrap(), want, "seed {seed}");
    }
}

/// The id written as `hex` (12 hex digits) as bytes.
fn unhex(hex: &str) -> Id {
    let mut id = [0; ID_HEX / 2];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    id
}

/// The old line path, kept as the reference: `to_value`, [`Interner::compact`] on its map,
/// `serde_json` printing.
fn value_line<T: Serialize>(shared: &mut Interner, item: &T, groups: &[&[&str]]) -> Vec<u8> {
    let Value::Object(mut obj) = serde_json::to_value(item).unwrap() else {
        panic!("not an object")
    };
    shared.compact(&mut obj, groups).unwrap();
    let mut text = serde_json::to_vec(&Value::Object(obj)).unwrap();
    text.push(b'\n');
    text
}

/// A derived line type of the shapes result lines have: fields declared out of order,
/// renamed, skipped when empty, optional, a flattened map, enums, nested structs, floats.
#[derive(Serialize)]
struct GenLine {
    zeta: String,
    #[serde(rename = "$shared")]
    shared: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_name: Option<String>,
    alpha: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
    #[serde(rename = "Caps")]
    caps: Option<GenInner>,
    kind: Verb,
    ratio: f64,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Serialize)]
struct GenInner {
    y: i64,
    b: Vec<Verb>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum Verb {
    Allow,
    NotEnforceable,
    Wrapped(u32),
    Shaped { z: bool, a: String },
}

fn gen_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 4 } else { 6 }) {
        0 => Value::from(rng.next() % 100_000),
        1 => {
            Value::String(["a\"b", "x\\y", "\u{1}é", "", "plain", "\u{1F600}"][rng.below(6)].into())
        }
        2 => serde_json::json!([1.5, -0.0, 1e300][rng.below(3)]),
        3 => Value::Null,
        4 => Value::Array(
            (0..rng.below(3))
                .map(|_| gen_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (format!("k{}", rng.below(6)), gen_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// Keys around `$shared` in byte order (`#`, `$`, `$a`, `$shared` itself, `%`, upper and
/// lower case), and the group keys.
const KEYS: &[&str] = &[
    "#",
    "$",
    "$a",
    "$shared",
    "$sharee",
    "%",
    "A",
    "Caps",
    "alpha",
    "errno_name",
    "kind",
    "notes",
    "ratio",
    "target",
    "zeta",
    "é",
];

fn gen_line(rng: &mut Rng) -> GenLine {
    let kind = |rng: &mut Rng| match rng.below(4) {
        0 => Verb::Allow,
        1 => Verb::NotEnforceable,
        2 => Verb::Wrapped(rng.below(3)),
        _ => Verb::Shaped {
            z: rng.chance(50),
            a: format!("s{}", rng.below(3)),
        },
    };
    GenLine {
        zeta: format!("z{}", rng.below(4)),
        shared: rng.chance(10).then(|| vec![1, 2]),
        errno_name: rng.chance(50).then(|| "EACCES".to_string()),
        alpha: rng.below(3),
        notes: (0..rng.below(3)).map(|i| format!("n{i}")).collect(),
        caps: rng.chance(60).then(|| GenInner {
            y: -(rng.below(3i64)),
            b: (0..rng.below(3)).map(|_| kind(rng)).collect(),
        }),
        kind: kind(rng),
        ratio: [0.5, f64::NAN, 2.0, -0.0][rng.below(4)],
        // A flattened key may repeat a field's name (the later one wins, as in a map).
        extra: (0..rng.below(4))
            .map(|_| ((*rng.pick(KEYS)).to_string(), gen_value(rng, 1)))
            .collect(),
    }
}

/// Lines are written from the items' own serialization, without a `Value` tree, byte for
/// byte as the old path wrote them (`to_value`, `compact`, print), with the same shared
/// values: generated derived structs (flatten, renames, skipped fields, enums, non-finite
/// floats, a member named `$shared`) and generated maps with keys around `$shared`, under
/// groups that overlap, name missing keys or `$shared` itself, with a cap that fills.
#[test]
fn lines_written_from_members_are_the_value_paths_bytes() {
    let group_sets: [&[&[&str]]; 4] = [
        &[&["kind", "alpha"], &["Caps"], &["ratio", "notes"]],
        &[&["zeta", "kind"], &["kind", "errno_name"], &["missing"]],
        &[&["$shared", "A"], &["#", "$a", "é"], &["target"]],
        &[],
    ];
    for seed in 0..60u64 {
        let mut rng = Rng(seed);
        let groups = group_sets[(seed % 4) as usize];
        let cap = [1000, 3, 0][rng.below(3)];
        let mut reference = Interner::new(cap);
        let mut w = ResultWriter::new(cap);
        w.add_file("l.jsonl", Vec::new(), groups);
        w.add_file("m.jsonl", Vec::new(), groups);
        let (mut want_l, mut want_m) = (Vec::new(), Vec::new());
        for i in 0..rng.below(40) {
            let key = format!("s{i:04}");
            let line = gen_line(&mut rng);
            want_l.extend(value_line(&mut reference, &line, groups));
            w.line("l.jsonl", &key, &line).unwrap();
            let map: Map<String, Value> = (0..rng.below(6))
                .map(|_| ((*rng.pick(KEYS)).to_string(), gen_value(&mut rng, 0)))
                .collect();
            want_m.extend(value_line(&mut reference, &map, groups));
            w.line("m.jsonl", &key, &map).unwrap();
        }
        let (files, doc) = if seed % 2 == 0 {
            w.finish(2).unwrap()
        } else {
            // `run`'s path: the files, then the shared values written as they are made
            // (here through a buffer smaller than any value).
            let (files, shared) = w.finish_files().unwrap();
            let mut out = std::io::BufWriter::with_capacity(7, Vec::new());
            shared.write_document(2, &mut out).unwrap();
            (files, out.into_inner().unwrap())
        };
        assert_eq!(
            String::from_utf8_lossy(&files["l.jsonl"]),
            String::from_utf8_lossy(&want_l),
            "seed {seed}"
        );
        assert_eq!(
            String::from_utf8_lossy(&files["m.jsonl"]),
            String::from_utf8_lossy(&want_m),
            "seed {seed}"
        );
        assert_eq!(doc, reference.document(2).unwrap(), "seed {seed}");
    }
    // What is not an object is refused, as before.
    let mut w = ResultWriter::new(10);
    w.add_file("l.jsonl", Vec::new(), &[]);
    for bad in [serde_json::json!([1]), serde_json::json!("x"), Value::Null] {
        let e = w.line("l.jsonl", "k", &bad).unwrap_err();
        assert!(e.to_string().contains("is not a JSON object"), "{e}");
    }
}

/// The reading of `shared_values.json` before values were kept as text, verbatim: the
/// oracle of the table's values and of every refusal.
fn tree_reading(bytes: &[u8], path: &Path) -> Result<HashMap<String, Map<String, Value>>> {
    let bad = |what: String| {
        Error::new(ErrorKind::Findings, what)
            .with_path(path)
            .with_hint("the shared values are written by the runner; re-run the plan")
    };
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| bad("does not parse as JSON".into()).with_source(e))?;
    let Some(map) = v.get("values").and_then(Value::as_object) else {
        return Err(bad("has no `values` object".into()));
    };
    if map.len() > MAX_SHARED_VALUES {
        return Err(bad(format!(
            "holds {} shared values, more than the {MAX_SHARED_VALUES} a run writes",
            map.len()
        )));
    }
    let mut values = HashMap::with_capacity(map.len());
    for (id, obj) in map {
        let Some(o) = obj.as_object() else {
            return Err(bad(format!("shared value `{id}` is not an object")));
        };
        values.insert(id.clone(), o.clone());
    }
    Ok(values)
}

/// `bytes` read by [`SharedValues::parse`] and (when it takes it) [`SharedValues::read`]
/// is what the tree reading gives: the same values under the same ids, looked up in a
/// random order more often than the parsed cache holds, or the same error, byte for byte.
/// Returns whether the streaming reading took it.
fn same_as_tree_reading(rng: &mut Rng, bytes: &[u8], what: &str) -> bool {
    let path = Path::new("b/shared_values.json");
    let old = tree_reading(bytes, path);
    let new = SharedValues::parse(bytes, path);
    let streamed = SharedValues::read(&mut &bytes[..]);
    match (&old, &new) {
        (Err(a), Err(b)) => {
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}");
            assert_eq!(a.to_string(), b.to_string(), "{what}");
        }
        (Ok(o), Ok(n)) => {
            let ids: Vec<&String> = o.keys().collect();
            for t in [Some(n), streamed.as_ref()].into_iter().flatten() {
                assert_eq!(t.len(), o.len(), "{what}");
                for _ in 0..(3 * ids.len()).max(PARSED_CACHE + 50).min(4 * ids.len()) {
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    assert_eq!(t.get(id).as_deref(), Some(&o[id]), "{what}: `{id}`");
                }
                assert!(t.get("not-an-id").is_none());
                assert_eq!(t.clone().len(), o.len());
            }
        }
        _ => panic!("{what}: the tree reading gives {old:?}, the table {new:?}"),
    }
    if streamed.is_some() {
        assert!(
            old.is_ok(),
            "{what}: streamed a document the tree reading refuses"
        );
    }
    streamed.is_some()
}

#[test]
fn shared_values_kept_as_text_are_the_tree_readings_values_and_refusals() {
    let mut took = [0u32; 2];
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F) | 1);
        let n = if rng.chance(5) {
            600 + rng.below(400_usize)
        } else {
            rng.below(30_usize)
        };
        let mut values = Map::new();
        for i in 0..n {
            let mut o: Map<String, Value> = (0..rng.below(4))
                .map(|_| (format!("k{}", rng.below(6)), gen_value(&mut rng, 1)))
                .collect();
            o.insert("i".into(), Value::from(i));
            values.insert(
                format!("{:012x}", rng.next() & 0xffff_ffff_ffff),
                Value::Object(o),
            );
        }
        let mut doc = serde_json::json!({"schema_version": 2, "values": values});
        let mut text = if rng.chance(50) {
            let mut w = Interner::new(usize::MAX);
            for (id, v) in values_of(&doc) {
                w.values
                    .insert(unhex(&id), serde_json::to_string(&v).unwrap());
            }
            String::from_utf8(w.document(2).unwrap()).unwrap()
        } else {
            doc["extra"] = gen_value(&mut rng, 0);
            serde_json::to_string(&doc).unwrap()
        };
        // Tampers: each kind of document the table does not take, and a few it does.
        let tamper = rng.below(16);
        let first = text
            .find("\"values\"")
            .map_or(0, |i| i + "\"values\": {".len());
        match tamper {
            0 => {}
            1 => text.insert_str(first, "\"000000000000\": {\"a\": 1}, \"000000000000\": {\"a\": 2},"),
            2 => text.insert_str(first, "\"0000000000zz\": [1],"),
            3 => text.insert_str(1, "\"values\": {\"x\": {}}, "),
            4 => text = text.replacen("\"values\"", "\"valuez\"", 1),
            5 => text = text.replacen("\"values\": {", "\"values\": [{", 1).replacen("}\n}", "}]\n}", 1),
            6 => text.truncate(rng.below(text.len() as u64) as usize),
            7 => text.push_str(" x"),
            8 => text = format!("[{text}]"),
            9 => text.insert_str(first, "\"\\u0061bc\": {\"esc\": \"\\u00e9\"},"),
            10 => text.insert_str(first, "\"big\": {\"n\": 1e400},"),
            11 => text = format!("\n\t {text}\n\n"),
            12 => text.insert_str(first, "\"n\": {\"k\": 1e-400, \"m\": -0, \"u\": 18446744073709551615},"),
            13 => text.insert_str(1, "\"deep\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "),
            14 => text = text.replacen("\"values\"", "\"val\\u0075es\"", 1),
            _ => text = "{\"values\": {}}".into(),
        }
        let mut bytes = text.into_bytes();
        if rng.chance(3) && !bytes.is_empty() {
            // A byte that is not UTF-8 somewhere.
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] = 0xff;
        }
        let what = format!("seed {seed}, tamper {tamper}");
        took[usize::from(same_as_tree_reading(&mut rng, &bytes, &what))] += 1;
    }
    // More values than a run writes: refused with the count, as before.
    let mut many = String::from("{\"values\": {");
    for i in 0..=MAX_SHARED_VALUES {
        let _ = std::fmt::Write::write_fmt(&mut many, format_args!("\"{i:012x}\": {{}},"));
    }
    many.pop();
    many.push_str("}}");
    let mut rng = Rng(7);
    assert!(!same_as_tree_reading(&mut rng, many.as_bytes(), "too many"));
    assert!(
        took.iter().all(|n| *n > 40),
        "both paths exercised: {took:?}"
    );
}

fn values_of(doc: &Value) -> Vec<(String, Value)> {
    doc["values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A sealed bundle holding `shared` as its `shared_values.json`, loaded (verified).
fn sealed_with(out: &Path, id: &str, shared: &[u8]) -> crate::bundle::Bundle {
    use crate::bundle::{BeginOptions, LockMode, LockOptions, SealInfo, StagedBundle};
    let b = StagedBundle::begin(&BeginOptions {
        out_root: out.to_path_buf(),
        run_id: Some(id.into()),
        lock: LockOptions {
            mode: LockMode::Fail,
            timeout: std::time::Duration::ZERO,
        },
    })
    .unwrap();
    b.write_bytes(SHARED_FILE, shared).unwrap();
    let sealed = b.seal(SealInfo::complete()).unwrap();
    crate::bundle::load_bundle(&sealed.dir).unwrap()
}

#[test]
fn a_bundles_shared_values_streamed_are_the_verified_tree_readings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for seed in 1..=24u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut interner = Interner::new(usize::MAX);
        for i in 0..rng.below(40_usize) {
            let mut o = Map::new();
            o.insert("i".into(), Value::from(i));
            o.insert("v".into(), gen_value(&mut rng, 1));
            interner.compact(&mut o, &[&["i", "v"]]).unwrap();
        }
        let mut text = String::from_utf8(interner.document(2).unwrap()).unwrap();
        // Sealed as it is, or a document the table does not take sealed instead (the
        // reading then falls back to the tree reading and its refusal).
        match rng.below(4) {
            0 => text.insert_str(1, "\"values\": {}, "),
            1 => text = text.replacen('{', "[", 1),
            _ => {}
        }
        let b = sealed_with(&out, &format!("r{seed}"), text.as_bytes());
        let path = b.path(SHARED_FILE);
        let tree = |b: &crate::bundle::Bundle| {
            b.read_verified(SHARED_FILE)
                .and_then(|bytes| tree_reading(&bytes, &path))
        };
        let same = |b: &crate::bundle::Bundle, what: &str| match (tree(b), b.shared_values()) {
            (Ok(o), Ok(n)) => {
                assert_eq!(n.len(), o.len(), "{what}");
                for (id, v) in &o {
                    assert_eq!(n.get(id).as_deref(), Some(v), "{what}");
                }
            }
            (Err(old), Err(new)) => {
                assert_eq!(format!("{old:?}"), format!("{new:?}"), "{what}");
            }
            (old, new) => panic!("{what}: {old:?} / {new:?}"),
        };
        same(&b, &format!("seed {seed}"));
        // Changed after it was checked: one byte flipped, a byte added, or cut short.
        let mut bytes = text.into_bytes();
        match rng.below(3) {
            0 => {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 0x20;
            }
            1 => bytes.push(b' '),
            _ => bytes.truncate(bytes.len() - 1),
        }
        std::fs::write(&path, &bytes).unwrap();
        same(&b, &format!("seed {seed} changed"));
        assert!(
            b.shared_values().is_err(),
            "seed {seed}: a changed file is refused"
        );
    }
}

/// `pretty_compact` gives the bytes of the path it replaced (parse the compact text into a
/// `Value`, `to_string_pretty`, each newline followed by the indentation) for generated
/// values: nested and empty objects and arrays, escapes, unicode, floats, negative zero.
#[test]
fn compact_text_made_pretty_is_the_value_paths_bytes() {
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let v = gen_value(&mut rng, 0);
        let text = serde_json::to_string(&v).unwrap();
        let by = ["\n  ", "\n    ", "\n"][rng.below(3)];
        let want = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&text).unwrap())
            .unwrap()
            .replace('\n', by);
        let mut got = String::from("prefix ");
        pretty_compact(&text, by, &mut got);
        assert_eq!(got, format!("prefix {want}"), "seed {seed}: {text}");
    }
}

/// The line path before lines were written from reused buffers, verbatim (members from
/// `sorted_members`, `compact_members`, the line joined from them): the reference of
/// [`ResultWriter::line`]'s bytes. `None` where it failed (not an object, or an error).
fn members_line<T: Serialize>(
    shared: &mut Interner,
    item: &T,
    groups: &[&[&str]],
) -> Option<Vec<u8>> {
    let mut members = crate::util::json::sorted_members(item).ok()??;
    let ids = shared.compact_members(&mut members, groups).ok()?;
    let mut text = Vec::with_capacity(512);
    text.push(b'{');
    let mut any = false;
    let mut shared_written = ids.is_empty();
    let mut put = |text: &mut Vec<u8>, k: &str, v: &[u8]| {
        if any {
            text.push(b',');
        }
        any = true;
        serde_json::to_writer(&mut *text, k).unwrap();
        text.push(b':');
        text.extend_from_slice(v);
    };
    let shared_value = serde_json::to_vec(&ids).unwrap();
    for (k, v) in &members {
        if !shared_written && k.as_str() >= SHARED_KEY {
            put(&mut text, SHARED_KEY, &shared_value);
            shared_written = true;
            if k == SHARED_KEY {
                continue;
            }
        }
        put(&mut text, k, v);
    }
    if !shared_written {
        put(&mut text, SHARED_KEY, &shared_value);
    }
    text.push(b'}');
    text.push(b'\n');
    Some(text)
}

/// Generated lines of every shape `sorted`'s generator makes (nested objects, arrays,
/// strings needing escapes, unicode, floats, non-string map keys, duplicate keys) as the
/// values of keys around `$shared` and of overlapping groups, present or absent, values
/// drawn from a small pool so that groups repeat (shared, memoized) or change from line to
/// line, under caps that fill: [`ResultWriter::line`] writes exactly the bytes of the old
/// members path, and the same shared values document; it fails where that path failed.
#[test]
fn lines_from_reused_buffers_are_the_old_members_paths_bytes() {
    use crate::util::json::generated::{Node, node};
    let group_sets: [&[&[&str]]; 5] = [
        &[&["kind", "alpha"], &["Caps"], &["ratio", "notes"]],
        &[&["zeta", "kind"], &["kind", "errno_name"], &["missing"]],
        &[&["$shared", "A"], &["#", "$a", "é"], &["target"]],
        &[&["kind"], &["kind"], &["zeta", "target", "ratio"]],
        &[],
    ];
    let (mut written, mut refused) = (0, 0);
    for seed in 0..120u64 {
        let mut rng = Rng(seed ^ 0x11e5);
        let groups = group_sets[(seed % 5) as usize];
        let cap = [1000, 3, 0, 1][rng.below(4)];
        let pool: Vec<u64> = (0..=rng.below(6)).map(|_| rng.next()).collect();
        // A value from the pool (the same seed gives the same node), or a fresh one.
        let value = |rng: &mut Rng| -> Node {
            let s = if rng.chance(70) {
                *rng.pick(&pool)
            } else {
                rng.next()
            };
            node(&mut Rng(s | 1), 3)
        };
        let mut reference = Interner::new(cap);
        let mut w = ResultWriter::new(cap);
        w.add_file("l.jsonl", Vec::new(), groups);
        let mut want = Vec::new();
        for i in 0..rng.below(60) {
            let key = format!("s{i:04}");
            let item: BTreeMap<String, Node> = (0..rng.below(7))
                .map(|_| ((*rng.pick(KEYS)).to_string(), value(&mut rng)))
                .collect();
            let old = members_line(&mut reference, &item, groups);
            let new = w.line("l.jsonl", &key, &item);
            assert_eq!(new.is_ok(), old.is_some(), "seed {seed} line {i}");
            if let Some(line) = old {
                want.extend(line);
                written += 1;
            } else {
                refused += 1;
            }
        }
        let (files, doc) = w.finish(2).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&files["l.jsonl"]),
            String::from_utf8_lossy(&want),
            "seed {seed}"
        );
        assert_eq!(doc, reference.document(2).unwrap(), "seed {seed}");
    }
    assert!(
        written > 2000 && refused > 20,
        "written {written}, refused {refused}"
    );
}
