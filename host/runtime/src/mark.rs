//! A component's identity: the guest it is, in a custom section named
//! `emmaa:guest` added after the build (so a component built from any
//! language can carry it), and, for a guest not written in Rust, its
//! language, in a section named `emmaa:language`, from which the host sets
//! the guest's fuel and memory (`limits::Budget`). The host refuses a
//! component whose mark is not the guest it was asked for: one copied under
//! another guest's name cannot serve that guest's function. Plain `std`, so
//! that `build.rs`, which marks every guest it builds, includes this file as
//! it is.

/// The custom section naming the guest.
pub const MARK_SECTION: &str = "emmaa:guest";

/// The custom section naming the guest's language, when it is not Rust.
pub const LANGUAGE_SECTION: &str = "emmaa:language";

/// The language a guest was written in: what its runtime costs in fuel and
/// memory depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Built by cargo for `wasm32-wasip2` (`guests/`); a component without
    /// a language mark is one.
    #[default]
    Rust,
    /// Built by componentize-py (`guests/python/`): CPython runs in it.
    Python,
}

impl Language {
    /// The language's name, as the mark and a bundle's manifest write it.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
        }
    }

    /// The language named `name`, if this host knows it.
    pub fn named(name: &str) -> Option<Language> {
        [Language::Rust, Language::Python]
            .into_iter()
            .find(|language| language.name() == name)
    }
}

/// The guest `wasm` says it is: `Ok(None)` when it carries no mark, an error
/// when it is not a WebAssembly binary or carries two marks.
pub fn guest_mark(wasm: &[u8]) -> Result<Option<String>, String> {
    one_section(wasm, MARK_SECTION)
}

/// The language `wasm` says it is in: Rust when it carries no language
/// mark; an error for a language this host does not know, two marks, or a
/// binary that is not WebAssembly.
pub fn language_mark(wasm: &[u8]) -> Result<Language, String> {
    match one_section(wasm, LANGUAGE_SECTION)? {
        None => Ok(Language::Rust),
        Some(name) => Language::named(&name).ok_or_else(|| {
            format!("its {LANGUAGE_SECTION} section names a language this host does not run: {name:?}")
        }),
    }
}

/// `wasm` with its `emmaa:guest` sections replaced by one naming `guest`.
pub fn with_guest_mark(wasm: &[u8], guest: &str) -> Result<Vec<u8>, String> {
    with_section(wasm, MARK_SECTION, Some(guest))
}

/// `wasm` with its `emmaa:language` sections replaced by one naming
/// `language` (none for Rust, the language of an unmarked guest).
pub fn with_language_mark(wasm: &[u8], language: Language) -> Result<Vec<u8>, String> {
    let name = (language != Language::Rust).then(|| language.name());
    with_section(wasm, LANGUAGE_SECTION, name)
}

/// The UTF-8 payload of the one custom section named `section`, if there is
/// one.
fn one_section(wasm: &[u8], section: &str) -> Result<Option<String>, String> {
    let mut found = None;
    for (id, body) in sections(wasm)? {
        if id != 0 {
            continue;
        }
        let Some((name, payload)) = custom_section(body) else {
            return Err("a custom section's name is cut short".into());
        };
        if name != section.as_bytes() {
            continue;
        }
        let value =
            String::from_utf8(payload.to_vec()).map_err(|_| format!("its {section} section is not UTF-8"))?;
        if found.replace(value).is_some() {
            return Err(format!("it carries two {section} sections"));
        }
    }
    Ok(found)
}

