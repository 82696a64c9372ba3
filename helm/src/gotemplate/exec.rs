//! Executor: walks parsed trees over data with Go's text/template semantics.

use std::collections::HashMap;
use std::sync::Arc;

use super::funcs::{FuncDef, FuncSet, P, lookup_func};
use super::parse::{Arg, Branch, Cmd, Node, Number, Pipe, Source, Tree};
use super::value::{Map, Value};

/// What a missing map key yields (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// Go's default: the "no value" result; `.a.b` on a missing `a` is silently empty.
    #[default]
    Default,
    /// `missingkey=zero`, what Helm uses: the zero value (nil); `.a.b` on a missing `a` fails.
    Zero,
    /// `missingkey=error`: a missing key stops execution.
    Error,
}

/// Options for one execution.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub missing_key: MissingKey,
    pub funcs: FuncSet,
    /// Output larger than this many bytes (all nested `include`s together) is an error.
    pub max_output_bytes: usize,
    /// Nesting limit of `{{template}}` calls.
    pub max_template_depth: usize,
    /// Nesting limit of one name in `include` (Helm: 1000).
    pub max_include_depth: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            missing_key: MissingKey::Default,
            funcs: FuncSet::Sprig,
            max_output_bytes: 64 << 20,
            max_template_depth: 1000,
            max_include_depth: 1000,
        }
    }
}

/// A set of named trees (templates that can call each other).
#[derive(Default, Clone)]
pub struct TreeSet {
    pub trees: HashMap<String, Arc<Tree>>,
}

impl TreeSet {
    /// Adds a tree; like Go, an empty redefinition does not replace a non-empty template.
    pub fn add(&mut self, tree: Tree) {
        if let Some(old) = self.trees.get(&tree.name)
            && tree.is_empty()
            && !old.is_empty()
        {
            return;
        }
        self.trees.insert(tree.name.clone(), Arc::new(tree));
    }
}

/// Why execution stopped early.
pub enum Abort {
    Err(String),
    Break,
    Continue,
}

impl From<String> for Abort {
    fn from(s: String) -> Self {
        Abort::Err(s)
    }
}

type R<T> = Result<T, Abort>;

/// Hooks a host (the Helm renderer) gives the engine.
pub trait Host {
    /// Helm's `lookup`: the object(s), or an empty map when not connected to a cluster.
    fn lookup(&self, _api_version: &str, _kind: &str, _namespace: &str, _name: &str) -> Value {
        Value::new_map()
    }
}

/// A host that knows no cluster.
pub struct NoHost;
impl Host for NoHost {}

/// Execution state; function implementations get access to it (for `include`, `tpl`).
pub struct Exec<'a> {
    pub(crate) sets: Vec<Arc<TreeSet>>,
    pub opts: &'a ExecOptions,
    pub host: &'a dyn Host,
    left: String,
    right: String,
    vars: Vec<(String, Value)>,
    depth: usize,
    include_counts: HashMap<String, usize>,
    written: usize,
    cur_src: Arc<Source>,
    cur_name: String,
}

