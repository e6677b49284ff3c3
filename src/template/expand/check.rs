//! The static check: every name, filter, condition and directive of a template body
//! is checked against the parameters' types when the template is loaded.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// The static check
// ---------------------------------------------------------------------------------------

/// The type of a name in scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ty {
    kind: ParamType,
}

/// What the static check knows about names.
#[derive(Debug, Clone)]
pub struct Types {
    names: BTreeMap<String, Ty>,
    enums: BTreeMap<String, Vec<String>>,
}

impl Types {
    /// The names a body may use: the parameters (with `format`) and the build values.
    pub fn new(params: &[Param]) -> Self {
        let mut names = BTreeMap::new();
        let mut enums = BTreeMap::new();
        for p in params {
            names.insert(p.name.clone(), Ty { kind: p.spec.kind });
            if let Some(v) = &p.spec.values {
                enums.insert(p.name.clone(), v.clone());
            }
        }
        for b in BUILD_VALUES {
            names.insert(
                b.to_string(),
                Ty {
                    kind: ParamType::Id,
                },
            );
        }
        Self { names, enums }
    }

    fn known(&self) -> Vec<&str> {
        self.names.keys().map(String::as_str).collect()
    }

    fn lookup(&self, name: &str, ptr: &str) -> Result<Ty, ExpandError> {
        self.names.get(name).copied().ok_or_else(|| {
            let known = self.known();
            let hint = suggest::did_you_mean(name, known.iter().copied()).map_or_else(
                || format!("names in scope here: {}", list_words(&known)),
                |s| format!("did you mean `{s}`?"),
            );
            err_hint(ptr, format!("`{name}` is not defined"), hint)
        })
    }
}

/// Check a body (`plan`, `probes` or `profiles`) without values: every directive, name,
/// filter and condition. Returns every problem found.
pub fn check(body: &Map<String, Value>, ptr: &str, types: &Types) -> Vec<ExpandError> {
    let mut errors = Vec::new();
    check_object(body, ptr, types, &mut errors);
    errors
}

fn check_value(v: &Value, ptr: &str, types: &Types, errors: &mut Vec<ExpandError>) {
    match v {
        Value::String(s) => {
            if let Err(e) = check_string(s, ptr, types) {
                errors.push(e);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_value(item, &child(ptr, &i.to_string()), types, errors);
            }
        }
        Value::Object(m) => check_object(m, ptr, types, errors),
        _ => {}
    }
}

/// The type a string evaluates to, if it is exactly one reference.
fn check_string(s: &str, ptr: &str, types: &Types) -> Result<Option<Ty>, ExpandError> {
    let pieces = parse_string(s, ptr)?;
    let whole = pieces.len() == 1;
    let mut ty_out = None;
    for p in &pieces {
        if let Piece::Ref { name, filters } = p {
            let mut ty = types.lookup(name, ptr)?;
            for f in filters {
                ty = filter_type(f, ty, name, ptr)?;
            }
            if !whole && ty.kind.is_list() {
                return Err(err_hint(
                    ptr,
                    format!("`${{{name}}}` is a list inside the text `{s}`"),
                    format!(
                        "write `${{{name}|join}}` to list it as text, or use the list on its own as `\"${{{name}}}\"`"
                    ),
                ));
            }
            if whole {
                ty_out = Some(ty);
            }
        }
    }
    Ok(ty_out)
}

fn filter_type(f: &str, ty: Ty, name: &str, ptr: &str) -> Result<Ty, ExpandError> {
    match f {
        "slug" if !ty.kind.is_list() => Ok(Ty {
            kind: ParamType::Id,
        }),
        "join" if ty.kind.is_list() => Ok(Ty {
            kind: ParamType::String,
        }),
        "basename" if matches!(ty.kind, ParamType::Path | ParamType::String) => Ok(Ty {
            kind: ParamType::String,
        }),
        _ => Err(err(
            ptr,
            format!(
                "the filter `{f}` does not apply to `{name}` (a `{}` value): `slug` takes a single value, `join` a list, `basename` a path",
                ty.kind.as_str()
            ),
        )),
    }
}

