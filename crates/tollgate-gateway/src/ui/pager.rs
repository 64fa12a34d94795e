//! Previous/next links for a listing read a page at a time (`?page=`, 1-based).

use serde::Deserialize;
use serde_json::{Value, json};

/// A listing's query: which page, and the language switch's `?lang=`.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub page: Option<u32>,
    pub lang: Option<String>,
}

/// What `pager.html` reads: the page, how many there are, and the links either side.
pub fn links(path: &str, page: u32, size: u32, total: u64) -> Value {
    let pages = total.div_ceil(u64::from(size.max(1))).max(1);
    let page = u64::from(page.max(1));
    // Past the end (the list shrank): the way back leads to the last page.
    let prev = (page > 1).then(|| format!("{path}?page={}", (page - 1).min(pages)));
    let next = (page < pages).then(|| format!("{path}?page={}", page + 1));
    json!({"page": page, "pages": pages, "prev": prev, "next": next})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_either_side() {
        let first = links("/ui/users", 1, 100, 250);
        assert_eq!((first["pages"].as_u64(), first["prev"].is_null()), (Some(3), true));
        assert_eq!(first["next"], "/ui/users?page=2");
        let last = links("/ui/users", 3, 100, 250);
        assert_eq!(
            (last["prev"].as_str(), last["next"].is_null()),
            (Some("/ui/users?page=2"), true)
        );
        let empty = links("/ui/teams", 1, 100, 0);
        assert_eq!(empty["pages"], 1);
        assert_eq!(links("/ui/keys", 9, 100, 150)["prev"], "/ui/keys?page=2");
    }
}
