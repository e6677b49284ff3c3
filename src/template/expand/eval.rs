//! Evaluation: a template body against parameter values (and loop variables).

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// Values in scope, and the slug table of the build.
#[derive(Debug, Clone)]
pub struct Env {
    values: BTreeMap<String, Value>,
    /// Loop variables, innermost last (for messages).
    loops: Vec<(String, Value)>,
    pub(super) slugs: SlugTable,
}

impl Env {
    /// The parameter values and build values of one build.
    pub fn new(values: &BTreeMap<String, Value>, build: &[(&str, &str)]) -> Self {
        let mut all = values.clone();
        for (k, v) in build {
            all.insert((*k).to_string(), Value::String((*v).to_string()));
        }
        Self {
            slugs: SlugTable::new(values),
            values: all,
            loops: Vec::new(),
        }
    }

    fn with(&self, var: &str, v: Value) -> Self {
        let mut e = self.clone();
        e.values.insert(var.to_string(), v.clone());
        e.loops.push((var.to_string(), v));
        e
    }

    fn context(&self) -> String {
        if self.loops.is_empty() {
            String::new()
        } else {
            format!(
                " (with {})",
                self.loops
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", scalar_text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// Evaluate a body to a JSON object.
pub fn eval_body(
    body: &Map<String, Value>,
    ptr: &str,
    env: &Env,
) -> Result<Map<String, Value>, ExpandError> {
    match eval_object(body, ptr, env)? {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(err(ptr, "the body must evaluate to an object")),
        None => Err(err(ptr, "the body evaluates to nothing")),
    }
}

fn eval(v: &Value, ptr: &str, env: &Env) -> Result<Option<Value>, ExpandError> {
    match v {
        Value::String(s) => eval_string(s, ptr, env).map(Some),
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.extend(eval_item(item, &child(ptr, &i.to_string()), env)?);
            }
            Ok(Some(Value::Array(out)))
        }
        Value::Object(m) => eval_object(m, ptr, env),
        other => Ok(Some(other.clone())),
    }
}

/// A list item: directives contribute zero or more items (`$for` its items, `$if` its
/// branch's contribution), anything else one.
fn eval_item(v: &Value, ptr: &str, env: &Env) -> Result<Vec<Value>, ExpandError> {
    let Value::Object(m) = v else {
        return Ok(eval(v, ptr, env)?.into_iter().collect());
    };
    match form(m, ptr)? {
        Form::ForItems { spec, item } => {
            let mut out = Vec::new();
            for (var, elem) in loop_elements(spec, &child(ptr, "$for"), env)? {
                out.extend(eval_item(
                    item,
                    &child(ptr, "$item"),
                    &env.with(&var, elem),
                )?);
            }
            Ok(out)
        }
        Form::If {
            cond,
            then,
            otherwise,
        } => {
            let cp = child(ptr, "$if");
            if truth(&parse_cond(cond, &cp)?, &cp, env)? {
                eval_item(then, &child(ptr, "$then"), env)
            } else if let Some(o) = otherwise {
                eval_item(o, &child(ptr, "$else"), env)
            } else {
                Ok(Vec::new())
            }
        }
        Form::ForMap { .. } => Err(err_hint(
            ptr,
            "a `$for` with `$key`/`$value` makes an object, not list items",
            "in a list, use `$item`",
        )),
        Form::Plain { .. } => Ok(eval_object(m, ptr, env)?.into_iter().collect()),
    }
}

fn loop_elements(spec: &Value, ptr: &str, env: &Env) -> Result<Vec<(String, Value)>, ExpandError> {
    let (var, list) = parse_for(spec, ptr)?;
    match env.values.get(&list) {
        Some(Value::Array(items)) => Ok(items.iter().map(|i| (var.clone(), i.clone())).collect()),
        Some(_) => Err(err(ptr, format!("`{list}` is not a list"))),
        None => Err(err(ptr, format!("`{list}` is not defined"))),
    }
}

fn eval_object(m: &Map<String, Value>, ptr: &str, env: &Env) -> Result<Option<Value>, ExpandError> {
    match form(m, ptr)? {
        Form::ForItems { .. } => Ok(Some(Value::Array(eval_item(
            &Value::Object(m.clone()),
            ptr,
            env,
        )?))),
        Form::ForMap { spec, key, value } => {
            let mut out = Map::new();
            let mut origin: BTreeMap<String, String> = BTreeMap::new();
            for (var, elem) in loop_elements(spec, &child(ptr, "$for"), env)? {
                let inner = env.with(&var, elem);
                let kp = child(ptr, "$key");
                let k = key_text(key, &kp, &inner)?;
                if let Some(v) = eval(value, &child(ptr, "$value"), &inner)? {
                    let here = format!("{kp}{}", inner.context());
                    insert_unique(&mut out, &mut origin, k, v, &here)?;
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Form::If {
            cond,
            then,
            otherwise,
        } => {
            let cp = child(ptr, "$if");
            if truth(&parse_cond(cond, &cp)?, &cp, env)? {
                eval(then, &child(ptr, "$then"), env)
            } else if let Some(o) = otherwise {
                eval(o, &child(ptr, "$else"), env)
            } else {
                Ok(None)
            }
        }
        Form::Plain { merge } => {
            let mut out = Map::new();
            let mut origin: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in m {
                if k == "$merge" {
                    continue;
                }
                let kp = child(ptr, k);
                let key = key_text(&Value::String(k.clone()), &kp, env)?;
                if let Some(v) = eval(v, &kp, env)? {
                    let here = format!("{kp}{}", env.context());
                    insert_unique(&mut out, &mut origin, key, v, &here)?;
                }
            }
            if let Some(mv) = merge {
                let mp = child(ptr, "$merge");
                let Value::Array(items) = mv else {
                    return Err(err(&mp, "`$merge` must be a list of objects"));
                };
                for (i, item) in items.iter().enumerate() {
                    let ip = child(&mp, &i.to_string());
                    match eval(item, &ip, env)? {
                        None => {}
                        Some(Value::Object(add)) => {
                            for (k, v) in add {
                                let here = format!("{ip}{}", env.context());
                                insert_unique(&mut out, &mut origin, k, v, &here)?;
                            }
                        }
                        Some(_) => {
                            return Err(err(&ip, "a `$merge` item must evaluate to an object"));
                        }
                    }
                }
            }
            Ok(Some(Value::Object(out)))
        }
    }
}

fn insert_unique(
    out: &mut Map<String, Value>,
    origin: &mut BTreeMap<String, String>,
    k: String,
    v: Value,
    here: &str,
) -> Result<(), ExpandError> {
    if let Some(first) = origin.get(&k) {
        return Err(err_hint(
            here,
            format!("the key `{k}` is produced twice (first by {first})"),
            "keys must be unique: derive generated keys from the loop value, e.g. `exec-${path|slug}`",
        ));
    }
    origin.insert(k.clone(), here.to_string());
    out.insert(k, v);
    Ok(())
}

fn key_text(key: &Value, ptr: &str, env: &Env) -> Result<String, ExpandError> {
    let Some(s) = key.as_str() else {
        return Err(err(ptr, "`$key` must be a string"));
    };
    match eval_string(s, ptr, env)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(err(
            ptr,
            format!(
                "the key `{s}` does not evaluate to a string{}",
                env.context()
            ),
        )),
    }
}

fn eval_string(s: &str, ptr: &str, env: &Env) -> Result<Value, ExpandError> {
    let pieces = parse_string(s, ptr)?;
    if let [Piece::Ref { name, filters }] = pieces.as_slice() {
        return resolve_ref(name, filters, ptr, env);
    }
    let mut out = String::new();
    for p in &pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref { name, filters } => match resolve_ref(name, filters, ptr, env)? {
                Value::String(s) => out.push_str(&s),
                Value::Number(n) => out.push_str(&n.to_string()),
                Value::Bool(b) => out.push_str(&b.to_string()),
                _ => {
                    return Err(err_hint(
                        ptr,
                        format!("`${{{name}}}` is a list inside the text `{s}`"),
                        format!("write `${{{name}|join}}`"),
                    ));
                }
            },
        }
    }
    Ok(Value::String(out))
}

fn resolve_ref(name: &str, filters: &[String], ptr: &str, env: &Env) -> Result<Value, ExpandError> {
    let mut v = env
        .values
        .get(name)
        .cloned()
        .ok_or_else(|| err(ptr, format!("`{name}` is not defined")))?;
    for f in filters {
        v = match (f.as_str(), &v) {
            ("slug", Value::Array(_))
            | ("join" | "basename", Value::Bool(_) | Value::Number(_)) => {
                return Err(err(
                    ptr,
                    format!("the filter `{f}` does not apply to `{name}`"),
                ));
            }
            ("slug", other) => Value::String(env.slugs.slug(&scalar_text(other))),
            ("join", Value::Array(items)) => {
                Value::String(items.iter().map(scalar_text).collect::<Vec<_>>().join(", "))
            }
            ("basename", Value::String(s)) => {
                Value::String(s.rsplit('/').next().unwrap_or_default().to_string())
            }
            _ => {
                return Err(err(
                    ptr,
                    format!("the filter `{f}` does not apply to `{name}`"),
                ));
            }
        };
    }
    Ok(v)
}

fn truth(c: &Cond, ptr: &str, env: &Env) -> Result<bool, ExpandError> {
    let get = |name: &str| {
        env.values
            .get(name)
            .ok_or_else(|| err(ptr, format!("`{name}` is not defined")))
    };
    match c {
        Cond::Truthy { name, negate } => {
            let b = match get(name)? {
                Value::Bool(b) => *b,
                Value::Array(a) => !a.is_empty(),
                _ => return Err(err(ptr, format!("`{name}` is not a boolean or a list"))),
            };
            Ok(b != *negate)
        }
        Cond::Compare { name, word, equal } => {
            let v = get(name)?;
            Ok((scalar_text(v) == *word) == *equal)
        }
    }
}
