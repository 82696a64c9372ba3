//! Lexer for Go's text/template syntax (actions between delimiters, trim markers, comments).

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Plain text outside actions (after trimming).
    Text(String),
    LeftDelim,
    RightDelim,
    /// A comment action `{{/* ... */}}`.
    Comment,
    Space,
    Ident(String),
    /// `.Name` (the text without the dot).
    Field(String),
    /// `$name` (with the dollar; `$` alone is the root variable).
    Variable(String),
    Dot,
    Bool(bool),
    Nil,
    /// A number constant, as written.
    Number(String),
    /// A quoted string, already unescaped; second field is the original text.
    Str(String, String),
    /// A character constant 'x': its code point and the original text.
    Char(i64, String),
    Pipe,
    LeftParen,
    RightParen,
    Comma,
    Declare,
    Assign,
    // keywords
    If,
    Else,
    End,
    Range,
    With,
    Define,
    Template,
    Block,
    Break,
    Continue,
    Eof,
}

/// A token and its byte offset in the source.
#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// A lexing error: message and byte offset.
#[derive(Debug, Clone)]
pub struct LexError {
    pub msg: String,
    pub pos: usize,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits template source into tokens.
pub fn lex(src: &str, left: &str, right: &str) -> Result<Vec<Token>, LexError> {
    let mut lx = Lexer {
        src,
        left,
        right,
        pos: 0,
        toks: Vec::new(),
        paren_depth: 0,
    };
    lx.run()?;
    Ok(lx.toks)
}

struct Lexer<'a> {
    src: &'a str,
    left: &'a str,
    right: &'a str,
    pos: usize,
    toks: Vec<Token>,
    paren_depth: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn emit(&mut self, tok: Tok, pos: usize) {
        self.toks.push(Token { tok, pos });
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            msg: msg.into(),
            pos: self.pos,
        })
    }

    fn run(&mut self) -> Result<(), LexError> {
        // whether the previous action ended with a right trim marker
        let mut trim_next = false;
        loop {
            let rest = self.rest();
            let (text_end, found) = match rest.find(self.left) {
                Some(i) => (self.pos + i, true),
                None => (self.src.len(), false),
            };
            let mut text = &self.src[self.pos..text_end];
            if trim_next {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            let text_start = text_end - text.len();
            if !found {
                if !text.is_empty() {
                    self.emit(Tok::Text(text.to_string()), text_start);
                }
                let end = self.src.len();
                self.emit(Tok::Eof, end);
                return Ok(());
            }
            let after_left = text_end + self.left.len();
            let b = self.src.as_bytes();
            let left_trim =
                after_left + 1 < b.len() && b[after_left] == b'-' && is_space(b[after_left + 1]);
            if left_trim {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            }
            if !text.is_empty() {
                self.emit(Tok::Text(text.to_string()), text_start);
            }
            self.pos = after_left;
            if left_trim {
                self.pos += 1;
            }
            // comment?
            let save = self.pos;
            let mut p = self.pos;
            if left_trim {
                while p < b.len() && is_space(b[p]) {
                    p += 1;
                }
            }
            if self.src[p..].starts_with("/*") {
                let Some(end) = self.src[p + 2..].find("*/") else {
                    self.pos = p;
                    return self.err("unclosed comment");
                };
                self.pos = p + 2 + end + 2;
                let (is_delim, trim) = self.at_right_delim_after_space();
                if !is_delim {
                    return self.err("comment ends before closing delimiter");
                }
                self.emit(Tok::Comment, text_end);
                if trim {
                    self.pos += 2;
                }
                // skip spaces before "-" handled above; consume delimiter
                self.pos = self.skip_to_after_right(trim);
                trim_next = trim;
                continue;
            }
            self.pos = save;
            self.emit(Tok::LeftDelim, text_end);
            trim_next = self.lex_inside()?;
        }
    }

    /// After a comment: optional `space -` then right delimiter.
    fn at_right_delim_after_space(&self) -> (bool, bool) {
        let rest = self.rest();
        let b = rest.as_bytes();
        if b.len() >= 2 && is_space(b[0]) && b[1] == b'-' && rest[2..].starts_with(self.right) {
            return (true, true);
        }
        (rest.starts_with(self.right), false)
    }

    fn skip_to_after_right(&self, _trim: bool) -> usize {
        self.pos + self.right.len()
    }

    /// Lexes one action; returns whether it ended with a right trim marker.
    fn lex_inside(&mut self) -> Result<bool, LexError> {
        self.paren_depth = 0;
        loop {
            let rest = self.rest();
            let b = rest.as_bytes();
            // right delimiter, possibly with trim marker
            if b.len() >= 2 && is_space(b[0]) && b[1] == b'-' && rest[2..].starts_with(self.right) {
                if self.paren_depth > 0 {
                    return self.err("unclosed left paren");
                }
                let p = self.pos;
                self.pos += 2;
                self.emit(Tok::RightDelim, p);
                self.pos += self.right.len();
                return Ok(true);
            }
            if rest.starts_with(self.right) {
                if self.paren_depth > 0 {
                    return self.err("unclosed left paren");
                }
                let p = self.pos;
                self.emit(Tok::RightDelim, p);
                self.pos += self.right.len();
                return Ok(false);
            }
            let Some(c) = rest.chars().next() else {
                return self.err("unclosed action");
            };
            let start = self.pos;
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let n = rest
                        .find(|c: char| !matches!(c, ' ' | '\t' | '\r' | '\n'))
                        .unwrap_or(rest.len());
                    // a space right before a trim marker belongs to the marker
                    let after = &rest[n..];
                    if after.starts_with('-') && after[1..].starts_with(self.right) && n >= 1 {
                        self.pos += n - 1;
                    } else {
                        self.pos += n;
                    }
                    if self.pos == start {
                        // the single space is part of " -}}", handled at loop top
                        continue;
                    }
                    self.emit(Tok::Space, start);
                }
                '=' => {
                    self.pos += 1;
                    self.emit(Tok::Assign, start);
                }
                ':' => {
                    if !rest.starts_with(":=") {
                        return self.err("expected :=");
                    }
                    self.pos += 2;
                    self.emit(Tok::Declare, start);
                }
                '|' => {
                    self.pos += 1;
                    self.emit(Tok::Pipe, start);
                }
                ',' => {
                    self.pos += 1;
                    self.emit(Tok::Comma, start);
                }
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.emit(Tok::LeftParen, start);
                }
                ')' => {
                    if self.paren_depth == 0 {
                        return self.err("unexpected right paren");
                    }
                    self.paren_depth -= 1;
                    self.pos += 1;
                    self.emit(Tok::RightParen, start);
                }
                '"' => {
                    let (s, raw) = self.lex_quote()?;
                    self.emit(Tok::Str(s, raw), start);
                }
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return self.err("unterminated raw quoted string");
                    };
                    let s = rest[1..1 + end].to_string();
                    let raw = rest[..end + 2].to_string();
                    self.pos += end + 2;
                    self.emit(Tok::Str(s.replace('\r', ""), raw), start);
                }
                '\'' => {
                    let (v, raw) = self.lex_char()?;
                    self.emit(Tok::Char(v, raw), start);
                }
                '$' => {
                    let n = 1 + rest[1..]
                        .find(|c: char| !is_alnum(c))
                        .unwrap_or(rest.len() - 1);
                    let name = rest[..n].to_string();
                    self.pos += n;
                    self.emit(Tok::Variable(name), start);
                }
                '.' => {
                    // a number like .5?
                    let next = rest[1..].chars().next();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        self.lex_number()?;
                        continue;
                    }
                    let n = 1 + rest[1..]
                        .find(|c: char| !is_alnum(c))
                        .unwrap_or(rest.len() - 1);
                    if n == 1 {
                        self.pos += 1;
                        self.emit(Tok::Dot, start);
                    } else {
                        let name = rest[1..n].to_string();
                        self.pos += n;
                        self.emit(Tok::Field(name), start);
                    }
                }
                '+' | '-' | '0'..='9' => {
                    self.lex_number()?;
                }
                c if is_alnum(c) => {
                    let n = rest.find(|c: char| !is_alnum(c)).unwrap_or(rest.len());
                    let word = &rest[..n];
                    self.pos += n;
                    let tok = match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        "if" => Tok::If,
                        "else" => Tok::Else,
                        "end" => Tok::End,
                        "range" => Tok::Range,
                        "with" => Tok::With,
                        "define" => Tok::Define,
                        "template" => Tok::Template,
                        "block" => Tok::Block,
                        "break" => Tok::Break,
                        "continue" => Tok::Continue,
                        _ => Tok::Ident(word.to_string()),
                    };
                    self.emit(tok, start);
                }
                other => {
                    return self.err(format!("unexpected {other:?} in command"));
                }
            }
        }
    }

    fn lex_number(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        let rest = self.rest();
        let b = rest.as_bytes();
        let mut i = 0;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let mut digits: &[u8] = b"0123456789_";
        if i + 1 < b.len() && b[i] == b'0' && matches!(b[i + 1], b'x' | b'X') {
            i += 2;
            digits = b"0123456789abcdefABCDEF_";
        } else if i + 1 < b.len() && b[i] == b'0' && matches!(b[i + 1], b'o' | b'O') {
            i += 2;
            digits = b"01234567_";
        } else if i + 1 < b.len() && b[i] == b'0' && matches!(b[i + 1], b'b' | b'B') {
            i += 2;
            digits = b"01_";
        }
        while i < b.len() && digits.contains(&b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && digits.contains(&b[i]) {
                i += 1;
            }
        }
        if digits.len() == 11 && i < b.len() && matches!(b[i], b'e' | b'E') {
            i += 1;
            if i < b.len() && matches!(b[i], b'+' | b'-') {
                i += 1;
            }
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if digits.len() == 23 && i < b.len() && matches!(b[i], b'p' | b'P') {
            i += 1;
            if i < b.len() && matches!(b[i], b'+' | b'-') {
                i += 1;
            }
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < b.len() && b[i] == b'i' {
            i += 1;
        }
        let text = &rest[..i];
        if rest[i..].chars().next().is_some_and(is_alnum) || text == "+" || text == "-" {
            let end = i + rest[i..]
                .find(|c: char| !is_alnum(c))
                .unwrap_or(rest.len() - i);
            return self.err(format!("bad number syntax: {:?}", &rest[..end]));
        }
        self.pos += i;
        self.emit(Tok::Number(text.to_string()), start);
        Ok(())
    }

    fn lex_quote(&mut self) -> Result<(String, String), LexError> {
        let rest = self.rest();
        let mut chars = rest.char_indices().skip(1);
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let raw = rest[..i + 1].to_string();
                    self.pos += i + 1;
                    return Ok((out, raw));
                }
                '\n' => return self.err("unterminated quoted string"),
                '\\' => {
                    let Some((_, e)) = chars.next() else {
                        return self.err("unterminated quoted string");
                    };
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'a' => out.push('\u{7}'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'v' => out.push('\u{b}'),
                        '\\' => out.push('\\'),
                        '"' => out.push('"'),
                        '\'' => out.push('\''),
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let mut hex = String::new();
                            for _ in 0..n {
                                match chars.next() {
                                    Some((_, h)) if h.is_ascii_hexdigit() => hex.push(h),
                                    _ => return self.err("invalid syntax in quoted string"),
                                }
                            }
                            let v = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                            out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
                        }
                        '0'..='7' => {
                            let mut oct = String::from(e);
                            for _ in 0..2 {
                                match chars.next() {
                                    Some((_, h)) if ('0'..='7').contains(&h) => oct.push(h),
                                    _ => return self.err("invalid syntax in quoted string"),
                                }
                            }
                            let v = u32::from_str_radix(&oct, 8).unwrap_or(0xFFFD);
                            out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
                        }
                        _ => return self.err("invalid syntax in quoted string"),
                    }
                }
                c => out.push(c),
            }
        }
        self.err("unterminated quoted string")
    }

    fn lex_char(&mut self) -> Result<(i64, String), LexError> {
        let rest = self.rest();
        let Some(end) = rest[1..].find('\'') else {
            return self.err("unterminated character constant");
        };
        let mut end = end + 1;
        // an escaped quote '\''
        if rest[1..end].ends_with('\\')
            && rest[1..].starts_with("\\'")
            && let Some(e2) = rest[end + 1..].find('\'')
        {
            end = end + 1 + e2;
        }
        let inner = &rest[1..end];
        let raw = rest[..end + 1].to_string();
        let v = if let Some(esc) = inner.strip_prefix('\\') {
            match esc {
                "n" => 10,
                "t" => 9,
                "r" => 13,
                "\\" => 92,
                "'" => 39,
                "0" => 0,
                _ => return self.err("invalid character constant"),
            }
        } else {
            let mut cs = inner.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => c as i64,
                _ => return self.err("invalid character constant"),
            }
        };
        self.pos += end + 1;
        Ok((v, raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s, "{{", "}}")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn trims_and_fields() {
        assert_eq!(
            toks("a  {{- .X.y -}}  b"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Space,
                Tok::Field("X".into()),
                Tok::Field("y".into()),
                Tok::RightDelim,
                Tok::Text("b".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn comments_and_numbers() {
        assert_eq!(
            toks("{{/* c */}}x"),
            vec![Tok::Comment, Tok::Text("x".into()), Tok::Eof]
        );
        assert_eq!(
            toks("{{ -1 }}"),
            vec![
                Tok::LeftDelim,
                Tok::Space,
                Tok::Number("-1".into()),
                Tok::Space,
                Tok::RightDelim,
                Tok::Eof
            ]
        );
    }
}
