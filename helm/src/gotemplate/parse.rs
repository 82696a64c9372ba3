//! Parser: tokens to a tree of nodes, with Go's rules for variables, `define`, `block`, `else if`.

use std::fmt;
use std::sync::Arc;

use super::lex::{Tok, Token, lex};

/// The source of one parsed text (a file), shared by every node parsed from it.
#[derive(Debug)]
pub struct Source {
    /// Name given to `parse` (Helm uses the file path, e.g. `chart/templates/x.yaml`).
    pub name: String,
    pub text: String,
}

impl Source {
    /// Go's `ErrorContext` location: `name:line:col` where col is the 0-based byte offset in the line.
    pub fn location(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let before = &self.text[..pos];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - i - 1,
            None => pos,
        };
        format!("{}:{}:{}", self.name, line, col)
    }

    pub fn line(&self, pos: usize) -> usize {
        let pos = pos.min(self.text.len());
        1 + self.text[..pos].matches('\n').count()
    }
}

/// A named template: its body and the source it came from.
#[derive(Debug)]
pub struct Tree {
    pub name: String,
    pub source: Arc<Source>,
    pub root: Vec<Node>,
}

impl Tree {
    /// Go's `parse.IsEmptyTree`: only whitespace text (and nothing else).
    pub fn is_empty(&self) -> bool {
        self.root
            .iter()
            .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
    }
}

#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Branch>),
    Range(Box<Branch>),
    With(Box<Branch>),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

#[derive(Debug)]
pub struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

#[derive(Debug)]
pub enum Arg {
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    Variable {
        pos: usize,
        name: String,
        idents: Vec<String>,
    },
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number {
        pos: usize,
        text: String,
        value: Number,
    },
    Str {
        pos: usize,
        value: String,
        raw: String,
    },
    Ident {
        pos: usize,
        name: String,
    },
    Pipe(Box<Pipe>),
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Dot(pos)
            | Arg::Nil(pos)
            | Arg::Bool(pos, _)
            | Arg::Number { pos, .. }
            | Arg::Str { pos, .. }
            | Arg::Ident { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable { name, idents, .. } => {
                f.write_str(name)?;
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number { text, .. } => f.write_str(text),
            Arg::Str { raw, .. } => f.write_str(raw),
            Arg::Ident { name, .. } => f.write_str(name),
            Arg::Pipe(p) => write!(f, "({p})"),
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(p) = node.as_ref() {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A parse error: `template: NAME:LINE: msg`.
#[derive(Debug, Clone)]
pub struct ParseError(pub String);

/// Result of parsing one text: its own tree and the templates it defines.
pub struct Parsed {
    pub main: Tree,
    pub defines: Vec<Tree>,
}

/// Parses `text` named `name`. `is_func` says whether a function name exists.
pub fn parse(
    name: &str,
    text: &str,
    left: &str,
    right: &str,
    is_func: &dyn Fn(&str) -> bool,
) -> Result<Parsed, ParseError> {
    let source = Arc::new(Source {
        name: name.to_string(),
        text: text.to_string(),
    });
    let toks = lex(text, left, right).map_err(|e| {
        ParseError(format!(
            "template: {}:{}: {}",
            name,
            source.line(e.pos),
            e.msg
        ))
    })?;
    let mut p = Parser {
        toks,
        i: 0,
        source: source.clone(),
        vars: vec!["$".into()],
        is_func,
        defines: Vec::new(),
    };
    let root = p.parse_top()?;
    Ok(Parsed {
        main: Tree {
            name: name.to_string(),
            source,
            root,
        },
        defines: p.defines,
    })
}

struct Parser<'a> {
    toks: Vec<Token>,
    i: usize,
    source: Arc<Source>,
    vars: Vec<String>,
    is_func: &'a dyn Fn(&str) -> bool,
    defines: Vec<Tree>,
}

enum Terminator {
    EndAction,
    Else(usize),
    Eof,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }
    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].pos
    }
    fn next(&mut self) -> Token {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn skip_space(&mut self) {
        while matches!(self.peek(), Tok::Space) {
            self.i += 1;
        }
    }
    fn next_non_space(&mut self) -> Token {
        self.skip_space();
        self.next()
    }
    fn peek_non_space(&mut self) -> Tok {
        self.skip_space();
        self.peek().clone()
    }

    fn err<T>(&self, pos: usize, msg: impl fmt::Display) -> Result<T, ParseError> {
        Err(ParseError(format!(
            "template: {}:{}: {}",
            self.source.name,
            self.source.line(pos),
            msg
        )))
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> Result<T, ParseError> {
        let desc = describe(&t.tok);
        self.err(t.pos, format!("unexpected {desc} in {context}"))
    }

    fn parse_top(&mut self) -> Result<Vec<Node>, ParseError> {
        let mut list = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::Eof => return Ok(list),
                Tok::LeftDelim => {
                    let save = self.i;
                    self.next();
                    if matches!(self.peek_non_space(), Tok::Define) {
                        self.next();
                        self.parse_define()?;
                        continue;
                    }
                    self.i = save;
                    match self.text_or_action(&mut list)? {
                        Some((Terminator::EndAction, pos)) => {
                            return self.err(pos, "unexpected {{end}}");
                        }
                        Some((Terminator::Else(_), pos)) => {
                            return self.err(pos, "unexpected {{else}}");
                        }
                        _ => {}
                    }
                }
                _ => {
                    if let Some((_, pos)) = self.text_or_action(&mut list)? {
                        return self.err(pos, "unexpected token");
                    }
                }
            }
        }
    }