impl<'a> Exec<'a> {
    pub fn new(
        set: Arc<TreeSet>,
        opts: &'a ExecOptions,
        host: &'a dyn Host,
        delims: (&str, &str),
    ) -> Exec<'a> {
        Exec {
            sets: vec![set],
            opts,
            host,
            left: delims.0.to_string(),
            right: delims.1.to_string(),
            vars: Vec::new(),
            depth: 0,
            include_counts: HashMap::new(),
            written: 0,
            cur_src: Arc::new(Source {
                name: String::new(),
                text: String::new(),
            }),
            cur_name: String::new(),
        }
    }

    fn find(&self, name: &str) -> Option<Arc<Tree>> {
        self.sets
            .iter()
            .rev()
            .find_map(|s| s.trees.get(name).cloned())
    }

    /// Executes the template `name` with `data` into a string (Go's `ExecuteTemplate`).
    pub fn execute_named(&mut self, name: &str, data: &Value) -> Result<String, String> {
        let Some(tree) = self.find(name) else {
            return Err(format!(
                "template: no template {name:?} associated with template {name:?}"
            ));
        };
        let mut out = String::new();
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$".into(), data.clone())]);
        let saved_src = std::mem::replace(&mut self.cur_src, tree.source.clone());
        let saved_name = std::mem::replace(&mut self.cur_name, tree.name.clone());
        let r = self.walk_list(&mut out, data, &tree.root);
        self.vars = saved_vars;
        self.cur_src = saved_src;
        self.cur_name = saved_name;
        match r {
            Ok(()) => Ok(out),
            Err(Abort::Err(e)) => Err(e),
            Err(_) => Ok(out),
        }
    }

    /// Helm's `include`: executes a named template and returns its output.
    pub fn include(&mut self, name: &str, data: &Value) -> Result<String, String> {
        let count = self.include_counts.entry(name.to_string()).or_insert(0);
        if *count > self.opts.max_include_depth {
            return Err(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            ));
        }
        *count += 1;
        let saved_depth = self.depth;
        self.depth += 1;
        if self.depth
            > self
                .opts
                .max_template_depth
                .max(self.opts.max_include_depth)
                + 1
        {
            self.depth = saved_depth;
            return Err(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            ));
        }
        let r = if self.find(name).is_none() {
            Err(format!(
                "template: no template {name:?} associated with template {:?}",
                self.cur_name
            ))
        } else {
            self.execute_named(name, data)
        };
        self.depth = saved_depth;
        if let Some(c) = self.include_counts.get_mut(name) {
            *c -= 1;
        }
        r
    }

    /// Helm's `tpl`: parses `text` next to the current templates (as `name`) and executes it.
    pub fn tpl(&mut self, name: &str, text: &str, data: &Value) -> Result<String, String> {
        let funcs = self.opts.funcs;
        let parsed =
            super::parse::parse(name, text, &self.left.clone(), &self.right.clone(), &|f| {
                lookup_func(funcs, f).is_some()
            })
            .map_err(|e| format!("cannot parse template {text:?}: {}", e.0))?;
        let mut overlay = TreeSet::default();
        for d in parsed.defines {
            overlay.add(d);
        }
        let tmp_name = format!("\u{0}tpl:{name}");
        let mut main = parsed.main;
        main.name = tmp_name.clone();
        overlay.trees.insert(tmp_name.clone(), Arc::new(main));
        self.sets.push(Arc::new(overlay));
        let saved_depth = self.depth;
        self.depth += 1;
        let r = if self.depth > self.opts.max_template_depth {
            Err(format!(
                "exceeded maximum template depth ({})",
                self.opts.max_template_depth
            ))
        } else {
            // errors name the template as Helm does (the file's name)
            self.execute_named(&tmp_name, data)
                .map_err(|e| e.replace(&format!("{tmp_name:?}"), &format!("{name:?}")))
        };
        self.depth = saved_depth;
        self.sets.pop();
        r.map_err(|e| format!("error during tpl function execution for {text:?}: {e}"))
    }

    fn errorf(&self, pos: usize, ctx: &str, msg: impl std::fmt::Display) -> Abort {
        let mut context = ctx.to_string();
        if context.len() > 20 {
            let mut cut = 20;
            while !context.is_char_boundary(cut) {
                cut -= 1;
            }
            context = format!("{}...", &context[..cut]);
        }
        Abort::Err(format!(
            "template: {}: executing {:?} at <{}>: {}",
            self.cur_src.location(pos),
            self.cur_name,
            context,
            msg
        ))
    }

    fn write(&mut self, out: &mut String, s: &str) -> R<()> {
        self.written += s.len();
        if self.written > self.opts.max_output_bytes {
            return Err(Abort::Err(format!(
                "template: {}: output exceeds the limit of {} bytes",
                self.cur_name, self.opts.max_output_bytes
            )));
        }
        out.push_str(s);
        Ok(())
    }

    /// Checks a list length against the budget (each element costs far more than a byte).
    pub fn check_list(&self, len: usize) -> Result<(), String> {
        self.check_size(len.saturating_mul(16))
    }

    /// Checks a produced value against the output budget (for functions that build big strings).
    pub fn check_size(&self, len: usize) -> Result<(), String> {
        if len > self.opts.max_output_bytes {
            return Err(format!(
                "result exceeds the limit of {} bytes",
                self.opts.max_output_bytes
            ));
        }
        Ok(())
    }

    fn walk_list(&mut self, out: &mut String, dot: &Value, list: &[Node]) -> R<()> {
        for n in list {
            self.walk(out, dot, n)?;
        }
        Ok(())
    }

    fn walk(&mut self, out: &mut String, dot: &Value, node: &Node) -> R<()> {
        // deep template/include nesting recurses; grow the stack instead of overflowing it
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROW, || {
            self.walk_inner(out, dot, node)
        })
    }

    fn walk_inner(&mut self, out: &mut String, dot: &Value, node: &Node) -> R<()> {
        match node {
            Node::Text(t) => self.write(out, t),
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    let s = match &v {
                        Value::Nil => "<no value>".to_string(),
                        other => other.go_string(),
                    };
                    self.write(out, &s)?;
                }
                Ok(())
            }
            Node::If(b) => self.walk_if_with(out, dot, b, false),
            Node::With(b) => self.walk_if_with(out, dot, b, true),
            Node::Range(b) => self.walk_range(out, dot, b),
            Node::Break(_) => Err(Abort::Break),
            Node::Continue(_) => Err(Abort::Continue),
            Node::Template { pos, name, pipe } => {
                let Some(tree) = self.find(name) else {
                    return Err(self.errorf(
                        *pos,
                        &format!("template {name:?}"),
                        format!("template {name:?} not defined"),
                    ));
                };
                if self.depth >= self.opts.max_template_depth {
                    return Err(self.errorf(
                        *pos,
                        &format!("template {name:?}"),
                        format!(
                            "exceeded maximum template depth ({})",
                            self.opts.max_template_depth
                        ),
                    ));
                }
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Nil,
                };
                let saved_vars =
                    std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                let saved_src = std::mem::replace(&mut self.cur_src, tree.source.clone());
                let saved_name = std::mem::replace(&mut self.cur_name, tree.name.clone());
                self.depth += 1;
                let r = self.walk_list(out, &new_dot, &tree.root);
                self.depth -= 1;
                self.vars = saved_vars;
                self.cur_src = saved_src;
                self.cur_name = saved_name;
                match r {
                    Err(Abort::Err(e)) => Err(Abort::Err(e)),
                    _ => Ok(()),
                }
            }
        }
    }

    fn walk_if_with(&mut self, out: &mut String, dot: &Value, b: &Branch, is_with: bool) -> R<()> {
        let mark = self.vars.len();
        let r = (|| {
            let v = self.eval_pipeline(dot, &b.pipe)?;
            if v.truthy() {
                if is_with {
                    self.walk_list(out, &v, &b.list)
                } else {
                    self.walk_list(out, dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk_list(out, dot, e)
            } else {
                Ok(())
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, out: &mut String, dot: &Value, b: &Branch) -> R<()> {
        let mark = self.vars.len();
        let r = self.walk_range_inner(out, dot, b);
        self.vars.truncate(mark);
        r
    }

    fn walk_range_inner(&mut self, out: &mut String, dot: &Value, b: &Branch) -> R<()> {
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match &val {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(m) => m
                .borrow()
                .iter()
                .map(|(k, v)| (Value::str(k), v.clone()))
                .collect(),
            Value::Bytes(bs) => bs
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), Value::Int(i64::from(*v))))
                .collect(),
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.errorf(
                        b.pos,
                        &b.pipe.to_string(),
                        "can't use range over int with two variables",
                    ));
                }
                let n = (*n).max(0);
                if n == 0 {
                    Vec::new()
                } else {
                    return self.range_ints(out, n, b);
                }
            }
            Value::Nil => Vec::new(),
            Value::Object(o) if o.entries().is_some() => o
                .entries()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (Value::str(k), v))
                .collect(),
            other => {
                return Err(self.errorf(
                    b.pos,
                    &b.pipe.to_string(),
                    format!("range can't iterate over {}", other.go_string()),
                ));
            }
        };
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                return self.walk_list(out, dot, e);
            }
            return Ok(());
        }
        let inner_mark = self.vars.len();
        for (idx, elem) in items {
            let nd = b.pipe.decl.len();
            if nd > 0 {
                if b.pipe.is_assign {
                    if nd > 1 {
                        self.set_var(&b.pipe.decl[0], idx.clone());
                        self.set_var(&b.pipe.decl[1], elem.clone());
                    } else {
                        self.set_var(&b.pipe.decl[0], elem.clone());
                    }
                } else {
                    let n = self.vars.len();
                    if nd > 1 {
                        self.vars[n - 1].1 = elem.clone();
                        self.vars[n - 2].1 = idx.clone();
                    } else {
                        self.vars[n - 1].1 = elem.clone();
                    }
                }
            }
            let r = self.walk_list(out, &elem, &b.list);
            self.vars.truncate(inner_mark);
            match r {
                Ok(()) | Err(Abort::Continue) => {}
                Err(Abort::Break) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `range N`: iterates without materialising the numbers; every turn costs one byte of budget.
    fn range_ints(&mut self, out: &mut String, n: i64, b: &Branch) -> R<()> {
        let inner_mark = self.vars.len();
        for i in 0..n {
            self.written += 1;
            if self.written > self.opts.max_output_bytes {
                return Err(self.errorf(
                    b.pos,
                    &b.pipe.to_string(),
                    "range over int exceeds the output limit",
                ));
            }
            let elem = Value::Int(i);
            if let Some(d) = b.pipe.decl.first() {
                if b.pipe.is_assign {
                    self.set_var(d, elem.clone());
                } else {
                    let n = self.vars.len();
                    self.vars[n - 1].1 = elem.clone();
                }
            }
            let r = self.walk_list(out, &elem, &b.list);
            self.vars.truncate(inner_mark);
            match r {
                Ok(()) | Err(Abort::Continue) => {}
                Err(Abort::Break) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    fn var_value(&self, pos: usize, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(pos, name, format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROW, || {
            self.eval_pipeline_inner(dot, pipe)
        })
    }

    fn eval_pipeline_inner(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        if pipe.is_assign {
            for d in &pipe.decl {
                self.set_var(d, value.clone());
            }
        } else {
            for d in &pipe.decl {
                self.vars.push((d.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, cmd: &Cmd, final_: &Option<Value>) -> R<()> {
        if cmd.args.len() > 1 || final_.is_some() {
            let first = &cmd.args[0];
            return Err(self.errorf(
                first.pos(),
                &first.to_string(),
                format!("can't give argument to non-function {first}"),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &Cmd, final_: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { pos, idents } => self.eval_field_chain(
                dot,
                dot.clone(),
                *pos,
                &first.to_string(),
                idents,
                &cmd.args,
                final_,
            ),
            Arg::Chain { pos, node, fields } => {
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(
                    dot,
                    recv,
                    *pos,
                    &first.to_string(),
                    fields,
                    &cmd.args,
                    final_,
                )
            }
            Arg::Variable { pos, name, idents } => {
                let v = self.var_value(*pos, name)?;
                if idents.is_empty() {
                    self.not_a_function(cmd, &final_)?;
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, *pos, &first.to_string(), idents, &cmd.args, final_)
            }
            Arg::Ident { pos, name } => self.eval_function(dot, *pos, name, cmd, final_),
            Arg::Pipe(p) => {
                self.not_a_function(cmd, &final_)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Nil(pos) => Err(self.errorf(*pos, "nil", "nil is not a command")),
            Arg::Dot(_) => {
                self.not_a_function(cmd, &final_)?;
                Ok(dot.clone())
            }
            other => {
                self.not_a_function(cmd, &final_)?;
                Ok(constant(other).unwrap_or(Value::Nil))
            }
        }
    }

    /// Evaluates an argument as an `interface{}`.
    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> R<Value> {
        match arg {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Nil),
            Arg::Field { pos, idents } => {
                self.eval_field_chain(dot, dot.clone(), *pos, &arg.to_string(), idents, &[], None)
            }
            Arg::Variable { pos, name, idents } => {
                let v = self.var_value(*pos, name)?;
                if idents.is_empty() {
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, *pos, &arg.to_string(), idents, &[], None)
            }
            Arg::Pipe(p) => {
                let mark = self.vars.len();
                let r = self.eval_pipeline(dot, p);
                // variables declared in a parenthesized pipeline stay visible (Go keeps them)
                let _ = mark;
                r
            }
            Arg::Ident { pos, name } => {
                let cmd = Cmd {
                    pos: *pos,
                    args: vec![Arg::Ident {
                        pos: *pos,
                        name: name.clone(),
                    }],
                };
                self.eval_function(dot, *pos, name, &cmd, None)
            }
            Arg::Chain { pos, node, fields } => {
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(dot, recv, *pos, &arg.to_string(), fields, &[], None)
            }
            other => Ok(constant(other).unwrap_or(Value::Nil)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        pos: usize,
        ctx: &str,
        idents: &[String],
        args: &[Arg],
        final_: Option<Value>,
    ) -> R<Value> {
        let n = idents.len();
        for (i, name) in idents.iter().enumerate() {
            let last = i + 1 == n;
            let (a, f) = if last {
                (args, final_.clone())
            } else {
                (&[][..], None)
            };
            match self.eval_field(dot, name, pos, ctx, a, f, &recv)? {
                Some(v) => recv = v,
                // a missing key under missingkey=default ends the chain with no value
                None => return Ok(Value::Nil),
            }
        }
        Ok(recv)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        pos: usize,
        ctx: &str,
        args: &[Arg],
        final_: Option<Value>,
        recv: &Value,
    ) -> R<Option<Value>> {
        let has_args = args.len() > 1 || final_.is_some();
        match recv {
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(
                        pos,
                        ctx,
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                let got = m.borrow().get(name).cloned();
                match got {
                    Some(v) => Ok(Some(v)),
                    None => match self.opts.missing_key {
                        MissingKey::Default => Ok(None),
                        MissingKey::Zero => Ok(Some(Value::Nil)),
                        MissingKey::Error => {
                            Err(self.errorf(pos, ctx, format!("map has no entry for key {name:?}")))
                        }
                    },
                }
            }
            Value::Object(o) => {
                if o.has_method(name) {
                    let mut argv = Vec::new();
                    for a in args.iter().skip(1) {
                        argv.push(self.eval_arg(dot, a)?);
                    }
                    if let Some(f) = final_ {
                        argv.push(f);
                    }
                    return match o.call(name, &argv) {
                        Some(Ok(v)) => Ok(Some(v)),
                        Some(Err(e)) => {
                            Err(self.errorf(pos, ctx, format!("error calling {name}: {e}")))
                        }
                        None => Err(self.errorf(
                            pos,
                            ctx,
                            format!("can't evaluate field {name} in type {}", o.type_name()),
                        )),
                    };
                }
                match o.field(name) {
                    Some(v) => {
                        if has_args {
                            return Err(self.errorf(
                                pos,
                                ctx,
                                format!("{name} has arguments but cannot be invoked as function"),
                            ));
                        }
                        Ok(Some(v))
                    }
                    None => Err(self.errorf(
                        pos,
                        ctx,
                        format!("can't evaluate field {name} in type {}", o.type_name()),
                    )),
                }
            }
            Value::Nil => Err(self.errorf(
                pos,
                ctx,
                format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            other => Err(self.errorf(
                pos,
                ctx,
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        pos: usize,
        name: &str,
        cmd: &Cmd,
        final_: Option<Value>,
    ) -> R<Value> {
        let ctx = cmd.to_string();
        // and/or short-circuit
        if name == "and" || name == "or" {
            let args = &cmd.args[1..];
            let total = args.len() + usize::from(final_.is_some());
            if total < 1 {
                return Err(self.errorf(
                    pos,
                    name,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Value::Nil;
            for a in args {
                last = self.eval_arg(dot, a)?;
                if (name == "and") != last.truthy() {
                    return Ok(last);
                }
            }
            if let Some(f) = final_ {
                last = f;
            }
            return Ok(last);
        }
        let Some(def) = lookup_func(self.opts.funcs, name) else {
            return Err(self.errorf(pos, name, format!("{name:?} is not a defined function")));
        };
        let argv = self.eval_call_args(dot, pos, &ctx, name, def, &cmd.args[1..], final_)?;
        match (def.f)(self, &argv) {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Some(inner) = e.strip_prefix(RAW_ERROR_PREFIX) {
                    Err(Abort::Err(inner.to_string()))
                } else {
                    Err(self.errorf(cmd.pos, &ctx, format!("error calling {name}: {e}")))
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_call_args(
        &mut self,
        dot: &Value,
        pos: usize,
        ctx: &str,
        name: &str,
        def: &FuncDef,
        args: &[Arg],
        final_: Option<Value>,
    ) -> R<Vec<Value>> {
        let num_in = args.len() + usize::from(final_.is_some());
        let fixed = def.params.len();
        match def.variadic {
            Some(_) => {
                if num_in < fixed {
                    return Err(self.errorf(
                        pos,
                        name,
                        format!(
                            "wrong number of args for {name}: want at least {fixed} got {num_in}"
                        ),
                    ));
                }
            }
            None => {
                if num_in != fixed {
                    return Err(self.errorf(
                        pos,
                        name,
                        format!("wrong number of args for {name}: want {fixed} got {num_in}"),
                    ));
                }
            }
        }
        let kind_at = |i: usize| -> P {
            if i < fixed {
                def.params[i]
            } else {
                def.variadic.unwrap_or(P::A)
            }
        };
        let mut out = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            let k = kind_at(i);
            let v = match (a, k) {
                (Arg::Number { text, value, pos }, P::I) => match value {
                    Number::Int(i) => Value::Int(*i),
                    Number::Float(_) => {
                        return Err(self.errorf(
                            *pos,
                            ctx,
                            format!("expected integer; found {text}"),
                        ));
                    }
                },
                (Arg::Number { value, .. }, P::F) => match value {
                    Number::Int(i) => Value::Float(*i as f64),
                    Number::Float(f) => Value::Float(*f),
                },
                (Arg::Nil(p), P::S | P::I | P::F | P::B) => {
                    return Err(self.errorf(
                        *p,
                        ctx,
                        format!("cannot assign nil to {}", k.go_name()),
                    ));
                }
                _ => self.eval_arg(dot, a)?,
            };
            let v = self.validate(v, k, a.pos(), &a.to_string())?;
            out.push(v);
        }
        if let Some(f) = final_ {
            let k = kind_at(args.len());
            let v = self.validate(f, k, pos, name)?;
            out.push(v);
        }
        Ok(out)
    }

    fn validate(&self, v: Value, k: P, pos: usize, ctx: &str) -> R<Value> {
        let ok = match (&v, k) {
            (_, P::A) => true,
            (Value::Str(_), P::S) => true,
            (Value::Int(_), P::I) => true,
            (Value::Float(_), P::F) => true,
            (Value::Int(i), P::F) => return Ok(Value::Float(*i as f64)),
            (Value::Bool(_), P::B) => true,
            (Value::List(_), P::L) => true,
            (Value::Nil, P::L) => return Ok(Value::from(Vec::new())),
            (Value::Map(_), P::M) => true,
            (Value::Nil, P::M) => return Ok(Value::new_map()),
            _ => false,
        };
        if ok {
            return Ok(v);
        }
        if v.is_nil() {
            return Err(self.errorf(pos, ctx, format!("invalid value; expected {}", k.go_name())));
        }
        Err(self.errorf(
            pos,
            ctx,
            format!(
                "wrong type for value; expected {}; got {}",
                k.go_name(),
                v.type_name()
            ),
        ))
    }
}

const STACK_RED_ZONE: usize = 128 * 1024;
const STACK_GROW: usize = 4 * 1024 * 1024;

/// A function error starting with this is passed through as the whole error (no "error calling").
pub const RAW_ERROR_PREFIX: &str = "\u{0}raw:";

fn constant(arg: &Arg) -> Option<Value> {
    Some(match arg {
        Arg::Bool(_, b) => Value::Bool(*b),
        Arg::Number { value, .. } => match value {
            Number::Int(i) => Value::Int(*i),
            Number::Float(f) => Value::Float(*f),
        },
        Arg::Str { value, .. } => Value::str(value),
        Arg::Nil(_) => Value::Nil,
        _ => return None,
    })
}

/// Builds a map value from pairs (helper for hosts).
pub fn map_of(pairs: Vec<(&str, Value)>) -> Value {
    Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map>(),
    )
}
