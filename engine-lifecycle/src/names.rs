//! Docker-style generated names (`adjective_scientist`).

const LEFT: &[&str] = &[
    "admiring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "boring", "brave", "busy", "charming",
    "clever", "compassionate", "competent", "confident", "cool", "dazzling", "determined", "distracted", "dreamy",
    "eager", "ecstatic", "elastic", "elated", "elegant", "epic", "exciting", "fervent", "festive", "flamboyant",
    "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hopeful",
    "hungry", "infallible", "inspiring", "intelligent", "jolly", "jovial", "keen", "kind", "laughing", "loving",
    "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic",
    "objective", "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky", "quizzical",
    "relaxed", "reverent", "romantic", "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied",
    "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
    "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
];

const RIGHT: &[&str] = &[
    "agnesi", "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bartik", "bell", "blackwell",
    "bohr", "booth", "borg", "bose", "boyd", "brahmagupta", "brattain", "brown", "carson", "cerf", "chandrasekhar",
    "chaplygin", "clarke", "curie", "darwin", "davinci", "dijkstra", "einstein", "elion", "engelbart", "euclid",
    "euler", "faraday", "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "goldberg", "goodall",
    "hamilton", "hawking", "heisenberg", "hermann", "hodgkin", "hoover", "hopper", "hypatia", "jackson", "jennings",
    "johnson", "kalam", "keller", "kepler", "khorana", "knuth", "kowalevski", "lalande", "lamarr", "leakey",
    "lovelace", "lumiere", "mayer", "mccarthy", "mcclintock", "meitner", "mendel", "merkle", "mirzakhani", "morse",
    "napier", "nash", "newton", "nobel", "noether", "pare", "pascal", "pasteur", "perlman", "pike", "poincare",
    "ptolemy", "raman", "ritchie", "rosalind", "sammet", "shannon", "shockley", "sinoussi", "stonebraker",
    "swanson", "tesla", "thompson", "torvalds", "turing", "varahamihira", "villani", "wilbur", "wiles", "williams",
    "wozniak", "wright", "yalow", "yonath",
];

/// A random `adjective_name`; with `retry > 0` a digit is appended, as Docker does
/// when the first choice is taken.
pub(crate) fn generate(retry: u32) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let l = LEFT[rng.random_range(0..LEFT.len())];
    let r = RIGHT[rng.random_range(0..RIGHT.len())];
    if retry == 0 {
        format!("{l}_{r}")
    } else {
        format!("{l}_{r}{}", rng.random_range(0..10))
    }
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (one leading `/` allowed).
pub(crate) fn validate(name: &str) -> engine_core::Result<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let ok = n.len() >= 2
        && n.len() <= 255
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(n.to_string())
    } else {
        Err(engine_core::Error::invalid(
            "container name",
            format!("{name:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (2-255 characters)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        let n = super::generate(0);
        assert!(super::validate(&n).is_ok(), "{n}");
        assert_eq!(super::validate("/web-1").unwrap(), "web-1");
        for bad in ["", "a", "-x", "a b", "a/b", "é1"] {
            assert!(super::validate(bad).unwrap_err().is_invalid_input(), "{bad}");
        }
    }
}
