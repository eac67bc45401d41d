//! A JSON mutator driven by the fuzzer's bytes, shared by the config.json
//! fuzzer here and the create-body fuzzer of `engine-daemon` (which
//! includes this file by path).
#![allow(dead_code)]

use serde_json::{json, Value};

/// A cursor over the fuzzer's bytes: every choice the mutator makes is read
/// from the input, so an input replays exactly.
pub struct Cursor<'a>(pub &'a [u8]);

impl Cursor<'_> {
    pub fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
    pub fn i64(&mut self) -> i64 {
        i64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// A value of any JSON type, biased towards the odd ones (empty, huge,
/// negative, hostile paths).
pub fn any_value(c: &mut Cursor, keys: &[&str], strings: &[&str], depth: usize) -> Value {
    match c.below(if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(c.byte().is_multiple_of(2)),
        2 => json!(c.i64()),
        3 => [json!(u64::MAX), json!(-1), json!(0), json!(1u64 << 53), json!(i64::MIN), json!(u32::MAX as u64 + 1)]
            [c.below(6)]
        .clone(),
        4 => match c.below(3) {
            0 => json!(strings[c.below(strings.len())]),
            1 => json!("a".repeat(usize::from(c.byte()) * 40)),
            _ => json!(String::from_utf8_lossy(&(0..c.below(24)).map(|_| c.byte()).collect::<Vec<_>>())),
        },
        5 => Value::Array((0..c.below(4)).map(|_| any_value(c, keys, strings, depth + 1)).collect()),
        _ => Value::Object(
            (0..c.below(4))
                .map(|_| (keys[c.below(keys.len())].to_string(), any_value(c, keys, strings, depth + 1)))
                .collect(),
        ),
    }
}

/// Apply a few input-chosen edits to `v`: replace, add or remove a value at a
/// path chosen by descending the tree.
pub fn mutate(v: &mut Value, c: &mut Cursor, keys: &[&str], strings: &[&str]) {
    for _ in 0..1 + c.below(6) {
        if c.done() {
            return;
        }
        // Choose the path on a shared walk, then edit through a JSON pointer.
        let mut ptr = String::new();
        let mut at = &*v;
        loop {
            let stop = c.below(4) == 0;
            match at {
                Value::Object(m) if !m.is_empty() && !stop => {
                    let k = m.keys().nth(c.below(m.len())).unwrap();
                    ptr.push('/');
                    ptr.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    at = &m[k];
                }
                Value::Array(a) if !a.is_empty() && !stop => {
                    let i = c.below(a.len());
                    ptr.push_str(&format!("/{i}"));
                    at = &a[i];
                }
                _ => break,
            }
        }
        let at = v.pointer_mut(&ptr).unwrap();
        match (c.below(3), &mut *at) {
            (0, Value::Object(m)) => {
                m.insert(keys[c.below(keys.len())].to_string(), any_value(c, keys, strings, 0));
            }
            (1, Value::Object(m)) if !m.is_empty() => {
                let k = m.keys().nth(c.below(m.len())).unwrap().clone();
                m.remove(&k);
            }
            (0, Value::Array(a)) => a.push(any_value(c, keys, strings, 0)),
            _ => *at = any_value(c, keys, strings, 0),
        }
    }
}
