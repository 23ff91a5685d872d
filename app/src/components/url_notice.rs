//! A notice naming the URL parameters a page does not know (`/failures?windw=3h`): a typo is said, not silently
//! ignored. The names are untrusted text: cut, at most a few listed, and escaped as every text of the page.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

/// The most unknown names listed (a URL of a thousand parameters names the first ones and counts the rest).
const MAX_LISTED: usize = 5;
/// The longest name shown, in characters.
const NAME_CHARS: usize = 40;

/// The names in the raw query `search` (`?a=1&b=2`) that are not in `known`, in their order, each once.
pub fn unknown_params(search: &str, known: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (key, _) in form_urlencoded::parse(search.trim_start_matches('?').as_bytes()) {
        if !known.contains(&key.as_ref()) && !out.iter().any(|k| *k == key) {
            out.push(key.into_owned());
        }
    }
    out
}

/// The notice: nothing when every parameter of the address is one of `known`.
#[component]
pub fn UnknownParams(
    /// The parameters the page reads.
    known: &'static [&'static str],
) -> impl IntoView {
    let search = use_location().search;
    move || {
        let unknown = unknown_params(&search.read(), known);
        (!unknown.is_empty()).then(|| {
            let total = unknown.len();
            let listed: Vec<String> = unknown
                .into_iter()
                .take(MAX_LISTED)
                .map(|k| {
                    let shown = crate::format::truncate_chars(&k, NAME_CHARS);
                    if shown.is_empty() {
                        "“” (an empty name)".to_string()
                    } else {
                        format!("“{shown}”")
                    }
                })
                .collect();
            let more = (total > MAX_LISTED).then(|| format!(" and {} more", total - MAX_LISTED));
            let known_list = known.join(", ");
            view! {
                <p class="note note-warn" role="note" data-testid="unknown-params">
                    {format!(
                        "Ignored {} this page does not know: {}{}. It reads {known_list}.",
                        if total == 1 { "a parameter" } else { "parameters" },
                        listed.join(", "),
                        more.unwrap_or_default()
                    )}
                </p>
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::unknown_params;

    #[test]
    fn unknown_names_are_listed_once_in_order() {
        let known = ["window", "since", "group"];
        assert!(unknown_params("?window=3h&group=ab", &known).is_empty());
        assert!(unknown_params("", &known).is_empty());
        assert_eq!(
            unknown_params("?windw=3h&x=1&windw=2&window=1h", &known),
            vec!["windw".to_string(), "x".to_string()]
        );
        // A stray `&=` has an empty name: it is named too.
        assert_eq!(unknown_params("window=3h&=", &known), vec![String::new()]);
        assert_eq!(unknown_params("%3Cb%3E=1", &known), vec!["<b>".to_string()]);
    }
}
