//! Evaluation: a template body against parameter values (and loop variables).

#[allow(clippy::wildcard_imports)]
use super::*;

use std::cell::Cell;
use std::rc::Rc;

use crate::util::limits::{Budget, Cost, Exceeded};

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// Values in scope, the slug table of the build and the input budget the expansion spends
/// (shared by every scope of one body: see [`eval_body`]). Entering a loop copies only the
/// loop variables, never the parameter values.
#[derive(Debug, Clone)]
pub struct Env {
    values: Rc<BTreeMap<String, Value>>,
    /// Loop variables, innermost last (they shadow parameters; also for messages).
    loops: Vec<(String, Value)>,
    pub(super) slugs: Rc<SlugTable>,
    budget: Rc<Cell<Budget>>,
}

impl Env {
    /// The parameter values and build values of one build.
    pub fn new(values: &BTreeMap<String, Value>, build: &[(&str, &str)]) -> Self {
        let mut all = values.clone();
        for (k, v) in build {
            all.insert((*k).to_string(), Value::String((*v).to_string()));
        }
        Self {
            slugs: Rc::new(SlugTable::new(values)),
            values: Rc::new(all),
            loops: Vec::new(),
            budget: Rc::new(Cell::new(Budget::default())),
        }
    }

    fn with(&self, var: &str, v: Value) -> Self {
        let mut e = self.clone();
        e.loops.push((var.to_string(), v));
        e
    }

    /// The value of `name`: the innermost loop variable of that name, else the parameter or
    /// build value.
    fn get(&self, name: &str) -> Option<&Value> {
        self.loops
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.values.get(name))
    }

    /// Charge `cost` to the body's budget, refusing at `ptr` (the directive or value being
    /// expanded) before anything over the limit is built.
    fn charge(&self, ptr: &str, cost: Cost) -> Result<(), ExpandError> {
        let mut b = self.budget.get();
        match b.charge_cost(cost) {
            Ok(()) => {
                self.budget.set(b);
                Ok(())
            }
            Err(e) => Err(over_budget(ptr, e)),
        }
    }

    /// Charge one value of `string_len` string bytes.
    fn charge_one(&self, ptr: &str, string_len: usize) -> Result<(), ExpandError> {
        let mut b = self.budget.get();
        match b.charge(string_len) {
            Ok(()) => {
                self.budget.set(b);
                Ok(())
            }
            Err(e) => Err(over_budget(ptr, e)),
        }
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

/// The error for an expansion over the input budget, at the value being expanded.
fn over_budget(ptr: &str, e: Exceeded) -> ExpandError {
    err_hint(
        ptr,
        format!(
            "input limit: expanding the template here makes a generated document of {} (the limit of any plan or registry file)",
            e.limit()
        ),
        "every `$for` iteration and every value it makes count, and nested loops multiply: loop over fewer values or nest fewer loops",
    )
}

/// The size of a value, to charge when a reference copies it into the output.
fn value_cost(v: &Value) -> Cost {
    let mut c = Cost {
        nodes: 1,
        bytes: 0,
        height: 1,
    };
    match v {
        Value::String(s) => c.bytes = s.len(),
        Value::Array(items) => {
            for i in items {
                let ic = value_cost(i);
                c.nodes = c.nodes.saturating_add(ic.nodes);
                c.bytes = c.bytes.saturating_add(ic.bytes);
            }
        }
        Value::Object(m) => {
            for (k, i) in m {
                let ic = value_cost(i);
                c.nodes = c.nodes.saturating_add(ic.nodes);
                c.bytes = c.bytes.saturating_add(ic.bytes).saturating_add(k.len());
            }
        }
        _ => {}
    }
    c
}

/// Evaluate a body to a JSON object. The body is one generated document: its expansion
/// spends one input budget ([`crate::util::limits`], the same limits as any plan or registry
/// file the loader reads), counting every value visited and made and every loop iteration,
/// so a loop bomb is refused at the first value over the limit, before it is built.
pub fn eval_body(
    body: &Map<String, Value>,
    ptr: &str,
    env: &Env,
) -> Result<Map<String, Value>, ExpandError> {
    env.budget.set(Budget::default());
    match eval_object(body, ptr, env)? {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(err(ptr, "the body must evaluate to an object")),
        None => Err(err(ptr, "the body evaluates to nothing")),
    }
}

fn eval(v: &Value, ptr: &str, env: &Env) -> Result<Option<Value>, ExpandError> {
    match v {
        Value::String(s) => {
            let out = eval_string(s, ptr, env)?;
            match &out {
                Value::String(t) => env.charge_one(ptr, t.len())?,
                other => env.charge(ptr, value_cost(other))?,
            }
            Ok(Some(out))
        }
        Value::Array(items) => {
            env.charge_one(ptr, 0)?;
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.extend(eval_item(item, &child(ptr, &i.to_string()), env)?);
            }
            Ok(Some(Value::Array(out)))
        }
        Value::Object(m) => eval_object(m, ptr, env),
        other => {
            env.charge_one(ptr, 0)?;
            Ok(Some(other.clone()))
        }
    }
}

/// A list item: directives contribute zero or more items (`$for` its items, `$if` its
/// branch's contribution), anything else one.
fn eval_item(v: &Value, ptr: &str, env: &Env) -> Result<Vec<Value>, ExpandError> {
    let Value::Object(m) = v else {
        return Ok(eval(v, ptr, env)?.into_iter().collect());
    };
    eval_object_items(m, ptr, env)
}

/// [`eval_item`] of an object.
fn eval_object_items(
    m: &Map<String, Value>,
    ptr: &str,
    env: &Env,
) -> Result<Vec<Value>, ExpandError> {
    match form(m, ptr)? {
        Form::ForItems { spec, item } => {
            let mut out = Vec::new();
            let fp = child(ptr, "$for");
            for (var, elem) in loop_elements(spec, &fp, env)? {
                env.charge_one(&fp, 0)?;
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
    match env.get(&list) {
        Some(Value::Array(items)) => Ok(items.iter().map(|i| (var.clone(), i.clone())).collect()),
        Some(_) => Err(err(ptr, format!("`{list}` is not a list"))),
        None => Err(err(ptr, format!("`{list}` is not defined"))),
    }
}

fn eval_object(m: &Map<String, Value>, ptr: &str, env: &Env) -> Result<Option<Value>, ExpandError> {
    match form(m, ptr)? {
        Form::ForItems { .. } => {
            env.charge_one(ptr, 0)?;
            Ok(Some(Value::Array(eval_object_items(m, ptr, env)?)))
        }
        Form::ForMap { spec, key, value } => {
            env.charge_one(ptr, 0)?;
            let mut out = Map::new();
            let mut origin: BTreeMap<String, String> = BTreeMap::new();
            let fp = child(ptr, "$for");
            for (var, elem) in loop_elements(spec, &fp, env)? {
                env.charge_one(&fp, 0)?;
                let inner = env.with(&var, elem);
                let kp = child(ptr, "$key");
                let k = key_text(key, &kp, &inner)?;
                inner.charge_one(&kp, k.len())?;
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
            env.charge_one(ptr, 0)?;
            let mut out = Map::new();
            let mut origin: BTreeMap<String, String> = BTreeMap::new();
            for (k, v) in m {
                if k == "$merge" {
                    continue;
                }
                let kp = child(ptr, k);
                let key = key_text(&Value::String(k.clone()), &kp, env)?;
                env.charge_one(&kp, key.len())?;
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
        env.get(name)
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
