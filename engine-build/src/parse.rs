//! The Dockerfile front end: parser directives, comments, line
//! continuations, here-documents, instructions with their flags, exec and
//! shell forms, stages; and the shell-like word processing (quotes,
//! escapes, `$VAR`, `${VAR:-default}`) that instructions apply to their
//! arguments.

use engine_core::{Error, Result};

/// The instructions the builder knows.
pub const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Flags each instruction takes (`--name=value`).
fn allowed_flags(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "FROM" => &["platform"],
        "COPY" => &["from", "chown", "chmod", "link"],
        "ADD" => &["chown", "chmod", "link"],
        "RUN" => &["network"],
        "HEALTHCHECK" => &["interval", "timeout", "start-period", "start-interval", "retries"],
        _ => &[],
    }
}

/// An instruction's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Args {
    /// The JSON (exec) form: `["a", "b"]`.
    Exec(Vec<String>),
    /// The shell form: the rest of the line, as written.
    Shell(String),
}

/// A here-document (`<<EOF` ... `EOF`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    /// Its terminating word.
    pub name: String,
    /// Its body, with a final newline.
    pub body: String,
}

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub line: usize,
    /// Upper-case keyword (`RUN`).
    pub keyword: String,
    /// Flags as given (`--chown=1:1` is `("chown", "1:1")`).
    pub flags: Vec<(String, String)>,
    /// Its arguments.
    pub args: Args,
    /// Here-documents that follow it.
    pub heredocs: Vec<Heredoc>,
    /// The instruction as written (continuations joined), for progress lines.
    pub original: String,
}

impl Instruction {
    /// The value of flag `name`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The shell-form text (exec form joined by spaces).
    pub fn text(&self) -> String {
        match &self.args {
            Args::Shell(s) => s.clone(),
            Args::Exec(v) => v.join(" "),
        }
    }
}

/// One build stage: its `FROM` and the instructions after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position.
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The `FROM` instruction.
    pub from: Instruction,
    /// The base image as written (before `ARG` substitution).
    pub base: String,
    /// The instructions after `FROM`.
    pub instructions: Vec<Instruction>,
}

/// A parsed Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` or, by directive, `` ` ``).
    pub escape: char,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub global_args: Vec<Instruction>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The index of the stage `target` names (its `AS` name or its index).
    pub fn stage_index(&self, target: &str) -> Result<usize> {
        let t = target.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.as_str()))
            .or_else(|| t.parse::<usize>().ok().filter(|i| *i < self.stages.len()))
            .ok_or_else(|| Error::invalid("target", format!("failed to reach build target {target} in Dockerfile")))
    }
}

fn perr(line: usize, msg: impl std::fmt::Display) -> Error {
    Error::invalid("Dockerfile", format!("dockerfile parse error on line {line}: {msg}"))
}

/// Parse a Dockerfile.
///
/// ```
/// let df = engine_build::parse::parse("ARG V=1\nFROM busybox:${V} AS base\nRUN echo \\\n  hi\nCMD [\"sh\"]\n")?;
/// assert_eq!(df.stages.len(), 1);
/// assert_eq!(df.stages[0].name.as_deref(), Some("base"));
/// assert_eq!(df.stages[0].instructions[0].original, "RUN echo   hi");
/// assert!(engine_build::parse::parse("FROM busybox\nFOO bar\n").unwrap_err().to_string().contains("line 2"));
/// # Ok::<(), engine_core::Error>(())
/// ```
pub fn parse(text: &str) -> Result<Dockerfile> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: `# name=value` lines at the very top.
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(d) = l.strip_prefix('#') else { break };
        let Some((k, v)) = d.split_once('=') else { break };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k.contains(' ') || k.is_empty() {
            break;
        }
        match k.as_str() {
            "escape" => {
                escape = match v {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(perr(i + 1, format!("invalid escape token {v:?} does not match ` or \\"))),
                }
            }
            "syntax" | "check" => {}
            _ => break,
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let t = first.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut logical = String::new();
        let mut cur = first.trim_end().to_string();
        loop {
            if cur.ends_with(escape) && !cur.ends_with(&format!("{escape}{escape}")) {
                cur.pop();
                logical.push_str(&cur);
                // Continue with the next non-comment line.
                let mut next = None;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let lt = l.trim();
                    if lt.starts_with('#') || lt.is_empty() {
                        continue;
                    }
                    next = Some(l.trim_end().to_string());
                    break;
                }
                match next {
                    Some(n) => cur = n,
                    None => break,
                }
            } else {
                logical.push_str(&cur);
                break;
            }
        }
        let mut ins = parse_instruction(start + 1, logical.trim())?;
        // Here-documents (RUN, COPY): their bodies follow the line.
        if matches!(ins.keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, strip_tabs) in heredoc_markers(&ins.text()) {
                let mut body = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let content = if strip_tabs { l.trim_start_matches('\t') } else { l };
                    if content == name {
                        closed = true;
                        break;
                    }
                    body.push_str(content);
                    body.push('\n');
                }
                if !closed {
                    return Err(perr(start + 1, format!("here-document {name} is not terminated")));
                }
                ins.heredocs.push(Heredoc { name, body });
            }
        }
        instructions.push(ins);
    }
    let mut df = Dockerfile { escape, global_args: Vec::new(), stages: Vec::new() };
    for ins in instructions {
        if ins.keyword == "FROM" {
            let words = split_raw(&ins.text(), escape);
            let (base, name) = match words.as_slice() {
                [b] => (b.clone(), None),
                [b, as_, n] if as_.eq_ignore_ascii_case("as") => {
                    let n = n.to_ascii_lowercase();
                    let valid = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                    if !valid {
                        return Err(perr(ins.line, format!("invalid name for build stage: {n:?}")));
                    }
                    if df.stages.iter().any(|s| s.name.as_deref() == Some(n.as_str())) {
                        return Err(perr(ins.line, format!("duplicate name for build stage: {n:?}")));
                    }
                    (b.clone(), Some(n))
                }
                _ => return Err(perr(ins.line, "FROM requires either one or three arguments")),
            };
            let index = df.stages.len();
            df.stages.push(Stage { index, name, base, from: ins, instructions: Vec::new() });
        } else if let Some(st) = df.stages.last_mut() {
            st.instructions.push(ins);
        } else if ins.keyword == "ARG" {
            df.global_args.push(ins);
        } else {
            return Err(perr(ins.line, format!("{} before any FROM: no build stage in current context", ins.keyword)));
        }
    }
    if df.stages.is_empty() {
        return Err(Error::invalid("Dockerfile", "the Dockerfile has no FROM instruction (file with no instructions)"));
    }
    Ok(df)
}

