//! Path patterns: the wildcards of `COPY`/`ADD` sources (Go's
//! `filepath.Match`: `*`, `?`, `[...]`) and `.dockerignore` (the same plus
//! `**` across directories and `!` exceptions, the last match winning).

/// Does `name` match `pattern` (one path, `/`-separated; `*` and `?` never
/// match `/`, `**` as a whole component matches any number of components)?
///
/// ```
/// use engine_build::ignore::matches;
/// assert!(matches("*.txt", "a.txt"));
/// assert!(!matches("*.txt", "d/a.txt"));
/// assert!(matches("**/*.txt", "d/e/a.txt"));
/// assert!(matches("f[0-9]", "f7"));
/// ```
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let n: Vec<&str> = name.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    match_parts(&p, &n)
}

fn match_parts(p: &[&str], n: &[&str]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some((&"**", rest)) => (0..=n.len()).any(|k| match_parts(rest, &n[k..])),
        Some((first, rest)) => match n.split_first() {
            Some((nf, nrest)) => match_component(first.as_bytes(), nf.as_bytes()) && match_parts(rest, nrest),
            None => false,
        },
    }
}

fn match_component(p: &[u8], n: &[u8]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => (0..=n.len()).any(|k| match_component(&p[1..], &n[k..])),
        Some(b'?') => !n.is_empty() && match_component(&p[1..], &n[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().position(|&c| c == b']') else {
                return n.first() == Some(&b'[') && match_component(&p[1..], &n[1..]);
            };
            let Some(&c) = n.first() else { return false };
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some(b'^') | Some(b'!'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_component(&p[end + 1..], &n[1..])
        }
        Some(b'\\') if p.len() > 1 => n.first() == Some(&p[1]) && match_component(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && match_component(&p[1..], &n[1..]),
    }
}

/// Does a source path contain wildcards?
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The patterns of a `.dockerignore`.
#[derive(Clone, Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<(String, bool)>,
}

impl DockerIgnore {
    /// Parse a `.dockerignore` (comments, blank lines, `!` exceptions).
    ///
    /// ```
    /// let ig = engine_build::ignore::DockerIgnore::parse("# c\n*.log\n!keep.log\nsecret/\n");
    /// assert!(ig.ignored("a.log") && !ig.ignored("keep.log"));
    /// assert!(ig.ignored("secret/x/y"));
    /// ```
    pub fn parse(text: &str) -> DockerIgnore {
        let mut rules = Vec::new();
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let p = p.trim_start_matches('/').trim_end_matches('/');
            let p = p.strip_prefix("./").unwrap_or(p);
            if !p.is_empty() {
                rules.push((p.to_string(), neg));
            }
        }
        DockerIgnore { rules }
    }

    /// Is the context path `rel` (or a parent directory of it) excluded?
    pub fn ignored(&self, rel: &str) -> bool {
        let rel = rel.trim_start_matches('/');
        let comps: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = false;
        for (p, neg) in &self.rules {
            // A pattern matching a parent directory covers everything under it.
            let hit = (1..=comps.len()).any(|k| matches(p, &comps[..k].join("/")));
            if hit {
                out = !neg;
            }
        }
        out
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("a/*/c", "a/b/c") && !matches("a/*/c", "a/b/x/c"));
        assert!(matches("**", "any/thing") && matches("a/**", "a/b/c") && matches("**/c", "c"));
        assert!(matches("f?o", "foo") && !matches("f?o", "fo"));
        assert!(matches("[!a]x", "bx") && !matches("[!a]x", "ax"));
        let ig = DockerIgnore::parse("dir\n!dir/keep\n/abs.txt\n");
        assert!(ig.ignored("dir/x") && !ig.ignored("dir/keep") && ig.ignored("abs.txt") && !ig.ignored("other"));
    }
}