    fn parse_define(&mut self) -> Result<(), ParseError> {
        let t = self.next_non_space();
        let name = match &t.tok {
            Tok::Str(s, _) => s.clone(),
            _ => return self.unexpected(&t, "define clause"),
        };
        let t2 = self.next_non_space();
        if t2.tok != Tok::RightDelim {
            return self.unexpected(&t2, "define clause");
        }
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end, pos) = self.item_list()?;
        self.vars = saved;
        match end {
            Terminator::EndAction => {}
            Terminator::Else(p) => return self.err(p, "unexpected {{else}}"),
            Terminator::Eof => return self.err(pos, "unexpected EOF in define clause".to_string()),
        }
        self.defines.push(Tree {
            name,
            source: self.source.clone(),
            root: list,
        });
        Ok(())
    }

    /// Parses nodes until `{{end}}`, `{{else}}` or EOF.
    fn item_list(&mut self) -> Result<(Vec<Node>, Terminator, usize), ParseError> {
        let mut list = Vec::new();
        loop {
            if matches!(self.peek(), Tok::Eof) {
                let pos = self.pos();
                return Ok((list, Terminator::Eof, pos));
            }
            if let Some((end, pos)) = self.text_or_action(&mut list)? {
                return Ok((list, end, pos));
            }
        }
    }

    fn text_or_action(
        &mut self,
        list: &mut Vec<Node>,
    ) -> Result<Option<(Terminator, usize)>, ParseError> {
        let t = self.next();
        match t.tok {
            Tok::Text(s) => {
                list.push(Node::Text(s));
                Ok(None)
            }
            Tok::Comment => Ok(None),
            Tok::LeftDelim => self.action(list),
            _ => self.unexpected(&t, "input"),
        }
    }

    fn expect_right(&mut self, context: &str) -> Result<(), ParseError> {
        let t = self.next_non_space();
        if t.tok != Tok::RightDelim {
            return self.unexpected(&t, context);
        }
        Ok(())
    }

    fn action(&mut self, list: &mut Vec<Node>) -> Result<Option<(Terminator, usize)>, ParseError> {
        let t = self.next_non_space();
        let pos = t.pos;
        match t.tok {
            Tok::End => {
                self.expect_right("end")?;
                Ok(Some((Terminator::EndAction, pos)))
            }
            Tok::Else => {
                // `else if` / `else with` continue the chain; plain `else` ends the branch
                match self.peek_non_space() {
                    Tok::If | Tok::With => Ok(Some((Terminator::Else(pos), pos))),
                    _ => {
                        self.expect_right("else")?;
                        Ok(Some((Terminator::Else(usize::MAX), pos)))
                    }
                }
            }
            Tok::If => {
                let b = self.control("if", pos, false)?;
                list.push(Node::If(Box::new(b)));
                Ok(None)
            }
            Tok::With => {
                let b = self.control("with", pos, false)?;
                list.push(Node::With(Box::new(b)));
                Ok(None)
            }
            Tok::Range => {
                let b = self.control("range", pos, true)?;
                list.push(Node::Range(Box::new(b)));
                Ok(None)
            }
            Tok::Break => {
                self.expect_right("break")?;
                list.push(Node::Break(pos));
                Ok(None)
            }
            Tok::Continue => {
                self.expect_right("continue")?;
                list.push(Node::Continue(pos));
                Ok(None)
            }
            Tok::Template | Tok::Block => {
                let is_block = t.tok == Tok::Block;
                let ctx = if is_block {
                    "block clause"
                } else {
                    "template clause"
                };
                let nt = self.next_non_space();
                let name = match &nt.tok {
                    Tok::Str(s, _) => s.clone(),
                    _ => return self.unexpected(&nt, ctx),
                };
                let pipe = if matches!(self.peek_non_space(), Tok::RightDelim) {
                    self.next();
                    None
                } else {
                    Some(self.pipeline(ctx, false)?)
                };
                if is_block {
                    let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
                    let (body, end, epos) = self.item_list()?;
                    self.vars = saved;
                    if !matches!(end, Terminator::EndAction) {
                        return self.err(epos, "unexpected EOF in block clause");
                    }
                    self.defines.push(Tree {
                        name: name.clone(),
                        source: self.source.clone(),
                        root: body,
                    });
                }
                list.push(Node::Template { pos, name, pipe });
                Ok(None)
            }
            Tok::Define => self.err(pos, "unexpected <define> in command"),
            _ => {
                self.i -= 1;
                let pipe = self.pipeline("command", false)?;
                list.push(Node::Action(pipe));
                Ok(None)
            }
        }
    }

    fn control(&mut self, ctx: &str, pos: usize, is_range: bool) -> Result<Branch, ParseError> {
        stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, || {
            self.control_inner(ctx, pos, is_range)
        })
    }

    fn control_inner(
        &mut self,
        ctx: &str,
        pos: usize,
        is_range: bool,
    ) -> Result<Branch, ParseError> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(ctx, is_range)?;
        if pipe.cmds.is_empty() {
            return self.err(pos, format!("missing value for {ctx}"));
        }
        let (list, end, epos) = self.item_list()?;
        let else_list = match end {
            Terminator::EndAction => None,
            Terminator::Eof => {
                self.vars.truncate(nvars);
                return self.err(epos, "unexpected EOF".to_string());
            }
            Terminator::Else(p) if p != usize::MAX => {
                // else if / else with: a nested control that shares our {{end}}
                let t = self.next_non_space();
                let nested_ctx = if t.tok == Tok::If { "if" } else { "with" };
                let b = self.control(nested_ctx, t.pos, false)?;
                let node = if t.tok == Tok::If {
                    Node::If(Box::new(b))
                } else {
                    Node::With(Box::new(b))
                };
                self.vars.truncate(nvars);
                return Ok(Branch {
                    pos,
                    pipe,
                    list,
                    else_list: Some(vec![node]),
                });
            }
            Terminator::Else(_) => {
                let (el, end2, epos2) = self.item_list()?;
                match end2 {
                    Terminator::EndAction => Some(el),
                    Terminator::Else(_) => {
                        self.vars.truncate(nvars);
                        return self.err(epos2, "expected end; found {{else}}");
                    }
                    Terminator::Eof => {
                        self.vars.truncate(nvars);
                        return self.err(epos2, "unexpected EOF");
                    }
                }
            }
        };
        self.vars.truncate(nvars);
        Ok(Branch {
            pos,
            pipe,
            list,
            else_list,
        })
    }

    /// Parses a pipeline up to the closing delimiter (consumed).
    fn pipeline(&mut self, ctx: &str, is_range: bool) -> Result<Pipe, ParseError> {
        stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, || {
            self.pipeline_inner(ctx, is_range)
        })
    }

    fn pipeline_inner(&mut self, ctx: &str, is_range: bool) -> Result<Pipe, ParseError> {
        self.skip_space();
        let pos = self.pos();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // declarations
        if let Tok::Variable(v) = self.peek().clone() {
            let save = self.i;
            self.next();
            let after = self.peek_non_space();
            match after {
                Tok::Declare | Tok::Assign => {
                    is_assign = after == Tok::Assign;
                    self.next();
                    decl.push(v.clone());
                }
                Tok::Comma if is_range => {
                    self.next();
                    let t2 = self.next_non_space();
                    let Tok::Variable(v2) = t2.tok.clone() else {
                        return self.unexpected(&t2, "range");
                    };
                    let t3 = self.next_non_space();
                    match t3.tok {
                        Tok::Declare => {}
                        Tok::Assign => is_assign = true,
                        _ => return self.unexpected(&t3, "range"),
                    }
                    decl.push(v.clone());
                    decl.push(v2);
                }
                _ => {
                    self.i = save;
                }
            }
            if is_assign {
                for d in &decl {
                    if !self.vars.contains(d) {
                        return self.err(pos, format!("undefined variable {d:?}"));
                    }
                }
            } else {
                for d in &decl {
                    self.vars.push(d.clone());
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let t = self.peek_non_space();
            match t {
                Tok::RightDelim => {
                    self.next();
                    self.check_pipeline(pos, ctx, &cmds)?;
                    return Ok(Pipe {
                        pos,
                        decl,
                        is_assign,
                        cmds,
                    });
                }
                Tok::RightParen if ctx == "parenthesized pipeline" => {
                    self.next();
                    self.check_pipeline(pos, ctx, &cmds)?;
                    return Ok(Pipe {
                        pos,
                        decl,
                        is_assign,
                        cmds,
                    });
                }
                Tok::Bool(_)
                | Tok::Char(..)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(..)
                | Tok::Variable(_)
                | Tok::LeftParen => {
                    cmds.push(self.command()?);
                }
                _ => {
                    let tok = self.next();
                    return self.unexpected(&tok, ctx);
                }
            }
        }
    }

    fn check_pipeline(&self, pos: usize, ctx: &str, cmds: &[Cmd]) -> Result<(), ParseError> {
        if cmds.is_empty() {
            if ctx == "command" || ctx == "parenthesized pipeline" {
                return self.err(pos, format!("missing value for {ctx}"));
            }
            return Ok(());
        }
        // non-executable commands can only appear first
        for (i, c) in cmds.iter().enumerate().skip(1) {
            if let Some(
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number { .. } | Arg::Str { .. },
            ) = c.args.first()
            {
                return self.err(
                    c.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Cmd, ParseError> {
        self.skip_space();
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            self.skip_space();
            let op = self.operand()?;
            if let Some(op) = op {
                args.push(op);
            }
            match self.peek().clone() {
                Tok::Space => {
                    self.skip_space();
                    match self.peek() {
                        Tok::RightDelim | Tok::RightParen | Tok::Pipe => {}
                        _ => continue,
                    }
                }
                Tok::RightDelim | Tok::RightParen => {}
                Tok::Pipe => {}
                _ => {
                    let t = self.next();
                    return self.unexpected(&t, "operand");
                }
            }
            if matches!(self.peek(), Tok::Pipe) {
                self.next();
                if matches!(self.peek_non_space(), Tok::RightDelim | Tok::RightParen) {
                    let t = self.next();
                    return self.unexpected(&t, "operand");
                }
            }
            break;
        }
        if args.is_empty() {
            return self.err(pos, "empty command");
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, ParseError> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if let Tok::Field(_) = self.peek() {
            // like Go, a chained node is positioned at its first chained field
            let pos = self.pos();
            let mut fields = Vec::new();
            while let Tok::Field(f) = self.peek().clone() {
                self.next();
                fields.push(f);
            }
            return Ok(Some(match node {
                Arg::Field { mut idents, .. } => {
                    idents.extend(fields);
                    Arg::Field { pos, idents }
                }
                Arg::Variable {
                    name, mut idents, ..
                } => {
                    idents.extend(fields);
                    Arg::Variable { pos, name, idents }
                }
                Arg::Bool(..)
                | Arg::Str { .. }
                | Arg::Number { .. }
                | Arg::Nil(_)
                | Arg::Dot(_) => {
                    return self.err(
                        pos,
                        format!("unexpected . after term {:?}", node.to_string()),
                    );
                }
                other => Arg::Chain {
                    pos,
                    node: Box::new(other),
                    fields,
                },
            }));
        }
        Ok(Some(node))
    }

    fn term(&mut self) -> Result<Option<Arg>, ParseError> {
        let t = self.next_non_space();
        let pos = t.pos;
        Ok(Some(match t.tok {
            Tok::Ident(name) => {
                if !(self.is_func)(&name) {
                    return self.err(pos, format!("function {name:?} not defined"));
                }
                Arg::Ident { pos, name }
            }
            Tok::Dot => Arg::Dot(pos),
            Tok::Nil => Arg::Nil(pos),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return self.err(pos, format!("undefined variable {name:?}"));
                }
                Arg::Variable {
                    pos,
                    name,
                    idents: Vec::new(),
                }
            }
            Tok::Field(f) => Arg::Field {
                pos,
                idents: vec![f],
            },
            Tok::Bool(b) => Arg::Bool(pos, b),
            Tok::Char(v, raw) => Arg::Number {
                pos,
                text: raw,
                value: Number::Int(v),
            },
            Tok::Number(text) => {
                let value = parse_number(&text)
                    .ok_or(())
                    .or_else(|_| self.err(pos, format!("illegal number syntax: {text:?}")))?;
                Arg::Number { pos, text, value }
            }
            Tok::Str(value, raw) => Arg::Str { pos, value, raw },
            Tok::LeftParen => {
                let p = self.pipeline("parenthesized pipeline", false)?;
                Arg::Pipe(Box::new(p))
            }
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        }))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::RightDelim => "\"}}\"".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::Eof => "EOF".into(),
        Tok::RightParen => "\")\"".into(),
        Tok::LeftParen => "\"(\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Ident(s) => format!("<{s}>"),
        Tok::Field(s) => format!("<.{s}>"),
        Tok::Variable(s) => format!("<{s}>"),
        Tok::Str(_, raw) => raw.clone(),
        Tok::Number(n) => n.clone(),
        Tok::Text(s) => format!("{s:?}"),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Dot => "<.>".into(),
        Tok::Space => "space".into(),
        other => format!("<{}>", format!("{other:?}").to_lowercase()),
    }
}

/// Go's number constants: ints (decimal, hex, octal, binary, with `_`) or floats.
pub fn parse_number(text: &str) -> Option<Number> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean).to_string()),
    };
    if body.ends_with('i') {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains('p') || h.contains('.') {
            None
        } else {
            i64::from_str_radix(h, 16).ok()
        }
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.chars().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.chars().all(|c| c.is_ascii_digit()) {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Some(Number::Int(if neg { -i } else { i }));
    }
    if lower.starts_with("0x") {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    if lower.contains(['.', 'e']) {
        return Some(Number::Float(if neg { -f } else { f }));
    }
    // an integer too large for int64
    Some(Number::Float(if neg { -f } else { f }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Parsed, ParseError> {
        parse("t", s, "{{", "}}", &|n| n != "nope")
    }

    #[test]
    fn pipes_print_like_go() {
        let parsed = p("{{ $x := .A.b | printf \"%s\" (len .C) }}").unwrap();
        let Node::Action(pipe) = &parsed.main.root[0] else {
            panic!()
        };
        assert_eq!(pipe.to_string(), "$x := .A.b | printf \"%s\" (len .C)");
    }

    #[test]
    fn errors_name_line() {
        assert_eq!(
            p("a\n{{ nope }}").err().unwrap().0,
            "template: t:2: function \"nope\" not defined"
        );
        assert_eq!(
            p("{{ $y }}").err().unwrap().0,
            "template: t:1: undefined variable \"$y\""
        );
        assert!(p("{{ if . }}").is_err());
        assert!(p("{{ end }}").is_err());
    }

    #[test]
    fn defines_and_else_if() {
        let parsed = p("{{define \"a\"}}x{{end}}{{if .}}1{{else if .B}}2{{else}}3{{end}}").unwrap();
        assert_eq!(parsed.defines.len(), 1);
        assert_eq!(parsed.main.root.len(), 1);
    }
}