/// Parse one logical line.
pub fn parse_instruction(line: usize, text: &str) -> Result<Instruction> {
    let (kw, rest) = match text.find(char::is_whitespace) {
        Some(p) => (&text[..p], text[p..].trim_start()),
        None => (text, ""),
    };
    let keyword = kw.to_ascii_uppercase();
    if !INSTRUCTIONS.contains(&keyword.as_str()) {
        return Err(perr(line, format!("unknown instruction: {kw}")));
    }
    let mut rest = rest;
    let mut flags = Vec::new();
    if keyword != "ONBUILD" {
        while let Some(f) = rest.strip_prefix("--") {
            let end = f.find(char::is_whitespace).unwrap_or(f.len());
            let tok = &f[..end];
            let (k, v) = tok.split_once('=').unwrap_or((tok, "true"));
            if !allowed_flags(&keyword).contains(&k) {
                return Err(perr(line, format!("unknown flag: --{k} for {keyword}")));
            }
            flags.push((k.to_string(), v.to_string()));
            rest = f[end..].trim_start();
        }
    }
    let json_form = matches!(keyword.as_str(), "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "COPY" | "ADD" | "VOLUME");
    let args = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if json_form && rest.starts_with('[') => Args::Exec(v),
        _ => Args::Shell(rest.to_string()),
    };
    if keyword == "SHELL" && !matches!(args, Args::Exec(ref v) if !v.is_empty()) {
        return Err(perr(line, "SHELL requires the arguments to be in JSON form"));
    }
    let needs_args = !matches!(keyword.as_str(), "CMD" | "ENTRYPOINT");
    if needs_args && rest.is_empty() {
        return Err(perr(line, format!("{keyword} requires at least one argument")));
    }
    if keyword == "ONBUILD" {
        let inner = parse_instruction(line, rest)?;
        if matches!(inner.keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
            return Err(perr(line, format!("{} isn't allowed as an ONBUILD trigger", inner.keyword)));
        }
    }
    Ok(Instruction {
        line,
        keyword,
        flags,
        args,
        heredocs: Vec::new(),
        original: format!("{kw} {text_rest}", text_rest = text[kw.len()..].trim_start()).trim().to_string(),
    })
}

/// The here-document markers in `text`: (terminator, strip leading tabs).
fn heredoc_markers(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i + 1 < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == b'"' || c == b'\'' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c == b'<' && b[i + 1] == b'<' && b.get(i + 2) != Some(&b'<') {
            let mut j = i + 2;
            let strip = b.get(j) == Some(&b'-');
            if strip {
                j += 1;
            }
            let q = b.get(j).copied().filter(|c| *c == b'"' || *c == b'\'');
            if q.is_some() {
                j += 1;
            }
            let s = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > s {
                out.push((text[s..j].to_string(), strip));
            }
            i = j + usize::from(q.is_some());
            continue;
        }
        i += 1;
    }
    out
}