/// `wasm` with its custom sections named `section` removed, and one holding
/// `payload` added at the end when there is one.
fn with_section(wasm: &[u8], section: &str, payload: Option<&str>) -> Result<Vec<u8>, String> {
    let mut out = wasm[..HEADER_LEN.min(wasm.len())].to_vec();
    for (id, body) in sections(wasm)? {
        if id == 0 && custom_section(body).is_some_and(|(name, _)| name == section.as_bytes()) {
            continue;
        }
        out.push(id);
        leb128(body.len(), &mut out);
        out.extend_from_slice(body);
    }
    if let Some(payload) = payload {
        let mut body = Vec::new();
        leb128(section.len(), &mut body);
        body.extend_from_slice(section.as_bytes());
        body.extend_from_slice(payload.as_bytes());
        out.push(0);
        leb128(body.len(), &mut out);
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// `\0asm` and a version: a module's or a component's.
const HEADER_LEN: usize = 8;

/// The top-level sections of a module or component: (id, contents).
fn sections(wasm: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    if wasm.len() < HEADER_LEN || &wasm[..4] != b"\0asm" {
        return Err("it is not a WebAssembly binary".into());
    }
    let mut at = HEADER_LEN;
    let mut found = Vec::new();
    while at < wasm.len() {
        let id = wasm[at];
        let (size, used) = read_leb128(&wasm[at + 1..]).ok_or("a section's size is cut short")?;
        let start = at + 1 + used;
        let end = start
            .checked_add(size)
            .filter(|end| *end <= wasm.len())
            .ok_or("a section runs past the end of the file")?;
        found.push((id, &wasm[start..end]));
        at = end;
    }
    Ok(found)
}

/// A custom section's name and payload.
fn custom_section(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, used) = read_leb128(body)?;
    let end = used.checked_add(len).filter(|end| *end <= body.len())?;
    Some((&body[used..end], &body[end..]))
}

fn read_leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value: usize = 0;
    for (at, byte) in bytes.iter().enumerate().take(5) {
        value |= usize::from(byte & 0x7f) << (7 * at);
        if byte & 0x80 == 0 {
            return Some((value, at + 1));
        }
    }
    None
}

fn leb128(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component header and one custom section of its own.
    fn component() -> Vec<u8> {
        let mut wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
        wasm.extend_from_slice(&[0, 6, 4, b'n', b'a', b'm', b'e', b'x']);
        wasm
    }

    #[test]
    fn a_mark_is_added_read_and_replaced_and_other_sections_kept() {
        let plain = component();
        assert_eq!(guest_mark(&plain), Ok(None));
        let marked = with_guest_mark(&plain, "model_updates").unwrap();
        assert_eq!(guest_mark(&marked), Ok(Some("model_updates".into())));
        assert!(marked.starts_with(&plain), "the rest is kept as it was");
        let again = with_guest_mark(&marked, "model_stats").unwrap();
        assert_eq!(guest_mark(&again), Ok(Some("model_stats".into())));
        assert_eq!(
            again.len(),
            marked.len() - "model_updates".len() + "model_stats".len()
        );
    }

    #[test]
    fn two_marks_or_a_broken_binary_are_errors() {
        let marked = with_guest_mark(&component(), "a").unwrap();
        let mut twice = marked.clone();
        twice.extend_from_slice(&marked[component().len()..]);
        assert_eq!(
            guest_mark(&twice),
            Err("it carries two emmaa:guest sections".into())
        );
        assert!(guest_mark(b"not wasm").is_err());
        let mut cut = marked.clone();
        cut.truncate(marked.len() - 1);
        assert!(guest_mark(&cut).is_err());
    }

    #[test]
    fn a_language_mark_is_read_beside_the_guest_mark_and_rust_needs_none() {
        let marked = with_guest_mark(&component(), "model_stats").unwrap();
        assert_eq!(language_mark(&marked), Ok(Language::Rust));
        let python = with_language_mark(&marked, Language::Python).unwrap();
        assert_eq!(language_mark(&python), Ok(Language::Python));
        assert_eq!(guest_mark(&python), Ok(Some("model_stats".into())));
        let renamed = with_guest_mark(&python, "after_update").unwrap();
        assert_eq!(
            language_mark(&renamed),
            Ok(Language::Python),
            "renaming keeps the language"
        );
        assert_eq!(with_language_mark(&python, Language::Rust).unwrap(), marked);
        let unknown = with_section(&marked, LANGUAGE_SECTION, Some("cobol")).unwrap();
        assert_eq!(
            language_mark(&unknown),
            Err("its emmaa:language section names a language this host does not run: \"cobol\"".into())
        );
    }
}
