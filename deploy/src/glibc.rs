//! Whether a Linux executable can run on Amazon Linux 2023, whose glibc is
//! 2.34: it must not ask for a symbol version newer than that.

/// glibc on Amazon Linux 2023 (`provided.al2023`).
pub const AL2023_GLIBC: (u32, u32) = (2, 34);

/// The newest `GLIBC_x.y` version the executable's bytes name, if any.
///
/// Version requirements are stored as such strings in the dynamic string
/// table; any other mention can only make the answer stricter.
pub fn newest_glibc_version(executable: &[u8]) -> Option<(u32, u32)> {
    const TAG: &[u8] = b"GLIBC_";
    let mut newest = None;
    let mut at = 0;
    while let Some(found) = find(&executable[at..], TAG) {
        let start = at + found + TAG.len();
        at = start;
        let digits = |from: usize| {
            let end = executable[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            std::str::from_utf8(&executable[from..from + end])
                .ok()?
                .parse::<u32>()
                .ok()
                .map(|n| (n, from + end))
        };
        let Some((major, after_major)) = digits(start) else {
            continue;
        };
        if executable.get(after_major) != Some(&b'.') {
            continue;
        }
        let Some((minor, _)) = digits(after_major + 1) else {
            continue;
        };
        newest = newest.max(Some((major, minor)));
    }
    newest
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_newest_version_named() {
        let bytes = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0GLIBC_PRIVATE\0";
        assert_eq!(newest_glibc_version(bytes), Some((2, 34)));
        assert_eq!(newest_glibc_version(b"\0GLIBC_2.38\0GLIBC_2.9\0"), Some((2, 38)));
        assert_eq!(newest_glibc_version(b"static binary"), None);
    }
}