fn check_object(m: &Map<String, Value>, ptr: &str, types: &Types, errors: &mut Vec<ExpandError>) {
    let shape = match form(m, ptr) {
        Ok(f) => f,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    match shape {
        Form::ForItems { spec, item } => {
            let fp = child(ptr, "$for");
            match for_scope(spec, &fp, types) {
                Ok(inner) => check_value(item, &child(ptr, "$item"), &inner, errors),
                Err(e) => errors.push(e),
            }
        }
        Form::ForMap { spec, key, value } => {
            let fp = child(ptr, "$for");
            match for_scope(spec, &fp, types) {
                Ok(inner) => {
                    let kp = child(ptr, "$key");
                    match key.as_str() {
                        None => errors.push(err(&kp, "`$key` must be a string")),
                        Some(text) => match check_string(text, &kp, &inner) {
                            Ok(Some(t)) if t.kind.is_list() => {
                                errors.push(err(&kp, "`$key` must not be a list"));
                            }
                            Ok(_) => {}
                            Err(e) => errors.push(e),
                        },
                    }
                    check_value(value, &child(ptr, "$value"), &inner, errors);
                }
                Err(e) => errors.push(e),
            }
        }
        Form::If {
            cond,
            then,
            otherwise,
        } => {
            let cp = child(ptr, "$if");
            if let Err(e) = parse_cond(cond, &cp).and_then(|c| check_cond(&c, &cp, types)) {
                errors.push(e);
            }
            check_value(then, &child(ptr, "$then"), types, errors);
            if let Some(o) = otherwise {
                check_value(o, &child(ptr, "$else"), types, errors);
            }
        }
        Form::Plain { merge } => {
            for (k, v) in m {
                if k == "$merge" {
                    continue;
                }
                let kp = child(ptr, k);
                match check_string(k, &kp, types) {
                    Ok(Some(t)) if t.kind.is_list() => {
                        errors.push(err(&kp, format!("the key `{k}` would be a list")));
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(e),
                }
                check_value(v, &kp, types, errors);
            }
            if let Some(mv) = merge {
                let mp = child(ptr, "$merge");
                match mv {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let ip = child(&mp, &i.to_string());
                            if item.is_object() {
                                check_value(item, &ip, types, errors);
                            } else {
                                errors.push(err(
                                    &ip,
                                    "a `$merge` item must be an object (often a `$for`/`$key` or `$if` directive)",
                                ));
                            }
                        }
                    }
                    _ => errors.push(err(&mp, "`$merge` must be a list of objects")),
                }
            }
        }
    }
}

fn for_scope(spec: &Value, ptr: &str, types: &Types) -> Result<Types, ExpandError> {
    let (var, list) = parse_for(spec, ptr)?;
    let ty = types.lookup(&list, ptr)?;
    if !ty.kind.is_list() {
        return Err(err(
            ptr,
            format!(
                "`{list}` is a `{}` parameter; `$for` loops over lists (`port-list`, `path-list`)",
                ty.kind.as_str()
            ),
        ));
    }
    if types.names.contains_key(&var) {
        return Err(err_hint(
            ptr,
            format!("the loop variable `{var}` hides a name already in scope"),
            "choose another loop variable name",
        ));
    }
    let mut inner = types.clone();
    inner.names.insert(
        var,
        Ty {
            kind: ty.kind.element(),
        },
    );
    Ok(inner)
}

fn check_cond(c: &Cond, ptr: &str, types: &Types) -> Result<(), ExpandError> {
    match c {
        Cond::Truthy { name, .. } => {
            let ty = types.lookup(name, ptr)?;
            if ty.kind == ParamType::Boolean || ty.kind.is_list() {
                Ok(())
            } else {
                Err(err_hint(
                    ptr,
                    format!(
                        "`{name}` is a `{}` value, not a boolean or a list",
                        ty.kind.as_str()
                    ),
                    format!("compare it instead: `{name} == <word>`"),
                ))
            }
        }
        Cond::Compare { name, word, .. } => {
            let ty = types.lookup(name, ptr)?;
            if ty.kind.is_list() {
                return Err(err(
                    ptr,
                    format!("`{name}` is a list; compare single values only"),
                ));
            }
            if let Some(values) = types.enums.get(name)
                && !values.contains(word)
            {
                let hint = suggest::did_you_mean(word, values.iter().map(String::as_str))
                    .map_or_else(
                        || format!("`{name}` takes {}", values.join(", ")),
                        |s| format!("did you mean `{s}`?"),
                    );
                return Err(err_hint(
                    ptr,
                    format!("`{name}` can never be `{word}`"),
                    hint,
                ));
            }
            Ok(())
        }
    }
}
