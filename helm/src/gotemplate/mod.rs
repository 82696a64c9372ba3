//! Go `text/template`, with Sprig and Helm functions.
//!
//! ```
//! use fleet_helm::gotemplate::{ExecOptions, FuncSet, MissingKey, ParseOptions, Template};
//! let opts = ParseOptions { left_delim: "${".into(), right_delim: "}".into(), funcs: FuncSet::SprigWithoutEnv };
//! let t = Template::parse("values", "name: ${ .name | upper }", &opts).unwrap();
//! let exec = ExecOptions { missing_key: MissingKey::Error, funcs: FuncSet::SprigWithoutEnv, ..Default::default() };
//! let out = t.execute(&serde_json::json!({"name": "web"}), &exec).unwrap();
//! assert_eq!(out, "name: WEB");
//! ```

pub mod exec;
pub mod format;
pub mod funcs;
pub mod lex;
pub mod parse;
pub mod value;

use std::sync::Arc;

pub use exec::{ExecOptions, Host, MissingKey, NoHost, TreeSet};
pub use funcs::FuncSet;
pub use value::{Map, Object, Value};

/// A template error, with Go's wording (`template: NAME:LINE:COL: executing "NAME" at <...>: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// How to parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub left_delim: String,
    pub right_delim: String,
    /// Functions the text may name (unknown names are parse errors, as in Go).
    pub funcs: FuncSet,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            left_delim: "{{".into(),
            right_delim: "}}".into(),
            funcs: FuncSet::Sprig,
        }
    }
}

/// A parsed template and the templates it can call (its `define`s and any added later).
#[derive(Clone)]
pub struct Template {
    name: String,
    set: TreeSet,
    opts: ParseOptions,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `text` as the template `name`.
    pub fn parse(name: &str, text: &str, opts: &ParseOptions) -> Result<Template, TemplateError> {
        let mut t = Template {
            name: name.to_string(),
            set: TreeSet::default(),
            opts: opts.clone(),
        };
        t.add(name, text)?;
        Ok(t)
    }

    /// An empty set to which texts are added with [`Template::add`].
    pub fn new_set(name: &str, opts: &ParseOptions) -> Template {
        Template {
            name: name.to_string(),
            set: TreeSet::default(),
            opts: opts.clone(),
        }
    }

    /// Parses another text into this set (its `define`s become callable from all texts).
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), TemplateError> {
        let funcs = self.opts.funcs;
        let parsed = parse::parse(
            name,
            text,
            &self.opts.left_delim,
            &self.opts.right_delim,
            &|f| funcs::lookup_func(funcs, f).is_some(),
        )
        .map_err(|e| TemplateError(e.0))?;
        self.set.add(parsed.main);
        for d in parsed.defines {
            self.set.add(d);
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a template of this name exists in the set.
    pub fn has_template(&self, name: &str) -> bool {
        self.set.trees.contains_key(name)
    }

    /// Executes the main template on JSON data (JSON integers are Go ints, other numbers float64).
    pub fn execute(
        &self,
        data: &serde_json::Value,
        opts: &ExecOptions,
    ) -> Result<String, TemplateError> {
        self.execute_value(&self.name, &Value::from_json(data), opts, &NoHost)
    }

    /// Executes the template `name` of this set on engine values.
    pub fn execute_value(
        &self,
        name: &str,
        data: &Value,
        opts: &ExecOptions,
        host: &dyn Host,
    ) -> Result<String, TemplateError> {
        let set = Arc::new(self.set.clone());
        let mut ex = exec::Exec::new(
            set,
            opts,
            host,
            (&self.opts.left_delim, &self.opts.right_delim),
        );
        ex.execute_named(name, data).map_err(TemplateError)
    }

    /// Like [`Template::execute_value`] but reusing one shared set (cheaper for many executions).
    pub fn executor_set(&self) -> Arc<TreeSet> {
        Arc::new(self.set.clone())
    }
}
