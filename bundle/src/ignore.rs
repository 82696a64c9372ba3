//! `.fleetignore` files (Fleet's `bundlereader` ignore tree) and Go's `filepath.Match`.
//!
//! Each directory may hold a `.fleetignore` with one pattern per line (`#` comments, trailing
//! spaces trimmed unless escaped). A pattern applies to the base name of files and directories
//! in that directory and below, but not to sibling directories. `dir/*` ignores a directory
//! named `dir`.

use std::path::{Path, PathBuf};

/// Ignore patterns collected while walking a bundle folder, keyed by the directory whose
/// `.fleetignore` declared them.
#[derive(Debug, Default, Clone)]
pub struct IgnoreTree {
    nodes: Vec<(PathBuf, Vec<String>)>,
}

impl IgnoreTree {
    /// Reads `dir/.fleetignore` if present and records its patterns for `dir` and below.
    pub fn add_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        let file = dir.join(".fleetignore");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let patterns = parse_fleetignore(&text);
        if !patterns.is_empty() {
            self.nodes.push((dir.to_path_buf(), patterns));
        }
        Ok(())
    }

    /// Whether `path` (a file or, with `is_dir`, a directory) is ignored by the patterns of
    /// its ancestors.
    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        let Some(base) = path.file_name().map(|b| b.to_string_lossy().into_owned()) else {
            return false;
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        for (dir, patterns) in &self.nodes {
            if !parent.starts_with(dir) {
                continue;
            }
            for pattern in patterns {
                if is_all_files_in_dir_pattern(pattern) {
                    if is_dir && pattern.trim_end_matches("/*") == base {
                        return true;
                    }
                } else if go_match(pattern, &base).unwrap_or(false) {
                    return true;
                }
            }
        }
        false
    }
}

fn is_all_files_in_dir_pattern(p: &str) -> bool {
    // ^.+/\*
    p.find("/*").is_some_and(|i| i > 0)
}

/// The patterns of a `.fleetignore` file.
pub fn parse_fleetignore(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = trim_unescaped_trailing_space(line);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        out.push(trimmed);
    }
    out
}

fn trim_unescaped_trailing_space(line: &str) -> String {
    // Fleet: `([^\\])\s+$` → `$1`.
    let trimmed = line.trim_end();
    if trimmed.len() == line.len() {
        return line.to_string();
    }
    if trimmed.ends_with('\\') || trimmed.is_empty() {
        // An escaped space keeps all the whitespace that follows the backslash.
        if trimmed.is_empty() {
            return String::new();
        }
        return line.to_string();
    }
    trimmed.to_string()
}

/// Go's `path/filepath.Match` (Unix separator): `*`, `?`, `[...]` classes with ranges and `^`
/// negation, and `\` escapes. `*` and `?` do not match `/`. Returns `Err` for a malformed
/// pattern.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n).map_err(|()| format!("syntax error in pattern {pattern:?}"))
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, ()> {
    let mut pi = 0;
    let mut ni = 0;
    while pi < p.len() {
        match p[pi] {
            '*' => {
                while pi < p.len() && p[pi] == '*' {
                    pi += 1;
                }
                if pi == p.len() {
                    return Ok(!n[ni..].contains(&'/'));
                }
                let mut k = ni;
                loop {
                    if match_from(&p[pi..], &n[k..])? {
                        return Ok(true);
                    }
                    if k >= n.len() || n[k] == '/' {
                        // Still validate the rest of the pattern for syntax errors.
                        check_syntax(&p[pi..])?;
                        return Ok(false);
                    }
                    k += 1;
                }
            }
            '?' => {
                if ni >= n.len() || n[ni] == '/' {
                    check_syntax(&p[pi + 1..])?;
                    return Ok(false);
                }
                pi += 1;
                ni += 1;
            }
            '[' => {
                let (matched, next) = match_class(p, pi, n.get(ni).copied())?;
                if !matched {
                    check_syntax(&p[next..])?;
                    return Ok(false);
                }
                pi = next;
                ni += 1;
            }
            '\\' => {
                pi += 1;
                if pi >= p.len() {
                    return Err(());
                }
                if ni >= n.len() || n[ni] != p[pi] {
                    return Ok(false);
                }
                pi += 1;
                ni += 1;
            }
            c => {
                if ni >= n.len() || n[ni] != c {
                    check_syntax(&p[pi + 1..])?;
                    return Ok(false);
                }
                pi += 1;
                ni += 1;
            }
        }
    }
    Ok(ni == n.len())
}

fn check_syntax(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '[' => {
                let (_, next) = match_class(p, i, Some('\0'))?;
                i = next;
            }
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Matches `c` against the class starting at `p[start] == '['`; returns whether it matched and
/// the index after the closing `]`.
fn match_class(p: &[char], start: usize, c: Option<char>) -> Result<(bool, usize), ()> {
    let mut i = start + 1;
    let negated = i < p.len() && p[i] == '^';
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        if i >= p.len() {
            return Err(());
        }
        if p[i] == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = class_char(p, &mut i)?;
        let mut hi = lo;
        if i < p.len() && p[i] == '-' {
            i += 1;
            hi = class_char(p, &mut i)?;
        }
        if let Some(c) = c
            && lo <= c
            && c <= hi
        {
            matched = true;
        }
    }
    let Some(c) = c else {
        return Ok((false, i));
    };
    if c == '/' {
        return Ok((false, i));
    }
    Ok((matched != negated, i))
}

fn class_char(p: &[char], i: &mut usize) -> Result<char, ()> {
    if *i >= p.len() {
        return Err(());
    }
    match p[*i] {
        '-' | ']' => Err(()),
        '\\' => {
            *i += 1;
            if *i >= p.len() {
                return Err(());
            }
            let c = p[*i];
            *i += 1;
            Ok(c)
        }
        c => {
            *i += 1;
            Ok(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_basics() {
        assert!(go_match("*.yaml", "a.yaml").unwrap());
        assert!(!go_match("*.yaml", "a.yml").unwrap());
        assert!(go_match("a?c", "abc").unwrap());
        assert!(go_match("[a-c]x", "bx").unwrap());
        assert!(!go_match("[^a-c]x", "bx").unwrap());
        assert!(go_match("\\*", "*").unwrap());
        assert!(go_match("README*", "README.md").unwrap());
        assert!(go_match("[", "x").is_err());
    }

    #[test]
    fn fleetignore_parsing() {
        let p = parse_fleetignore("# comment\n\n*.md   \nfoo\\ \nsecret/*\n");
        assert_eq!(p, vec!["*.md", "foo\\ ", "secret/*"]);
    }

    #[test]
    fn patterns_apply_below_their_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/sub")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("a/.fleetignore"), "*.txt\nskip/*\n").unwrap();
        let mut tree = IgnoreTree::default();
        tree.add_dir(root).unwrap();
        tree.add_dir(&root.join("a")).unwrap();
        assert!(tree.is_ignored(&root.join("a/x.txt"), false));
        assert!(tree.is_ignored(&root.join("a/sub/y.txt"), false));
        assert!(!tree.is_ignored(&root.join("b/x.txt"), false));
        assert!(tree.is_ignored(&root.join("a/skip"), true));
        assert!(!tree.is_ignored(&root.join("a/skip"), false));
    }
}