/// Split on unquoted whitespace, keeping quotes and escapes as written.
pub fn split_raw(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut any = false;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            None => {
                any = true;
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Process one word as the shell would: remove quotes, apply escapes,
/// substitute `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`,
/// `${VAR:+word}`, `${VAR+word}` from `vars`. `$` escaped or in single
/// quotes stays literal.
///
/// ```
/// let vars = |k: &str| (k == "A").then(|| "x y".to_string());
/// assert_eq!(engine_build::parse::expand("\"$A\"-${B:-d}-'$A'", '\\', &vars).unwrap(), "x y-d-$A");
/// ```
pub fn expand(word: &str, escape: char, vars: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut dq = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' && !dq {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '\'')
                .ok_or_else(|| Error::invalid("word", format!("unterminated single quote in {word:?}")))?;
            out.extend(&chars[i + 1..i + 1 + end]);
            i += end + 2;
            continue;
        }
        if c == '"' {
            dq = !dq;
            i += 1;
            continue;
        }
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                if dq && !matches!(n, '"' | '$') && n != escape {
                    out.push(c);
                }
                out.push(n);
                i += 2;
            } else {
                out.push(c);
                i += 1;
            }
            continue;
        }
        if c == '$' {
            if chars.get(i + 1) == Some(&'{') {
                let end = chars[i + 2..]
                    .iter()
                    .position(|&x| x == '}')
                    .ok_or_else(|| Error::invalid("word", format!("missing '}}' in {word:?}")))?;
                let inner: String = chars[i + 2..i + 2 + end].iter().collect();
                i += end + 3;
                let name_end = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
                let (name, op) = inner.split_at(name_end);
                if name.is_empty() {
                    return Err(Error::invalid("word", format!("bad substitution in {word:?}")));
                }
                let val = vars(name);
                let v = if let Some(d) = op.strip_prefix(":-") {
                    val.filter(|v| !v.is_empty()).unwrap_or(expand(d, escape, vars)?)
                } else if let Some(d) = op.strip_prefix(":+") {
                    if val.is_some_and(|v| !v.is_empty()) {
                        expand(d, escape, vars)?
                    } else {
                        String::new()
                    }
                } else if let Some(d) = op.strip_prefix('-') {
                    val.unwrap_or(expand(d, escape, vars)?)
                } else if let Some(d) = op.strip_prefix('+') {
                    if val.is_some() {
                        expand(d, escape, vars)?
                    } else {
                        String::new()
                    }
                } else if op.is_empty() {
                    val.unwrap_or_default()
                } else {
                    return Err(Error::invalid("word", format!("unsupported modifier {op:?} in {word:?}")));
                };
                out.push_str(&v);
                continue;
            }
            let s = i + 1;
            let mut j = s;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if j == s {
                out.push('$');
                i += 1;
                continue;
            }
            let name: String = chars[s..j].iter().collect();
            out.push_str(&vars(&name).unwrap_or_default());
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

/// `KEY=value` pairs of ENV, LABEL (and the legacy `ENV KEY value` form),
/// values processed with [`expand`].
pub fn key_values(
    ins: &Instruction,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let text = ins.text();
    let words = split_raw(&text, escape);
    let line_err = |m: &str| perr(ins.line, format!("{}: {m}", ins.keyword));
    if words.is_empty() {
        return Err(line_err("requires at least one argument"));
    }
    if !words[0].contains('=') {
        if ins.keyword == "LABEL" {
            return Err(line_err("LABEL requires key=value pairs"));
        }
        let key = words[0].clone();
        let rest = text.trim_start()[key.len()..].trim();
        if rest.is_empty() {
            return Err(line_err(&format!("{key} needs a value")));
        }
        return Ok(vec![(key, expand(rest, escape, vars)?)]);
    }
    let mut out = Vec::new();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| line_err(&format!("{w:?} is not of the form key=value")))?;
        let k = expand(k, escape, vars)?;
        if k.is_empty() {
            return Err(line_err(&format!("{w:?} has an empty key")));
        }
        out.push((k, expand(v, escape, vars)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_escape_heredocs() {
        let df = parse("# escape=`\nFROM busybox\nRUN echo a `\n# comment\n  b\nRUN <<EOF\necho one\necho two\nEOF\nCOPY a b /c/\n")
            .unwrap();
        assert_eq!(df.escape, '`');
        let ins = &df.stages[0].instructions;
        assert_eq!(ins[0].text(), "echo a   b");
        assert_eq!(ins[1].heredocs[0].body, "echo one\necho two\n");
        assert_eq!(ins[2].keyword, "COPY");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM busybox\n\nRUN true\nNOPE x\n").unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("NOPE"), "{e}");
        let e = parse("RUN true\nFROM x\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = parse("FROM busybox\nCOPY --bogus=1 a b\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("--bogus"), "{e}");
    }

    #[test]
    fn words_and_pairs() {
        let vars = |k: &str| (k == "X").then(|| "1".to_string());
        let ins = parse_instruction(1, "ENV A=\"a b\" B=${X}c C=$Y").unwrap();
        let kv = key_values(&ins, '\\', &vars).unwrap();
        assert_eq!(kv, vec![("A".into(), "a b".into()), ("B".into(), "1c".into()), ("C".into(), "".into())]);
        let ins = parse_instruction(1, "ENV A hello world").unwrap();
        assert_eq!(key_values(&ins, '\\', &vars).unwrap(), vec![("A".into(), "hello world".into())]);
        assert_eq!(expand("\\$X", '\\', &vars).unwrap(), "$X");
        assert_eq!(expand("${X:+set}${Z:+no}", '\\', &vars).unwrap(), "set");
    }
}
