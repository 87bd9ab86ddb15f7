//! Tables in the docs that are made from tables in the code: a test compares
//! each with what the code makes now, and `EMMAA_BLESS=1` rewrites it.

/// Checks the block of the workspace's file `doc` between the lines
/// `<!-- {name}: generated from {source} -->` and `<!-- /{name} -->`
/// against `generated`; with `EMMAA_BLESS` set, writes `generated` there.
pub fn check_block(doc: &str, name: &str, source: &str, generated: &str) {
    let path = format!("{}/../../{doc}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {doc}: {err}"));
    let start = format!("<!-- {name}: generated from {source} -->\n");
    let end = format!("<!-- /{name} -->");
    let from = text
        .find(&start)
        .unwrap_or_else(|| panic!("{doc} has no line {start:?}"))
        + start.len();
    let to = from
        + text[from..]
            .find(&end)
            .unwrap_or_else(|| panic!("{doc} has no line {end:?}"));
    if std::env::var_os("EMMAA_BLESS").is_some() {
        std::fs::write(&path, format!("{}{generated}{}", &text[..from], &text[to..])).unwrap();
    } else {
        assert_eq!(
            &text[from..to],
            generated,
            "{doc}'s {name} differs from {source}; EMMAA_BLESS=1 cargo test -p emmaa-runtime --lib rewrites it"
        );
    }
}
